"""``mien serve``: the REST API (FastAPI, OpenAPI docs at /docs and /redoc) and the web page at /.

Models load once at start-up and are warmed up before the server says it is serving. Concurrent
/recognize requests are batched (``mien.pipeline.app.batching``): those arriving within a few milliseconds
share one trip through the models; beyond ``--max-pending`` requests in flight a new one gets 429 with
Retry-After, and decoded pixels held at once are bounded. Model calls are serialised by one lock (a model
call already uses every core); everything else (upload, decoding, drawing, the database) runs concurrently. The
identity classifier is swapped copy-on-write: each request takes a snapshot, enrollment builds and saves
a new classifier and then swaps it in, so a request never sees a half-updated one.

Every endpoint declares its response model and its 4xx answers (``mien.pipeline.app.schemas``). The docs pages
load Swagger UI and ReDoc from files the ``fastapi-offline`` package ships, so they work without internet.
"""

import base64
import contextlib
import dataclasses
import errno
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mien.identity.gallery.base import (GalleryBusyError, GalleryError, GalleryFullError, GalleryGoneError,
                                        PersonExistsError, UnknownPhotoError)
from mien.identity.storage import content_hash
from mien.pipeline.app import schemas
from mien.pipeline.history import ResultsDB
from mien.pipeline.app.guards import (AuthBeforeBody, BodyLimit, RequestGuard, allowed_hosts_for, auth_problem,
                                      page_security_headers, personal_data_problem)
from mien.pipeline.app.page import FAVICON, web_page
from mien.pipeline.app.stream import StreamLimits, refuse, serve_stream, stream_options
from mien.pipeline.app.videojobs import VideoBusy, VideoJobs
from mien.pipeline.errors import UsageError
from mien.pipeline.home import mien_home
from mien.pipeline.app.batching import MAX_PENDING, PixelBudget, RecognitionBatcher, ServerBusy
from mien.pipeline.images import ImageError, checked_size, decode_image, max_pixels
from mien.pipeline.names import PersonNameError, validate_person_name
from mien.pipeline.people import UnknownPersonError, Unreadable, enroll_photos, forget_person, remove_photo
from mien.pipeline.provenance import classifier_fingerprint, model_versions, thresholds_used

if TYPE_CHECKING:
    from mien.pipeline.recognizer import Recognizer

log = logging.getLogger(__name__)
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
MAX_PHOTOS_PER_REQUEST = 20
# Leading bytes of the formats mien decodes (OpenCV): JPEG, PNG, BMP, WebP, TIFF.
MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
         (b"MM\x00*", "TIFF"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"))


class ServeConfigError(UsageError):
    """The server cannot start as configured (e.g. no token while enrolling is enabled)."""


DECODED_IMAGES = 2  # the pixel budget of /recognize: this many images of the largest size allowed, decoded at once
MIN_TOKEN_LENGTH = 12  # a bearer token anyone on the network can try: not a short word


def _uvicorn_limits() -> dict:
    """Connection hygiene for uvicorn: request heads must arrive within 10 s (pipeline/app/protocol.py), idle
    keep-alive connections close after 5 s, and beyond 256 concurrent connections new ones get a 503."""
    from mien.pipeline.app.protocol import HeaderDeadlineH11

    return {"http": HeaderDeadlineH11, "timeout_keep_alive": 5, "limit_concurrency": 256}


@dataclasses.dataclass
class ServerConfig:
    """How the API behaves: auth token, whether people can be changed, limits and where it writes."""

    token: str | None = None
    allow_unauthenticated: bool = False
    read_only: bool = False
    max_upload: int = DEFAULT_MAX_UPLOAD
    max_video_upload: int = 200 * 1024 * 1024  # POST /video (a minute of phone video is ~100 MB)
    db_path: Path | None = None
    home: Path | None = None
    max_pending: int = MAX_PENDING
    # Host headers answered (DNS-rebinding guard); None: any (the in-process test client, a server on 0.0.0.0)
    allowed_hosts: frozenset[str] | None = None

    def check(self) -> None:
        """Refuse to serve mutating endpoints to anyone at all unless explicitly allowed, or behind a guessable token."""
        if self.token is not None and len(self.token.strip()) < MIN_TOKEN_LENGTH:
            raise ServeConfigError(f"MIEN_API_TOKEN is {len(self.token.strip())} characters (blank ones not counted); "
                                   f"use at least {MIN_TOKEN_LENGTH}, e.g. `python -c \"import secrets; "
                                   "print(secrets.token_urlsafe())\"`.")
        if not self.token and not self.read_only and not self.allow_unauthenticated:
            raise ServeConfigError("MIEN_API_TOKEN is not set, so anyone could enroll or forget people. Set it "
                                   "(clients send `Authorization: Bearer <token>`), or pass --read-only or "
                                   "--allow-unauthenticated.")


def image_kind(data: bytes) -> str | None:
    """The image format named by the leading bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in MAGIC if data.startswith(magic)), None)


def _new_app(**kwargs) -> FastAPI:
    """A FastAPI app whose /docs and /redoc serve Swagger UI and ReDoc from local files, not a CDN."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:  # still serve the API; only the docs pages need the internet then
        log.warning("fastapi-offline is not installed: /docs and /redoc load their scripts from a CDN. "
                    "pip install fastapi-offline")
        return FastAPI(**kwargs)
    return FastAPIOffline(**kwargs)


class ServerState:
    """Models, the current matcher (kept in step with the gallery), locks and the results database of one server."""

    def __init__(self, recognizer, config: ServerConfig):
        from mien.identity.upkeep import load_matcher
        from mien.pipeline.gallery import gallery_model, index_dir, open_default_gallery

        self.config = config
        self.home = config.home or mien_home()
        self.gallery = open_default_gallery(config.home, recognizer)
        self.base = recognizer.with_options(matcher=None)  # our own matcher; the models are shared
        self.matcher_kind = recognizer.options.matcher
        self.model = gallery_model(recognizer)
        self.index_dir = index_dir(config.home)
        self.classifier = load_matcher(self.gallery, self.model, self.matcher_kind, self.index_dir)
        self.model_lock = threading.Lock()
        # decoded pixels alive at once: as much as DECODED_IMAGES of the largest allowed images (2 x 150 MB at
        # 50 MP), so many small photos batch together while a burst of huge ones waits as compressed bytes
        self.pixel_budget = PixelBudget(DECODED_IMAGES * max_pixels())
        self.batcher = RecognitionBatcher(self.model_lock, max_pending=config.max_pending)
        self.enroll_lock = threading.Lock()
        self.refresh_lock = threading.Lock()
        self.db = ResultsDB(config.db_path or self.home / "mien.db")

    def current(self):
        """The matcher at the gallery's current generation: changes by the CLI or another server are picked up
        here (one indexed read per request; a rebuild or incremental update only when something changed)."""
        from mien.identity.upkeep import refresh_matcher

        with self.refresh_lock:
            self.classifier = refresh_matcher(self.classifier, self.gallery, self.model, self.matcher_kind,
                                              self.index_dir)
            return self.classifier

    def snapshot(self, **option_changes):
        """A Recognizer view with the current matcher and per-request options (models shared, not copied)."""
        return self.base.with_options(matcher=self.current(), **option_changes)

    def people(self) -> list[dict]:
        """Enrolled people and their photo counts, from the gallery."""
        return [{"name": p, "photos": n} for p, n in self.gallery.people().items()]

    def gallery_problem(self) -> str | None:
        """Why the gallery cannot be written (its file deleted or replaced under the server), or None."""
        try:
            self.gallery.check()
        except GalleryGoneError as exc:
            return str(exc)
        return None

    def health(self) -> dict:
        """What /health reports: model versions, which models are loaded, people, configuration and whether the
        gallery can still be written."""
        rec = self.snapshot()
        people = self.people()
        problem = self.gallery_problem()
        return {"status": "degraded" if problem else "ok", "gallery": problem, "models": model_versions(rec),
                "people": len(people),
                "emotion": rec.emotion_model is not None, "read_only": self.config.read_only,
                "auth": "bearer" if self.config.token else "none",
                "loaded": {"detector": rec.detector is not None, "embedder": rec.embedder is not None,
                           "classifier": rec.classifier is not None, "emotion": rec.emotion_model is not None},
                "enrolled_photos": sum(p["photos"] for p in people), "batching": self.batcher.stats()}


class _LockedModels:
    """A Recognizer whose model calls take the server's model lock (for enrollment running beside requests)."""

    def __init__(self, recognizer, lock: threading.Lock):
        self._rec, self._lock = recognizer, lock

    def __getattr__(self, name):
        return getattr(self._rec, name)

    def detect(self, image):
        with self._lock:
            return self._rec.detect(image)

    def embed_faces(self, image, faces):
        with self._lock:
            return self._rec.embed_faces(image, faces)

    def embed_crops(self, crops):
        with self._lock:
            return self._rec.embed_crops(crops)


async def _read_image_upload(upload: UploadFile, limit: int) -> bytes:
    """The bytes of an uploaded image, or a 4xx: too large (413), not an image by type or content (415)."""
    data = await upload.read(limit + 1)
    name = upload.filename or "upload"
    if len(data) > limit:
        raise HTTPException(413, f"{name}: larger than the {limit // (1024 * 1024)} MB upload limit")
    if not data:
        raise HTTPException(422, f"{name}: empty file (0 bytes), not an image")
    ctype = (upload.content_type or "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
        raise HTTPException(415, f"{name}: content type {ctype!r} is not an image")
    if image_kind(data) is None:
        raise HTTPException(415, f"{name}: not a JPEG, PNG, BMP, WebP, TIFF or GIF image")
    return data


async def _upload_or_reason(upload: UploadFile, limit: int) -> bytes | Unreadable:
    """An enrollment photo's bytes, or why it is skipped (too large, empty, not an image): one bad file of several
    is reported in its result, as `mien people add` does, instead of failing the request."""
    try:
        return await _read_image_upload(upload, limit)
    except HTTPException as exc:
        return Unreadable(str(exc.detail).removeprefix(f"{upload.filename or 'upload'}: "))


def create_app(recognizer, config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI application around an already loaded Recognizer."""
    config = config or ServerConfig()
    config.check()
    state = ServerState(recognizer, config)
    app = _new_app(title="mien", version="1", description="Face identity + emotion recognition. Changing enrolled "
                   "people needs `Authorization: Bearer <MIEN_API_TOKEN>`. Errors are JSON: `{\"detail\": ...}`.")
    app.state.mien = state

    @app.exception_handler(GalleryError)
    async def gallery_error(request, exc: GalleryError) -> JSONResponse:
        """Gallery problems as JSON: a name taken up to case 409, a gallery locked by another writer or deleted
        under the server 503, a full disk 507, anything else 500; nothing was changed in each case."""
        if isinstance(exc, PersonExistsError):
            return JSONResponse({"detail": str(exc)}, 409)
        if isinstance(exc, GalleryBusyError):
            return JSONResponse({"detail": str(exc)}, 503, headers={"Retry-After": "5"})
        if isinstance(exc, GalleryGoneError):
            log.error("%s", exc)
            return JSONResponse({"detail": str(exc)}, 503)
        if isinstance(exc, GalleryFullError):
            log.error("%s", exc)
            return JSONResponse({"detail": str(exc)}, 507)
        log.error("gallery error: %s", exc)
        return JSONResponse({"detail": str(exc)}, 500)
    app.add_middleware(BodyLimit, limit_for=lambda path: (config.max_video_upload if path == "/video" else
                                                          config.max_upload * (MAX_PHOTOS_PER_REQUEST if
                                                          path.startswith("/people/") else 1)) + 64 * 1024)
    app.add_middleware(AuthBeforeBody, config=config)  # before the body limit reads anything
    app.add_middleware(RequestGuard, config=config)  # outermost: other sites' requests are not even authorised
    bearer = HTTPBearer(auto_error=False)
    page = web_page()  # index.html with the colours it shares with the charts and annotated images

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        """The same rule as AuthBeforeBody (which already applied it); here it documents the bearer scheme."""
        header = f"Bearer {credentials.credentials}" if credentials else None
        if (problem := auth_problem(config, header)) is not None:
            raise HTTPException(problem[0], problem[1], headers={"WWW-Authenticate": "Bearer"}
                                if problem[0] == 401 else None)

    def person_name(name: str) -> str:
        try:
            return validate_person_name(name)
        except PersonNameError as exc:
            raise HTTPException(400, str(exc)) from None

    def token_for_personal_data(request: Request, what: str) -> None:
        """Who was seen when, and where a person's photos came from, are personal data: a server with a token
        answers them only with it (read-only or not), a read-only one without a token not at all."""
        problem = personal_data_problem(config, request.headers.get("authorization"), what)
        if problem is not None:
            raise HTTPException(problem[0], problem[1], headers={"WWW-Authenticate": "Bearer"}
                                if problem[0] == 401 else None)

    page_headers = page_security_headers(page)

    @app.get("/", response_class=HTMLResponse, responses={200: {"description": "The web page (HTML)."}})
    def index() -> HTMLResponse:
        """The web page: recognize an uploaded photo, list, enroll and forget people."""
        return HTMLResponse(page, headers=page_headers)

    @app.get("/favicon.svg", include_in_schema=False)
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        """The page's icon (browsers ask for /favicon.ico whatever the page says)."""
        return Response(FAVICON.read_bytes(), media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.get("/health", response_model=schemas.HealthResponse)
    def health() -> dict:
        """Liveness plus what is loaded: model versions, which models, people, whether emotion is available."""
        return state.health()

    @app.post("/recognize", response_model=schemas.RecognizeResponse, response_model_exclude_unset=True,
              responses=schemas.error_responses(413, 415, 422, 429))
    async def recognize(
        request: Request,
        file: Annotated[UploadFile, File(description="the photo (JPEG, PNG, BMP, WebP, TIFF or GIF)")],
        probability_threshold: Annotated[float | None, Form(ge=0, le=1, description="min SVM probability to name a "
                                                            "face (the CLI's --probability-threshold)")] = None,
        distance_threshold: Annotated[float | None, Form(gt=0, allow_inf_nan=False,
                                                         description="max distance to the nearest enrolled photo")] = None,
        emotion_threshold: Annotated[float | None, Form(ge=0, le=1, description="below it the emotion is 'uncertain'")] = None,
        identity_threshold: Annotated[float | None, Form(ge=0, le=1, deprecated=True,
                                                         description="the old name of probability_threshold")] = None,
        annotate: Annotated[bool, Form(description="also return the annotated image (base64 JPEG)")] = False,
        candidates: Annotated[int, Form(ge=0, le=20, description="also list this many nearest enrolled people with "
                                                                  "their distances")] = 0,
    ) -> dict:
        """Who + emotion for every face: the JSON record of `mien recognize --json` for one image."""
        with contextlib.ExitStack() as in_flight:
            try:
                in_flight.enter_context(state.batcher.admitted())
            except ServerBusy as exc:
                raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
            if len((await request.form()).getlist("file")) > 1:  # the parsed form, not read again
                raise HTTPException(400, "one photo per request: send each photo in its own POST /recognize")
            data = await _read_image_upload(file, config.max_upload)
            name = file.filename or "upload"
            if identity_threshold is not None and probability_threshold is None:
                probability_threshold = identity_threshold
            rec = state.snapshot(probability_threshold=probability_threshold, distance_threshold=distance_threshold,
                                 emotion_threshold=emotion_threshold, candidates=candidates or None)

            def work() -> dict:
                try:
                    width, height = checked_size(data, name)
                except ImageError as exc:
                    raise HTTPException(422, exc.for_client()) from None
                with state.pixel_budget.hold(width * height):
                    return recognize_decoded(data)

            def recognize_decoded(data: bytes) -> dict:
                try:
                    image = decode_image(data, name)
                except ImageError as exc:
                    raise HTTPException(422, exc.for_client()) from None
                record = state.batcher.recognize(rec, image, name)
                models, thresholds = model_versions(rec), thresholds_used(rec)
                rid = state.db.add(record, image_sha256=content_hash(data), thresholds=thresholds, models=models,
                                   source="server")
                out = record.to_dict()
                out.update(id=rid, models=models, thresholds=thresholds)
                if annotate:
                    import cv2

                    from mien.pipeline.app.outputs import annotate as draw

                    ok, buf = cv2.imencode(".jpg", draw(image, record, min_side=0), [cv2.IMWRITE_JPEG_QUALITY, 85])
                    out["annotated_jpeg_base64"] = base64.b64encode(buf.tobytes()).decode("ascii")
                return out

            return await run_in_threadpool(work)

    stream_limits = StreamLimits()

    @app.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        """A live camera: send frames (JPEG/PNG, one binary message each), get who + emotion per frame as JSON,
        tracked and smoothed as `mien video` does (see pipeline/app/stream.py for the protocol and limits). Query:
        ``every`` (1-30) and ``record`` (1/0); a bad value is answered 422 naming it, before the upgrade."""
        try:
            every, record = stream_options(websocket.query_params)
        except UsageError as exc:
            return await refuse(websocket, 422, str(exc))
        await serve_stream(websocket, state, stream_limits, every, record=record)

    videos = state.videos = VideoJobs(state.home / "videos", lambda: state.snapshot(), state.model_lock)

    @app.post("/video", response_model=schemas.VideoJobResponse, response_model_exclude_none=True,
              responses=schemas.error_responses(413, 415, 422, 429), openapi_extra=schemas.VIDEO_UPLOAD_BODY)
    async def upload_video(request: Request) -> dict:
        """Process a video as `mien video` does, in the background: poll GET /video/{id} for progress, then play
        /video/{id}/annotated.mp4; the summary has who was on screen when, with the emotions over time. One video
        at a time: a second is answered 429 before its upload is read; the upload is streamed to disk (at most
        200 MB) and its frames must be within the pixel limit of photos."""
        from mien.pipeline.app.video import check_frame_size
        from mien.pipeline.app.videoupload import receive_video
        from mien.pipeline.app.videowriter import VIDEO_SUFFIXES, VideoError

        try:
            job = videos.reserve("")
        except VideoBusy as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": "10"}) from None
        try:
            upload, fields = await receive_video(request, job.folder / "upload", config.max_video_upload)
            name = upload.filename or "upload"
            suffix = Path(name).suffix.lower()
            if suffix not in {s.strip() for s in VIDEO_SUFFIXES.split(",")}:
                raise HTTPException(415, f"{name}: send a video file ({VIDEO_SUFFIXES})")
            every = fields.get("every", "3")
            if not (every.isdigit() and 1 <= int(every) <= 30):
                raise HTTPException(422, f"every: {every!r} is not a whole number 1..30 (detect every N-th frame)")
            source = (job.folder / "upload").rename(job.folder / f"upload{suffix}")
            try:
                await run_in_threadpool(check_frame_size, source, name)
            except VideoError as exc:
                raise HTTPException(422, str(exc)) from None
            job.name = name
            return videos.start(job, source, int(every)).to_dict()
        except BaseException:
            videos.abandon(job)
            raise

    @app.get("/video/{job_id}", response_model=schemas.VideoJobResponse, response_model_exclude_none=True,
             responses=schemas.error_responses(404))
    def video_status(job_id: str) -> dict:
        """A video job: running (frames done of total), done (its summary and annotated video) or error."""
        job = videos.jobs.get(job_id)
        if job is None or job.status == "uploading":
            raise HTTPException(404, "no such video job (jobs are kept until the server restarts, the last 5)")
        return job.to_dict()

    @app.delete("/video/{job_id}", response_model=schemas.VideoJobResponse, response_model_exclude_none=True,
                responses=schemas.error_responses(404))
    def delete_video(job_id: str) -> dict:
        """Cancel a running video job (it stops at its next frame; nothing of it is kept) or delete a finished
        one's annotated video and summary; either way the job is gone and the one-video slot is free. Like the
        job's results, this needs only its id."""
        job = videos.delete(job_id)
        if job is None:
            raise HTTPException(404, "no such video job (jobs are kept until the server restarts, the last 5)")
        return {"id": job.id, "file": job.name, "status": "deleted", "frames": job.frames, "total": job.total}

    @app.get("/video/{job_id}/{name}")
    def video_file(job_id: str, name: str):
        """A finished job's annotated video, summary.json or timeline PNG."""
        from fastapi.responses import FileResponse

        path = videos.file(job_id, name)
        if path is None:
            raise HTTPException(404, "no such file of a finished video job")
        return FileResponse(path, media_type={"mp4": "video/mp4", "json": "application/json",
                                              "png": "image/png"}[path.suffix.lstrip(".")])

    @app.get("/history", responses=schemas.error_responses(401, 403, 422))
    def history(request: Request, person: str | None = None, since: str | None = None, limit: int = 200,
                emotion: str | None = None) -> dict:
        """Past recognitions of this server and the CLI's database, newest first (`mien history`): ``person`` up
        to case, ``emotion`` shown (by that person), ``since`` a date or ISO time, at most ``limit`` (1-1000). Who
        was seen when is personal data: with a token configured, reading it needs the bearer token too."""
        from mien.pipeline.history import DatabaseError, parse_since

        token_for_personal_data(request, "the history and its file names")
        if not 1 <= limit <= 1000:
            raise HTTPException(422, "limit must be 1..1000")
        try:
            when = parse_since(since, "since") if since else None
        except DatabaseError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"recognitions": state.db.query(person=person, since=when, limit=limit, emotion=emotion)}

    @app.get("/people", response_model=schemas.PeopleResponse)
    def people() -> dict:
        """Enrolled people with the number of photos each was enrolled from."""
        return {"people": state.people(), "classifier": classifier_fingerprint(state.current())}

    @app.post("/people/{name}/photos", dependencies=[Depends(authorised)], response_model=schemas.EnrollResponse,
              responses=schemas.error_responses(400, 401, 403, 409, 413, 422, 503))
    async def add_photos(name: str, files: Annotated[list[UploadFile], File(description="one or more photos")]) -> dict:
        """Enroll photos of one person (new or existing); only new photos go through the models. A photo that is
        too large, not an image or without a usable face is skipped with the reason in its result."""
        name = person_name(name)
        if len(files) > MAX_PHOTOS_PER_REQUEST:
            raise HTTPException(413, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
        photos = [(f.filename or f"photo_{i}", await _upload_or_reason(f, config.max_upload))
                  for i, f in enumerate(files, start=1)]

        def work() -> dict:
            with state.enroll_lock:
                update = enroll_photos(name, photos, _LockedModels(state.base, state.model_lock), state.gallery)
                if not update.faces:
                    raise HTTPException(422, {"message": f"no usable face in the photos of {name}; nothing enrolled",
                                              "photos": [p.to_dict() for p in update.photos]})
                state.current()  # requests from now on see the new person
            return {"person": name, "photos": [p.to_dict() for p in update.photos],
                    "enrolled_photos": update.faces, "people": state.people()}

        return await run_in_threadpool(work)

    @app.get("/people/{name}", responses=schemas.error_responses(400, 401, 403, 404))
    def person(name: str, request: Request) -> dict:
        """One person's photos (content hash, source, when added, whether the bytes are stored), up to case. The
        sources are file names of the server's machine: with a token configured, reading them needs it."""
        token_for_personal_data(request, "a person's photos")
        try:
            info = state.gallery.person(person_name(name))
        except UnknownPersonError as exc:
            raise HTTPException(404, str(exc)) from None
        return {"name": info.name, "photos": info.faces}

    @app.get("/people/{name}/photos/{photo_hash}/face", response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}, "description": "the face, 128x128 JPEG"},
                        **schemas.error_responses(400, 401, 403, 404, 422)})
    def face(name: str, photo_hash: str, request: Request) -> Response:
        """The face in one enrolled photo as a thumbnail (the People tab shows one per person and per photo); a
        person's face is personal data: with a token configured, it needs it."""
        from mien.pipeline.app.thumbnails import PhotoGoneError, face_thumbnail
        from mien.pipeline.gallery import cache_model

        token_for_personal_data(request, "a person's faces")
        try:
            jpeg = face_thumbnail(state.gallery, person_name(name), photo_hash, cache_model(state.base),
                                  detect=state.base.subject_faces, model_lock=state.model_lock)
        except (UnknownPersonError, UnknownPhotoError, PhotoGoneError) as exc:
            raise HTTPException(404, str(exc)) from None
        except ImageError as exc:
            raise HTTPException(422, exc.for_client()) from None
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @app.delete("/people/{name}/photos/{photo_hash}", dependencies=[Depends(authorised)],
                responses=schemas.error_responses(400, 401, 403, 404, 503))
    def delete_photo(name: str, photo_hash: str) -> dict:
        """Erase one photo of a person (its embedding, stored bytes and cached embedding); the person keeps the
        others. The photo hashes are those of GET /people/{name}."""
        name = person_name(name)
        with state.enroll_lock:
            try:
                removed = remove_photo(name, photo_hash, state.gallery, state.config.home)
            except (UnknownPersonError, UnknownPhotoError) as exc:
                raise HTTPException(404, str(exc)) from None
            state.current()
        return {"person": name, "removed_faces": removed, "people": state.people()}

    @app.patch("/people/{name}", dependencies=[Depends(authorised)], response_model=schemas.RenameResponse,
               responses=schemas.error_responses(400, 401, 403, 404, 409, 503))
    def rename_person(name: str, body: schemas.RenameRequest) -> dict:
        """Rename a person (their photos and embeddings stay); 409 if the new name is taken up to case."""
        old, new = person_name(name), person_name(body.name)
        with state.enroll_lock:
            try:
                state.gallery.rename(old, new)
            except UnknownPersonError as exc:
                raise HTTPException(404, str(exc)) from None
            state.current()
        return {"renamed": old, "to": new, "people": state.people()}

    @app.delete("/people/{name}", dependencies=[Depends(authorised)], response_model=schemas.ForgetResponse,
                responses=schemas.error_responses(400, 401, 403, 404, 503))
    def delete_person(name: str) -> dict:
        """Forget a person: their embeddings, cached embeddings and uploaded photos, in one transaction; then their
        name, photo names and hashes in the server's results database are redacted."""
        name = person_name(name)
        with state.enroll_lock:
            try:
                forgotten = forget_person(name, state.gallery, state.config.home)
            except UnknownPersonError as exc:
                raise HTTPException(404, str(exc)) from None
            state.db.redact_person(name, forgotten.names)  # erasure: their recognitions (under every name they had)
            # read "unknown" from now on
            state.current()
        return {"forgotten": name, "people": state.people()}

    return app


def serve(config: ServerConfig, load_recognizer: Callable[[], "Recognizer"], *, host: str = "127.0.0.1",
          port: int = 8000, log_level: str = "warning", allow_hosts: tuple[str, ...] = ()) -> int:
    """Check ``config``, load the models once (``load_recognizer``), warm them up, then run uvicorn; only Host
    headers of the bound address (and ``allow_hosts``) are answered."""
    import uvicorn

    config.allowed_hosts = allowed_hosts_for(host, port, allow_hosts)
    config.check()  # before the models load
    sock = listening_socket(host, port)  # a busy port is said now, not after the models have loaded
    print("loading models ...", flush=True)
    recognizer = load_recognizer()
    recognizer.warm_up()  # the first request must not pay for graph tracing
    app = create_app(recognizer, config)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, **_uvicorn_limits()))
    print(f"mien serving on http://{host}:{port}/  (API docs: /docs)", flush=True)
    server.run(sockets=[sock])
    return 0


def listening_socket(host: str, port: int):
    """A socket bound to ``host:port`` and listening (connections wait in its backlog until the models are
    loaded); ServeConfigError naming the address when it is in use or cannot be had."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ServeConfigError(f"--host {host}: not an address this machine can listen on ({exc.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = " (another program, or another mien serve, is using it: stop it or choose another --port)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise ServeConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}.") from None
    return sock


class BackgroundServer:
    """Run an app with uvicorn in a daemon thread (for tests, benchmarks and embedding): ``with ... as url:``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5,
                                                    **_uvicorn_limits()))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
