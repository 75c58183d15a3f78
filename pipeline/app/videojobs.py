"""Videos uploaded to `mien serve` (``POST /video``), processed in the background as `mien video` does: one job
at a time per server (a second is answered 429), progress readable while it runs, then the annotated video
(H.264 .mp4, which browsers play) and the summary (JSON + timeline PNGs) served from the job's folder under
MIEN_HOME/videos/<id>/ (0600 files, like everything mien writes). The slot is taken (``reserve``) before the upload
is read, the upload is written into the job's folder as it arrives and deleted once processed; folders left by a
server that was killed (its process gone) are deleted when the next one starts. A job keeps at most
``MAX_OBSERVATIONS`` faces-in-frames in memory (the live stream's recording limit; past it the job stops there and
its summary says so), and ``delete`` cancels a running job (at its next frame) or deletes a finished one.

A finished job is stored in the server's results database (``history``) before it says "done", as `mien video --db`
stores a video: one entry (source ``video``, the uploaded file's name and hash) with a row per person, so the
History tab and ``GET /history`` show it. A job cancelled before its last frame, or one that failed, stores
nothing; deleting a finished job deletes its files, not its entry in the history (``DELETE /people/{name}`` and
`mien people forget` redact it).
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from mien.identity.storage import make_private
from mien.pipeline.app.stream import RECORDED_OBSERVATIONS

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
SERVED = re.compile(r"^(annotated\.mp4|summary\.json|timeline(_[A-Za-z0-9._-]+)?\.png)$")
KEEP_JOBS = 5  # finished jobs kept on disk; older ones are deleted when a new one starts
MAX_OBSERVATIONS = RECORDED_OBSERVATIONS  # faces-in-frames a job keeps (~3.3 KB each: ~0.7 GB at most)


@dataclass
class VideoJob:
    """One uploaded video: where it is, how far it got, and what came of it."""

    id: str
    folder: Path
    name: str
    status: str = "running"  # uploading | running | done | error
    frames: int = 0
    total: int = 0
    error: str | None = None
    summary: dict = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def to_dict(self) -> dict:
        out = {"id": self.id, "file": self.name, "status": self.status, "frames": self.frames, "total": self.total}
        if self.error:
            out["error"] = self.error
        if self.status == "done":
            out["summary"] = self.summary
            out["annotated_video"] = f"/video/{self.id}/annotated.mp4"
        return out


class VideoBusy(Exception):
    """A video is being processed already."""


class VideoCancelled(Exception):
    """A running job was deleted (``DELETE /video/{id}``): its run stops at the next frame."""


OWNER = ".server"  # in each job folder: the id of the process that made it


class VideoJobs:
    """The server's uploaded videos, processed one at a time in a background thread."""

    def __init__(self, folder: Path, recognizer_view, model_lock: threading.Lock, every: int = 3, history=None):
        self.folder, self.view, self.model_lock, self.every = folder, recognizer_view, model_lock, every
        self.history = history  # the results database finished jobs are stored in (None: not stored)
        self.jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._sweep()

    def _sweep(self) -> None:
        """Delete the job folders of servers no longer running (a killed server leaves its upload and a half
        written video); another running server's folders are left alone."""
        if not self.folder.is_dir():
            return
        for job in self.folder.iterdir():
            if job.is_dir() and JOB_ID.match(job.name) and not _process_alive(job / OWNER):
                shutil.rmtree(job, ignore_errors=True)

    def reserve(self, name: str) -> VideoJob:
        """Take the one slot for a new video (status "uploading", its folder made) before its upload is read;
        VideoBusy while another video is uploading or running."""
        with self._lock:
            if any(j.status in ("uploading", "running") for j in self.jobs.values()):
                raise VideoBusy("a video is being processed; try again when it has finished")
            self._forget_old()
            job_id = uuid.uuid4().hex
            job = VideoJob(job_id, self.folder / job_id, name, status="uploading")
            job.folder.mkdir(parents=True, exist_ok=True)
            (job.folder / OWNER).write_text(str(os.getpid()))
            self.jobs[job.id] = job
        return job

    def abandon(self, job: VideoJob) -> None:
        """Give a reserved slot back (the upload failed or was refused): its folder and entry go."""
        with self._lock:
            self.jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def start(self, job: VideoJob, source: Path, every: int | None = None) -> VideoJob:
        """Process a reserved job's uploaded ``source`` (in its folder) in the background."""
        make_private(source)
        job.name = job.name or source.name
        job.status = "running"
        threading.Thread(target=self._run, args=(job, source, every or self.every), daemon=True).start()
        return job

    def _run(self, job: VideoJob, source: Path, every: int) -> None:
        from mien.pipeline.app.video import VideoError, process_video

        def progress(done: int, total: int) -> None:
            job.frames, job.total = done, total
            if job.cancelled.is_set():
                raise VideoCancelled(job.id)

        try:
            recognizer = self.view()
            result = process_video(source, recognizer, out=job.folder / "annotated.mp4",
                                   summary_dir=job.folder / "summary", every=every, on_frame=progress,
                                   model_lock=self.model_lock, max_observations=MAX_OBSERVATIONS, name=job.name)
            job.summary = result.summary  # "source": the uploaded file's name, on disk and in the history
            if self.history is not None and not job.cancelled.is_set():
                self._store(job, recognizer, result, source)
            job.status = "done"
        except VideoCancelled:
            pass
        except VideoError as exc:
            job.error, job.status = str(exc).replace(str(source), job.name), "error"
        except Exception as exc:  # noqa: BLE001 -- a job's failure is reported to its client, the server goes on
            job.error, job.status = f"could not process the video ({type(exc).__name__}: {exc})", "error"
        finally:
            source.unlink(missing_ok=True)  # the upload is not kept, only what mien made of it
            if job.cancelled.is_set():  # deleted while it ran: nothing of it is kept
                shutil.rmtree(job.folder, ignore_errors=True)

    def _store(self, job: VideoJob, recognizer, result, source: Path) -> None:
        """The finished job in the history as `mien video --db` stores a video (``videosummary.store_in_history``);
        VideoError when the database refuses it (the job then fails, as POST /recognize does)."""
        from mien.identity.storage import sha256_file
        from mien.pipeline.app.videosummary import store_in_history
        from mien.pipeline.app.videowriter import VideoError

        try:
            store_in_history(self.history, recognizer, result, "video", sha256_file(source))
        except (sqlite3.Error, OSError) as exc:
            raise VideoError(f"{job.name}: processed, but it could not be stored in the history ({exc})") from None

    def delete(self, job_id: str) -> VideoJob | None:
        """Cancel a running job (it stops at its next frame and its folder goes) or delete a finished one's files;
        the job is forgotten at once (its slot is free). None for no such job (one still uploading included)."""
        with self._lock:
            job = self.jobs.get(job_id) if JOB_ID.match(job_id) else None
            if job is None or job.status == "uploading":
                return None
            del self.jobs[job.id]
            running = job.status == "running"
            job.cancelled.set()
        if not running:
            shutil.rmtree(job.folder, ignore_errors=True)
        return job

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in ("done", "error")]
        finished.sort(key=lambda j: j.status == "done")  # failed jobs go first: they must not evict finished ones
        for job in finished[:max(0, len(finished) - (KEEP_JOBS - 1))]:  # room for the job starting now
            shutil.rmtree(job.folder, ignore_errors=True)
            del self.jobs[job.id]

    def file(self, job_id: str, name: str) -> Path | None:
        """A finished job's file that may be served (the annotated video, the summary and its PNGs), or None."""
        job = self.jobs.get(job_id) if JOB_ID.match(job_id) else None
        if job is None or job.status != "done" or not SERVED.match(name):
            return None
        path = job.folder / name if name == "annotated.mp4" else job.folder / "summary" / name
        return path if path.is_file() else None


def _process_alive(owner: Path) -> bool:
    """Whether the process named in a job folder's ``OWNER`` file is running (False: no file, or it is gone)."""
    try:
        pid = int(owner.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True
