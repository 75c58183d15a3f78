"""The body of ``POST /video``: a multipart form whose one file is written straight into the video job's folder as
it arrives (never held in memory, nor spooled elsewhere first), and refused with 413 as soon as it passes the
limit. The job's slot is taken before this reads a byte (``VideoJobs.reserve``), so a busy server answers 429
without reading the upload.
"""
from __future__ import annotations

import os
from pathlib import Path

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser


class _IntoFile(MultiPartParser):
    """Starlette's multipart parser with the file part written to ``target`` (0600) instead of a spooled temporary
    file; at most one file and a few small fields."""

    def __init__(self, request: Request, target: Path, limit: int):
        super().__init__(request.headers, request.stream(), max_files=1, max_fields=4, max_part_size=1024)
        self.target, self.limit = target, limit
        self.received = 0  # bytes of the file part so far

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is not None:
            upload.file.close()  # the spooled file the parser made: unused
            upload.file = os.fdopen(os.open(self.target, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600), "w+b")
            self._files_to_close_on_error.append(upload.file)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        upload = self._current_part.file
        if upload is not None:
            self.received += end - start
            if self.received > self.limit:
                raise HTTPException(413, f"{upload.filename or 'upload'}: larger than the {self.limit // 2**20} MB "
                                         "video limit")
        super().on_part_data(data, start, end)


async def receive_video(request: Request, target: Path, limit: int) -> tuple[UploadFile, dict[str, str]]:
    """Stream a ``multipart/form-data`` body's ``file`` into ``target`` (at most ``limit`` bytes); the upload (its
    name, size, and the open file at ``target``) and the other fields. HTTPException 413 past the limit, 422 for
    a form without a file or not multipart."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(422, "send the video as multipart/form-data with the field `file` (e.g. curl -F "
                                 "file=@clip.mp4)")
    parser = _IntoFile(request, target, limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(422, f"the form could not be read: {exc.message}") from None
    upload = form.get("file")
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if not isinstance(upload, UploadFile):
        for value in form.values():
            if isinstance(value, UploadFile):
                await value.close()
        raise HTTPException(422, "the form has no file field `file`: send the video as `file` (curl -F file=@clip.mp4)")
    await upload.close()
    return upload, fields
