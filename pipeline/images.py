"""Reading photos robustly: any format OpenCV knows, EXIF-rotated, gray/RGBA/16-bit, corrupt files named."""
from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import MienError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# Pixel budget checked from the header before decoding (a 2.6 MB PNG can claim 30000x30000 px = 2.7 GB decoded).
DEFAULT_MAX_PIXELS = 50_000_000


class ImageError(MienError, ValueError):
    """An input file that is not a readable image; the message names the file."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def max_pixels() -> int:
    """The pixel budget: ``$MIEN_MAX_IMAGE_PIXELS`` if set, else 50 million (larger than any camera photo)."""
    return int(os.environ.get("MIEN_MAX_IMAGE_PIXELS") or DEFAULT_MAX_PIXELS)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the image header without decoding (Pillow), or None if Pillow cannot tell."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # Pillow only reads the header here; mien's own, stricter budget applies
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # not a format Pillow knows or a broken header: OpenCV decides below
        return None


def check_pixel_budget(data: bytes, name: str) -> None:
    """ImageError, before any decoding, if the header announces more pixels than the budget."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels():
        raise ImageError(f"{name}: {size[0]}x{size[1]} pixels is over the {max_pixels() / 1e6:.0f}-megapixel limit "
                         "(set MIEN_MAX_IMAGE_PIXELS to allow larger images, or downscale the photo).")


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array (EXIF orientation applied), within the pixel budget."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes), not an image.")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:  # some writers append bytes after EOI
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker); re-export or re-download the photo.")
    check_pixel_budget(data, name)
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR: 8-bit BGR whatever the source (gray, RGBA, 16-bit), EXIF orientation applied.
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. over OpenCV's own 2^30-pixel limit
        raise ImageError(f"{name}: OpenCV cannot decode it ({str(exc).strip().splitlines()[-1][:200]}).") from None
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{name}: not a readable image (corrupt, or a format OpenCV cannot decode).")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8, raising ImageError that names the file on any problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image.") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror}).") from None
    return decode_image(data, str(path))


def scan_images(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Image files under ``root`` (a file or a folder, recursively), sorted, and the other files skipped there."""
    root = Path(root)
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise ImageError(f"{root}: no such file or folder.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [p for p in files if is_image_path(p)], [p for p in files if not is_image_path(p)]


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (a file or a folder, recursively), sorted."""
    return scan_images(root)[0]
