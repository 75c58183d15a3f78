"""mien's exceptions as HTTP answers, in one place for every route (``register``): a route raises what the pipeline
raises and the client gets JSON ``{"detail": ...}`` with the status that says what to do."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mien.identity.gallery.base import (GalleryBusyError, GalleryError, GalleryFullError, GalleryGoneError,
                                        PersonExistsError, UnknownPersonError, UnknownPhotoError)
from mien.pipeline.app.batching import ServerBusy
from mien.pipeline.app.thumbnails import PhotoGoneError
from mien.pipeline.app.videojobs import VideoBusy
from mien.pipeline.app.videowriter import VideoError
from mien.pipeline.history import DatabaseError
from mien.pipeline.images import ImageError
from mien.pipeline.names import PersonNameError

log = logging.getLogger(__name__)
VIDEO_RETRY_AFTER_S = 10  # a video runs for a while: the Retry-After of a busy video slot


def _answer(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status, headers=headers)


async def gallery_error(request: Request, exc: GalleryError) -> JSONResponse:
    """Gallery problems as JSON: no such person or photo 404, a name taken up to case 409, a gallery locked by
    another writer or deleted under the server 503, a full disk 507, anything else 500; nothing was changed in
    each case."""
    if isinstance(exc, (UnknownPersonError, UnknownPhotoError)):
        return _answer(404, str(exc))
    if isinstance(exc, PersonExistsError):
        return _answer(409, str(exc))
    if isinstance(exc, GalleryBusyError):
        return _answer(503, str(exc), {"Retry-After": "5"})
    if isinstance(exc, GalleryGoneError):
        log.error("%s", exc)
        return _answer(503, str(exc))
    if isinstance(exc, GalleryFullError):
        log.error("%s", exc)
        return _answer(507, str(exc))
    log.error("gallery error: %s", exc)
    return _answer(500, str(exc))


async def image_error(request: Request, exc: ImageError) -> JSONResponse:
    """A photo that cannot be read 422 (the message for a remote client, who cannot change the server's limits); an
    enrolled photo whose file is gone 404."""
    if isinstance(exc, PhotoGoneError):
        return _answer(404, str(exc))
    return _answer(422, exc.for_client())


async def busy(request: Request, exc: ServerBusy | VideoBusy) -> JSONResponse:
    """Too much in flight 429, with Retry-After: the server's estimate for photos, a fixed wait for the video slot."""
    wait = exc.retry_after if isinstance(exc, ServerBusy) else VIDEO_RETRY_AFTER_S
    return _answer(429, str(exc), {"Retry-After": str(wait)})


def bad_request(status: int):
    """A handler answering the exception's message with ``status`` (a name not allowed, a date or video unreadable)."""
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return _answer(status, str(exc))
    return handler


def register(app: FastAPI) -> None:
    """Install the handlers on ``app`` (Starlette picks the most specific class of a raised exception)."""
    app.add_exception_handler(GalleryError, gallery_error)
    app.add_exception_handler(ImageError, image_error)
    app.add_exception_handler(ServerBusy, busy)
    app.add_exception_handler(VideoBusy, busy)
    app.add_exception_handler(PersonNameError, bad_request(400))
    app.add_exception_handler(DatabaseError, bad_request(422))
    app.add_exception_handler(VideoError, bad_request(422))
