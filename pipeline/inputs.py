"""What the Python API takes as an image: a path, an http(s) URL, encoded bytes, a PIL image or a NumPy array.

Each becomes the same RGB ``uint8`` array (EXIF orientation applied, as ``load_image`` does for files), so one photo
gives one answer whatever form it was handed in. Arrays are RGB unless ``channels="bgr"`` says they come from
OpenCV. Anything else raises ``ImageError`` (a ``mien.MienError``) naming what was given and what is taken.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, Union

import numpy as np

from mien.pipeline.images import ImageError, decode_image, is_url, load_image, path_text, read_image_bytes, read_url_bytes

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, "PILImage"]
Channels = Literal["rgb", "bgr"]
TAKEN = "a path, an http(s) URL, encoded image bytes, a PIL image or a NumPy array"


def _is_pil(image: object) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "convert")  # no PIL import to find out


def describe(image: ImageInput) -> str:
    """A short name for an image argument, for records and error messages."""
    if isinstance(image, (str, os.PathLike)):
        return path_text(image)
    if isinstance(image, np.ndarray):
        return f"<array {'x'.join(map(str, image.shape))} {image.dtype}>"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} bytes>"
    return f"<{type(image).__name__}>"


def _check_channels(channels: str) -> None:
    if channels not in ("rgb", "bgr"):
        raise ImageError(f"channels={channels!r}: say 'rgb' (the default: PIL, imageio, matplotlib) or 'bgr' "
                         "(OpenCV's cv2.imread).")


def array_to_rgb(array: np.ndarray, channels: Channels = "rgb") -> np.ndarray:
    """An RGB uint8 HxWx3 array from a uint8 array that is gray (HxW or HxWx1), RGB(A) or, with ``channels="bgr"``,
    BGR(A); ImageError for any other shape or type (a float array's scale cannot be guessed)."""
    _check_channels(channels)
    if array.dtype != np.uint8:
        raise ImageError(f"{describe(array)}: image arrays must be uint8 (0-255); convert it, e.g. "
                         "(x * 255).clip(0, 255).astype('uint8') for floats in 0-1.")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise ImageError(f"{describe(array)}: an image array is HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA).")
    array = array[:, :, :3]
    return np.ascontiguousarray(array[:, :, ::-1] if channels == "bgr" else array)


def pil_to_rgb(image: "PILImage") -> np.ndarray:
    """An RGB uint8 array of a PIL image, with its EXIF orientation applied as for a file."""
    from PIL import ImageOps

    return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def to_rgb(image: ImageInput, channels: Channels = "rgb") -> np.ndarray:
    """Any image argument of the Python API as an RGB uint8 array; ImageError names the problem."""
    _check_channels(channels)
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, channels)
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image))
    if _is_pil(image):
        return pil_to_rgb(image)
    raise ImageError(f"{describe(image)}: not an image; give {TAKEN}.")


def to_bytes(image: ImageInput, channels: Channels = "rgb") -> bytes:
    """Any image argument as encoded bytes (what enrollment stores): files and URLs as they are, arrays and PIL
    images as PNG; ImageError names the problem."""
    if isinstance(image, (str, os.PathLike)):
        return read_url_bytes(image) if is_url(image) else read_image_bytes(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    import cv2

    rgb = to_rgb(image, channels)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ImageError(f"{describe(image)}: could not be encoded as PNG.")
    return buf.tobytes()


__all__ = ["ImageInput", "Channels", "to_rgb", "to_bytes", "array_to_rgb", "describe"]
