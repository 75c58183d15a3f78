"""The per-call knobs of recognition and their defaults: the one place the CLI, API and library take them from."""
from __future__ import annotations

from dataclasses import dataclass

MIRROR_CHOICES = ("unsure", "always")  # Options.mirror


@dataclass
class Options:
    """Per-call knobs of recognition; ``None`` thresholds mean the enrolled classifier's own."""

    runtime: str = "openvino"  # runs FaceNet and the emotion network: openvino | tensorflow (the reference)
    precision: str = "auto"  # OpenVINO's arithmetic: auto (per network, as measured) | fp32 | bf16 | int8 (runtime.PRECISIONS)
    detector: str = "mtcnn"  # mtcnn (OpenVINO) | mtcnn-keras (mtcnn 1.0's TensorFlow implementation, the reference)
    min_face_size: int = 20
    detection_threshold: float = 0.8  # O-Net, the last stage: the confidence a reported face has at least
    proposal_threshold: float = 0.6  # P-Net
    refine_threshold: float = 0.7  # R-Net
    # One-subject tasks (enroll, verify, embed, evaluate pairs, people add): when no face passes the thresholds above,
    # look again with P-Net's and R-Net's at this (O-Net's and min_face_size kept). None: no retry.
    # recognize never retries (a group photo's faces are all reported, at the thresholds above).
    retry_threshold: float | None = 0.4
    distance_threshold: float | None = None  # "same person" at or below (None: the gallery's, else SAME_PERSON_DISTANCE)
    probability_threshold: float | None = None  # the SVM's least probability to name a face (None: the gallery's)
    candidates: int = 0  # also list the nearest enrolled people with their distances, up to this many per face
    emotion_threshold: float = 0.0
    emotion_model: str = "fer2013"  # which shipped emotion model: fer2013 (7 emotions) | ferplus (8, with contempt)
    emotion_views: str = "model"  # test-time views per face: model (as model.json says) or an emotion.views preset
    # When FaceNet and an emotion network that averages a face with its mirror image look at the mirror too:
    # unsure (only faces whose single-view answer lies near a threshold, where the mirror can change it: the same
    # answers on LFW and FER2013 for about half the passes, docs/results.md) | always.
    mirror: str = "unsure"
    matcher: str = "auto"  # svm | knn | auto (svm for small galleries, nearest neighbours for large ones)
