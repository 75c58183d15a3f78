"""Face thumbnails of enrolled photos, for the web page's People tab: the face cut from the photo it was enrolled
from (the bytes the gallery stored for an upload, or the file a folder enrollment read), where enrollment found it."""
from __future__ import annotations

from contextlib import nullcontext

import cv2
import numpy as np

from mien.identity.gallery import Gallery, UnknownPhotoError
from mien.identity.storage import content_hash
from mien.pipeline.images import ImageError, decode_image, read_image_bytes

SIDE = 128  # pixels of the square thumbnail
MARGIN = 0.25  # of the face box added on each side, so the face is seen whole


class PhotoGoneError(ImageError):
    """The photo was enrolled from a file that is no longer readable, and its bytes were not stored."""


def face_thumbnail(gallery: Gallery, name: str, photo_hash: str, cache_model: str, detect=None,
                   model_lock=None) -> bytes:
    """A JPEG of the face in one enrolled photo of ``name``. The face box is the one enrollment cached for the
    photo under ``cache_model`` (``pipeline.gallery.cache_model``); without one, ``detect(rgb)`` finds it again
    (under ``model_lock``). UnknownPersonError / UnknownPhotoError / PhotoGoneError / ImageError otherwise."""
    info = gallery.person(name)
    face = next((f for f in info.faces if f["photo_hash"] == photo_hash), None)
    if face is None:
        raise UnknownPhotoError.of(info.name, photo_hash)
    data = gallery.stored_photo(face["face_id"]) if face["photo_stored"] else None
    if data is None:
        try:
            data = read_image_bytes(face["source"])
        except ImageError as exc:
            raise PhotoGoneError(f"the photo of {info.name} was enrolled from {face['source']}, which cannot be read "
                                 f"now ({exc})") from None
        if content_hash(data) != photo_hash:  # another picture is at that path now: not the enrolled face
            raise PhotoGoneError(f"the photo of {info.name} was enrolled from {face['source']}, which holds another "
                                 "picture now; enroll that person's photos again to show their face")
    rgb = decode_image(data, face["source"])
    box = (gallery.cached([photo_hash], cache_model).get(photo_hash) or (None, None, None))[2]
    if box is None and detect is not None:
        with model_lock or nullcontext():
            found = detect(rgb)
        box = found[0].bbox if found else None
    return _jpeg(_square_crop(rgb, box))


def _square_crop(rgb: np.ndarray, box) -> np.ndarray:
    """The face with a margin as a square (the photo's centre when no face is known), resized to SIDE."""
    h, w = rgb.shape[:2]
    if box is None:
        x, y, bw, bh = w // 4, h // 4, w // 2, h // 2
    else:
        x, y, bw, bh = (int(v) for v in box)
    side = int(max(bw, bh) * (1 + 2 * MARGIN))
    cx, cy = x + bw // 2, y + bh // 2
    x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
    crop = rgb[y0:min(h, y0 + side), x0:min(w, x0 + side)]
    crop = cv2.copyMakeBorder(crop, 0, side - crop.shape[0], 0, side - crop.shape[1], cv2.BORDER_REPLICATE) \
        if crop.shape[:2] != (side, side) else crop
    return cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ImageError("could not encode the thumbnail")
    return buf.tobytes()
