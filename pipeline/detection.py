"""Face detection behind a small interface and a registry; MTCNN (weights inside the ``mtcnn`` package) run by
OpenVINO is the default, ``mtcnn`` 1.0's own TensorFlow implementation the reference (``mtcnn-keras``)."""
from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from mien.pipeline.options import Options

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Images are downscaled to this longest side for detection; boxes are mapped back.
MAX_DETECTION_SIDE = 1600
# Largest min_face_size handed to mtcnn 1.0 itself (larger ones are obtained by downscaling the image);
# also the retry's bound: a photo is retried at RETRY_SCALE only if that copy still holds 2x this.
MTCNN_SAFE_MIN_FACE = 20
RETRY_SCALE = 0.5  # an image with no face is searched once more at this scale
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    """One detected face in original-image pixels: box ``(x, y, w, h)``, confidence, 5 landmarks."""

    bbox: tuple[int, int, int, int]
    confidence: float
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)
    scale: float = 1.0  # of the image copy it was found in: RETRY_SCALE when only the downscaled retry found it
    detected_on_retry: bool = False  # found only by the relaxed retry of one-subject tasks (``detect_relaxed``)

    @property
    def area(self) -> int:
        return self.bbox[2] * self.bbox[3]

    def landmark_array(self) -> np.ndarray:
        """Landmarks as a float32 [5,2] array in LANDMARK_NAMES order."""
        return np.array([self.landmarks[n] for n in LANDMARK_NAMES], dtype=np.float32)


class Detector(Protocol):
    name: str
    signature: str  # settings that change what is detected; part of every cache key built on detections
    precision: str  # the arithmetic it runs in (fp32 | bf16), recorded with results

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 image, largest first."""

    def detect_relaxed(self, image: np.ndarray, threshold: float) -> list[Face]:
        """Faces found with the P-Net and R-Net thresholds at ``threshold`` (O-Net's kept), for photos of one
        subject where ``detect`` found none; each is marked ``detected_on_retry``."""


class _PyramidDetector:
    """What both MTCNN backends share: the longest-side cap, the downscaled retry, boxes and landmarks mapped
    back to the original image. A backend implements ``_rows``."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = Options.min_face_size, threshold: float = Options.detection_threshold,
                 max_side: int = MAX_DETECTION_SIDE, proposal_threshold: float = Options.proposal_threshold,
                 refine_threshold: float = Options.refine_threshold):
        self.min_face_size = int(min_face_size)
        self.threshold = float(threshold)
        self.proposal_threshold = float(proposal_threshold)
        self.refine_threshold = float(refine_threshold)
        self.max_side = int(max_side)

    @property
    def thresholds(self) -> tuple[float, float, float]:
        """The P-Net, R-Net and O-Net thresholds ``detect`` uses."""
        return self.proposal_threshold, self.refine_threshold, self.threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces, largest first. When none is found, one retry on a copy at RETRY_SCALE: MTCNN's pyramid misses
        some faces at full size that it finds at half size (a demo enrollment photo of 165x220 px is one)."""
        return self._search(image, 1.0, self.thresholds)

    def detect_relaxed(self, image: np.ndarray, threshold: float) -> list[Face]:
        """Faces found with the first two stages' thresholds (P-Net, R-Net) at ``threshold`` and O-Net's kept (then
        at half size, as ``detect`` does), each marked ``detected_on_retry``: the retry of one-subject tasks when
        ``detect`` found nothing (issue 38). Lower first-stage thresholds let a face through that the cascade
        dropped early; the last stage still asks a reported face for ``self.threshold``, and a face narrower than
        ``min_face_size`` is dropped (the false faces the retry found on benchmarks/subject.py's face-free set were
        19 px wide). The image is not upscaled: on thumbnails a 2x copy found 2 of 9 demo faces shrunk to ~45 px,
        and 6 false faces on 174 face-free ones."""
        faces = [f for f in self._search(image, 1.0, (threshold, threshold, self.threshold))
                 if min(f.bbox[2], f.bbox[3]) >= self.min_face_size]
        if faces:
            log.info("face found only by the relaxed retry (P-Net and R-Net thresholds %.2f)", threshold)
        return [dataclasses.replace(f, detected_on_retry=True) for f in faces]

    def _search(self, image: np.ndarray, first_scale: float, thresholds: tuple[float, float, float]) -> list[Face]:
        """Faces at ``first_scale``; when none, once more at RETRY_SCALE (if that copy is large enough)."""
        faces = self._detect(image, first_scale, thresholds)
        h, w = image.shape[:2]
        retry = self.min_face_size <= MTCNN_SAFE_MIN_FACE and min(h, w) * RETRY_SCALE >= 2 * MTCNN_SAFE_MIN_FACE
        if not faces and retry:
            faces = self._detect(image, RETRY_SCALE, thresholds)
            if faces:
                log.info("faces found only at %.2fx scale", RETRY_SCALE)
        return faces

    def _work_scale(self, h: int, w: int, extra_scale: float) -> float:
        return min(1.0, self.max_side / max(h, w)) * extra_scale

    def _detect(self, image: np.ndarray, extra_scale: float,
                thresholds: tuple[float, float, float] | None = None) -> list[Face]:
        thresholds = thresholds or self.thresholds
        h, w = image.shape[:2]
        scale = self._work_scale(h, w, extra_scale)
        work = image
        if scale < 1.0:
            import cv2

            work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        if min(work.shape[:2]) < 12:  # smaller than MTCNN's first-stage window: nothing to find
            return []
        rows = self._rows(np.ascontiguousarray(work), max(12, round(self.min_face_size * scale)), thresholds)
        faces = []
        for r in rows:
            conf = float(r[4])
            if conf < thresholds[2]:
                continue
            x, y, bw, bh = (float(v) / scale for v in (r[0], r[1], r[2] - r[0], r[3] - r[1]))
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(w, round(x + bw)), min(h, round(y + bh))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            marks = {n: (float(r[5 + i]) / scale, float(r[10 + i]) / scale) for i, n in enumerate(LANDMARK_NAMES)}
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), conf, marks, scale=extra_scale))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def _rows(self, image: np.ndarray, min_face_size: int, thresholds: tuple[float, float, float]) -> np.ndarray:
        """Faces of ``image`` as rows [x1, y1, x2, y2, confidence, 5 landmark x, 5 landmark y], found with the
        P-Net, R-Net and O-Net ``thresholds``."""
        raise NotImplementedError


class MTCNNDetector(_PyramidDetector):
    """MTCNN (Zhang et al. 2016) with the ``mtcnn`` package's weights, run by OpenVINO (pipeline.mtcnn_cascade):
    the same cascade as ``mtcnn`` 1.0, 7-10x faster, with all three stage thresholds honoured."""

    def __init__(self, *args, threads: int | None = None, precision: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        from mien.pipeline import mtcnn_graphs
        from mien.pipeline.runtime import network_precision

        self.precision = network_precision(precision, "mtcnn")
        self._nets = mtcnn_graphs.compile_networks(threads, self.precision)
        self._lock = threading.Lock()  # one infer request per network
        self.signature = (f"mtcnn-openvino-{mtcnn_graphs.weights_sha256()[:12]}-min{self.min_face_size}"
                          f"-t{self.proposal_threshold},{self.refine_threshold},{self.threshold}"
                          f"-s{self.max_side}-retry{RETRY_SCALE}" + ("" if self.precision == "fp32" else f"-{self.precision}"))

    def _rows(self, image: np.ndarray, min_face_size: int, thresholds: tuple[float, float, float]) -> np.ndarray:
        from mien.pipeline.mtcnn_cascade import StageThresholds, detect

        with self._lock:
            return detect(self._nets, image, min_face_size, StageThresholds(*thresholds))


class KerasMTCNNDetector(_PyramidDetector):
    """``mtcnn`` 1.0's own ``detect_faces`` (eager TensorFlow): the reference the fast backend is tested against."""

    name = "mtcnn-keras"

    def __init__(self, *args, precision: str = "auto", **kwargs):  # the reference runs fp32 whatever is asked
        super().__init__(*args, **kwargs)
        self.precision = "fp32"
        from mtcnn import MTCNN

        self._mtcnn = MTCNN(device="CPU:0")
        self.signature = (f"mtcnn-min{self.min_face_size}-t{self.proposal_threshold},{self.refine_threshold},"
                          f"{self.threshold}-s{self.max_side}-retry{RETRY_SCALE}")

    def _work_scale(self, h: int, w: int, extra_scale: float) -> float:
        scale = super()._work_scale(h, w, extra_scale)
        if self.min_face_size * scale > MTCNN_SAFE_MIN_FACE:
            # mtcnn 1.0 sizes its pyramid from the image alone: with min_face_size above ~20 its last
            # levels fall under the 12 px P-Net window and every face is lost. Shrink the image instead.
            scale = MTCNN_SAFE_MIN_FACE / self.min_face_size
        return scale

    def _rows(self, image: np.ndarray, min_face_size: int, thresholds: tuple[float, float, float]) -> np.ndarray:
        pnet, rnet, onet = thresholds
        raw = self._mtcnn.detect_faces(image, min_face_size=min_face_size, threshold_pnet=pnet, threshold_rnet=rnet,
                                       threshold_onet=onet)
        rows = []
        for r in raw:
            x, y, bw, bh = r["box"]
            k = r["keypoints"]
            rows.append([x, y, x + bw, y + bh, r["confidence"], *(k[n][0] for n in LANDMARK_NAMES),
                         *(k[n][1] for n in LANDMARK_NAMES)])
        return np.asarray(rows, np.float64).reshape(-1, 15)


DETECTORS: dict[str, Callable[..., Detector]] = {"mtcnn": MTCNNDetector, "mtcnn-keras": KerasMTCNNDetector}


def build_detector(name: str = "mtcnn", **options) -> Detector:
    """Instantiate a registered detector by name."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}") from None
    return factory(**options)
