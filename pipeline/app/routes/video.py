"""``/video``: a video uploaded, processed in the background as `mien video` does (``videojobs``), its progress, its
results, and cancelling or deleting it."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from mien.pipeline.app import schemas
from mien.pipeline.app.routes.deps import State

router = APIRouter()
NO_JOB = "no such video job (jobs are kept until the server restarts, the last 5)"


@router.post("/video", response_model=schemas.VideoJobResponse, response_model_exclude_none=True,
             responses=schemas.error_responses(413, 415, 422, 429), openapi_extra=schemas.VIDEO_UPLOAD_BODY)
async def upload_video(state: State, request: Request) -> dict:
    """Process a video as `mien video` does, in the background: poll GET /video/{id} for progress, then play
    /video/{id}/annotated.mp4; the summary has who was on screen when, with the emotions over time. One video
    at a time: a second is answered 429 before its upload is read; the upload is streamed to disk (at most
    200 MB) and its frames must be within the pixel limit of photos."""
    from mien.pipeline.app.video import check_frame_size
    from mien.pipeline.app.videoupload import receive_video
    from mien.pipeline.app.videowriter import VIDEO_SUFFIXES

    videos = state.videos
    job = videos.reserve("")  # VideoBusy (429) while another video uploads or runs
    try:
        upload, fields = await receive_video(request, job.folder / "upload", state.config.max_video_upload)
        name = upload.filename or "upload"
        suffix = Path(name).suffix.lower()
        if suffix not in {s.strip() for s in VIDEO_SUFFIXES.split(",")}:
            raise HTTPException(415, f"{name}: send a video file ({VIDEO_SUFFIXES})")
        every = fields.get("every", "3")
        if not (every.isdigit() and 1 <= int(every) <= 30):
            raise HTTPException(422, f"every: {every!r} is not a whole number 1..30 (detect every N-th frame)")
        source = (job.folder / "upload").rename(job.folder / f"upload{suffix}")
        await run_in_threadpool(check_frame_size, source, name)  # VideoError (422): huge frames, a still image
        job.name = name
        return videos.start(job, source, int(every)).to_dict()
    except BaseException:
        videos.abandon(job)
        raise


@router.get("/video/{job_id}", response_model=schemas.VideoJobResponse, response_model_exclude_none=True,
            responses=schemas.error_responses(404))
def video_status(state: State, job_id: str) -> dict:
    """A video job: running (frames done of total), done (its summary and annotated video) or error."""
    job = state.videos.jobs.get(job_id)
    if job is None or job.status == "uploading":
        raise HTTPException(404, NO_JOB)
    return job.to_dict()


@router.delete("/video/{job_id}", response_model=schemas.VideoJobResponse, response_model_exclude_none=True,
               responses=schemas.error_responses(404))
def delete_video(state: State, job_id: str) -> dict:
    """Cancel a running video job (it stops at its next frame; nothing of it is kept) or delete a finished
    one's annotated video and summary; either way the job is gone and the one-video slot is free. Like the
    job's results, this needs only its id."""
    job = state.videos.delete(job_id)
    if job is None:
        raise HTTPException(404, NO_JOB)
    return {"id": job.id, "file": job.name, "status": "deleted", "frames": job.frames, "total": job.total}


@router.get("/video/{job_id}/{name}")
def video_file(state: State, job_id: str, name: str):
    """A finished job's annotated video, summary.json or timeline PNG."""
    path = state.videos.file(job_id, name)
    if path is None:
        raise HTTPException(404, "no such file of a finished video job")
    return FileResponse(path, media_type={"mp4": "video/mp4", "json": "application/json",
                                          "png": "image/png"}[path.suffix.lstrip(".")])
