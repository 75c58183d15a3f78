"""An uploaded photo's bytes, checked before anything decodes them (size, emptiness, content type, leading bytes), for
``POST /recognize`` and ``POST /people/{name}/photos``; a refused upload is a 4xx naming the file."""
from __future__ import annotations

from fastapi import HTTPException, UploadFile

from mien.pipeline.people import Unreadable

# Leading bytes of the formats mien decodes (OpenCV): JPEG, PNG, BMP, WebP, TIFF.
MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
         (b"MM\x00*", "TIFF"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"))


def image_kind(data: bytes) -> str | None:
    """The image format named by the leading bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in MAGIC if data.startswith(magic)), None)


async def read_image_upload(upload: UploadFile, limit: int) -> bytes:
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


async def upload_or_reason(upload: UploadFile, limit: int) -> bytes | Unreadable:
    """An enrollment photo's bytes, or why it is skipped (too large, empty, not an image): one bad file of several
    is reported in its result, as `mien people add` does, instead of failing the request."""
    try:
        return await read_image_upload(upload, limit)
    except HTTPException as exc:
        return Unreadable(str(exc.detail).removeprefix(f"{upload.filename or 'upload'}: "))
