"""Face detection behind a small interface; MTCNN (weights inside the ``mtcnn`` package) is the default."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Images are downscaled to this longest side for detection; boxes are mapped back.
MAX_DETECTION_SIDE = 1600
# Largest min_face_size handed to mtcnn 1.0 itself (larger ones are obtained by downscaling the image).
MTCNN_SAFE_MIN_FACE = 20
RETRY_SCALE = 0.5  # an image with no face is searched once more at this scale
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    """One detected face in original-image pixels: box ``(x, y, w, h)``, confidence, 5 landmarks."""

    bbox: tuple[int, int, int, int]
    confidence: float
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def area(self) -> int:
        return self.bbox[2] * self.bbox[3]

    def landmark_array(self) -> np.ndarray:
        """Landmarks as a float32 [5,2] array in LANDMARK_NAMES order."""
        return np.array([self.landmarks[n] for n in LANDMARK_NAMES], dtype=np.float32)


class Detector(Protocol):
    name: str
    signature: str  # settings that change what is detected; part of every cache key built on detections

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image, largest first."""


class MTCNNDetector:
    """MTCNN (Zhang et al. 2016) from the ``mtcnn`` package: boxes, confidences, 5 landmarks."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, threshold: float = 0.8, max_side: int = MAX_DETECTION_SIDE):
        from mtcnn import MTCNN

        self._mtcnn = MTCNN(device="CPU:0")
        self.min_face_size = int(min_face_size)
        self.threshold = float(threshold)
        self.max_side = int(max_side)
        self.signature = f"mtcnn-min{self.min_face_size}-t{self.threshold}-s{self.max_side}-retry{RETRY_SCALE}"

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces, largest first. When none is found, one retry on a copy at RETRY_SCALE: MTCNN's pyramid misses
        some faces at full size that it finds at half size (a demo enrollment photo of 165x220 px is one)."""
        faces = self._detect(image, 1.0)
        h, w = image.shape[:2]
        retry = self.min_face_size <= MTCNN_SAFE_MIN_FACE and min(h, w) * RETRY_SCALE >= 2 * MTCNN_SAFE_MIN_FACE
        if not faces and retry:
            faces = self._detect(image, RETRY_SCALE)
            if faces:
                log.info("faces found only at %.2fx scale", RETRY_SCALE)
        return faces

    def _detect(self, image: np.ndarray, extra_scale: float) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w)) * extra_scale
        if self.min_face_size * scale > MTCNN_SAFE_MIN_FACE:
            # mtcnn 1.0 sizes its pyramid from the image alone: with min_face_size above ~20 its last
            # levels fall under the 12 px P-Net window and every face is lost. Shrink the image instead.
            scale = MTCNN_SAFE_MIN_FACE / self.min_face_size
        work = image
        if scale < 1.0:
            import cv2

            work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        if min(work.shape[:2]) < 12:  # smaller than MTCNN's first-stage window: nothing to find
            return []
        # the last stage's cut is ours: mtcnn's own default (0.8) would make any lower --detection-threshold moot
        raw = self._mtcnn.detect_faces(np.ascontiguousarray(work),
                                       min_face_size=max(12, round(self.min_face_size * scale)),
                                       threshold_onet=self.threshold)
        faces = []
        for r in raw:
            conf = float(r["confidence"])
            if conf < self.threshold:
                continue
            x, y, bw, bh = (float(v) / scale for v in r["box"])
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(w, round(x + bw)), min(h, round(y + bh))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            marks = {k: (float(v[0]) / scale, float(v[1]) / scale) for k, v in r["keypoints"].items()}
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), conf, marks))
        return sorted(faces, key=lambda f: f.area, reverse=True)


DETECTORS: dict[str, Callable[..., Detector]] = {"mtcnn": MTCNNDetector}


def build_detector(name: str = "mtcnn", **options) -> Detector:
    """Instantiate a registered detector by name."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}") from None
    return factory(**options)
