"""Turning a detected face into a model input: landmark alignment or a plain box crop."""
from __future__ import annotations

import cv2
import numpy as np

from mien.pipeline.detection import Face

# Five-point template (eyes, nose, mouth corners) of the widely used 112x112 ArcFace crop, as fractions.
_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
) / 112.0


def template(size: int, zoom: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """Landmark template for a ``size`` square crop; ``zoom`` < 1 leaves more margin around the face."""
    pts = (_TEMPLATE_112 - 0.5) * zoom + 0.5
    pts[:, 1] += shift_y
    return pts * size


def align(image: np.ndarray, face: Face, size: int, zoom: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """Similarity-warp the face so its 5 landmarks land on the template; edges are padded, never cropped off."""
    src = face.landmark_array()
    dst = template(size, zoom, shift_y)
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None:  # degenerate landmarks: fall back to the box
        return crop(image, face, size)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop(image: np.ndarray, face: Face, size: int, margin: float = 0.1) -> np.ndarray:
    """The detection box grown by ``margin`` of its size on each side, padded at image edges, resized."""
    x, y, w, h = face.bbox
    mx, my = round(w * margin), round(h * margin)
    x0, y0, x1, y1 = x - mx, y - my, x + w + mx, y + h + my
    pad = max(0, -x0, -y0, x1 - image.shape[1], y1 - image.shape[0])
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def square_crop(image: np.ndarray, face: Face, size: int, margin: float = 0.0, level_eyes: bool = True) -> np.ndarray:
    """A square around the box centre (side = longer box side * (1 + 2*margin)), rotated so the eyes are level.

    This is FER2013's framing: a tight, upright face. Edges are padded by replication, never cropped off.
    """
    x, y, w, h = face.bbox
    centre = np.array([x + w / 2.0, y + h / 2.0])
    side = max(w, h) * (1.0 + 2.0 * margin)
    theta = 0.0
    if level_eyes and face.landmarks:
        left, right = face.landmark_array()[:2]
        theta = float(np.arctan2(right[1] - left[1], right[0] - left[0]))
    scale = size / max(side, 1.0)
    c, s = np.cos(theta) * scale, np.sin(theta) * scale
    rot = np.array([[c, s], [-s, c]])
    shift = np.array([size / 2.0, size / 2.0]) - rot @ centre
    matrix = np.hstack([rot, shift[:, None]]).astype(np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    if scale < 0.5:  # warpAffine has no true area filter: pre-shrink large faces so detail is averaged, not aliased
        return square_crop(_shrink(image, face, scale * 2), _scaled_face(face, scale * 2), size, margin, level_eyes)
    return cv2.warpAffine(image, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def _shrink(image: np.ndarray, face: Face, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)


def _scaled_face(face: Face, factor: float) -> Face:
    from dataclasses import replace

    x, y, w, h = face.bbox
    return replace(face, bbox=(x * factor, y * factor, w * factor, h * factor),
                   landmarks={k: (v[0] * factor, v[1] * factor) for k, v in face.landmarks.items()})


def to_gray(face_rgb: np.ndarray) -> np.ndarray:
    """RGB face crop to single-channel grayscale."""
    return cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY)
