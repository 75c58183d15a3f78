"""The subject of a one-subject photo (enrolling a photo, ``verify``, ``embed``'s subject, ``evaluate pairs``): which
of the faces found is the person the photo is about, and a relaxed second look when none is found (issue 38).

The rule, the same in every command and the Python API: the only face; else the largest when it is at least
DOMINANT_AREA_RATIO times the area of the next; else, among the faces at least 1/DOMINANT_AREA_RATIO of the
largest's area, the one nearest the photo's centre weighted by its confidence (``subject_score``). Measured on
lfw-dev (whose subject is the centred face) and the demo enrollment photos: benchmarks/subject.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mien.pipeline.detection import Detector, Face

# The largest face is the subject outright when it is at least this many times the area of the next one.
DOMINANT_AREA_RATIO = 1.5
SUBJECT_RULE = "subject-v1"  # names this rule (and the retry) in cache keys: change it when the rule changes
ONLY, LARGEST, CENTRAL = "only face", "largest face", "central face"


@dataclass(frozen=True)
class Subject:
    """The face a one-subject photo is about, how it was chosen (ONLY, LARGEST, CENTRAL) and how many faces the
    photo has."""

    face: Face
    rule: str
    faces: int

    @property
    def decided_by_rule(self) -> bool:
        """Whether the subject is not simply the largest face (the rule picked a more central one)."""
        return self.rule == CENTRAL


def subject_score(face: Face, height: int, width: int) -> float:
    """Confidence x closeness of the face's centre to the photo's centre (1 at the centre, 0 at a corner)."""
    x, y, w, h = face.bbox
    dx, dy = (x + w / 2 - width / 2) / (width / 2), (y + h / 2 - height / 2) / (height / 2)
    return float(face.confidence * max(0.0, 1.0 - np.hypot(dx, dy) / np.sqrt(2)))


def choose_subject(faces: list[Face], height: int, width: int, ratio: float = DOMINANT_AREA_RATIO) -> Subject | None:
    """The subject among ``faces`` of an image of ``height`` x ``width`` by the module's rule (``ratio``: the
    DOMINANT_AREA_RATIO, a parameter for benchmarks/subject.py only); None when there is no face."""
    if not faces:
        return None
    largest = max(faces, key=lambda f: f.area)
    others = sorted((f for f in faces if f is not largest), key=lambda f: f.area, reverse=True)
    if not others:
        return Subject(largest, ONLY, 1)
    if largest.area >= ratio * others[0].area:
        return Subject(largest, LARGEST, len(faces))
    near = [largest] + [f for f in others if f.area * ratio >= largest.area]
    best = max(near, key=lambda f: subject_score(f, height, width))
    return Subject(best, LARGEST if best is largest else CENTRAL, len(faces))


def find_faces(detector: Detector, image: np.ndarray, retry_threshold: float | None) -> list[Face]:
    """Faces for a one-subject task: ``detector.detect``; when it finds none, its relaxed retry at
    ``retry_threshold`` (None: no retry), whose faces say ``detected_on_retry``."""
    faces = detector.detect(image)
    relaxed = getattr(detector, "detect_relaxed", None)  # a caller's own Detector may have no relaxed search
    if not faces and retry_threshold is not None and relaxed is not None:
        faces = relaxed(image, retry_threshold)
    return faces


def find_subject(detector: Detector, image: np.ndarray, retry_threshold: float | None) -> Subject | None:
    """The subject of a one-subject photo (``find_faces`` then ``choose_subject``); None when no face is found."""
    return choose_subject(find_faces(detector, image, retry_threshold), *image.shape[:2])
