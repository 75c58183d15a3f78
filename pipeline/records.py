"""Result records: one per face (who + emotion), one per image; JSON-ready."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mien.identity.match import IdentityMatch

RESULTS_FORMAT_VERSION = 1


@dataclass
class EmotionResult:
    """The emotion decision for one face: label (or ``uncertain``), its probability and every emotion's score (7, or FER+'s 8)."""

    label: str
    confidence: float
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return {"label": self.label, "confidence": round(self.confidence, 4),
                "scores": {k: round(v, 4) for k, v in self.scores.items()}}


@dataclass
class FaceRecord:
    """Everything mien says about one face."""

    face_id: int
    bbox: tuple[int, int, int, int]
    detection_confidence: float
    landmarks: dict[str, tuple[float, float]]
    identity: IdentityMatch | None = None
    emotion: EmotionResult | None = None
    detection_scale: float = 1.0  # < 1 when only the detector's downscaled retry found the face

    def to_dict(self) -> dict:
        return {
            "face_id": self.face_id,
            "bbox": [int(v) for v in self.bbox],
            "detection_confidence": round(self.detection_confidence, 4),
            "detection_scale": self.detection_scale,
            "landmarks": {k: [round(v[0], 1), round(v[1], 1)] for k, v in self.landmarks.items()},
            "identity": self.identity.to_dict() if self.identity else None,
            "emotion": self.emotion.to_dict() if self.emotion else None,
        }


@dataclass
class ImageRecord:
    """The faces found in one image (or the error that stopped it)."""

    file: str
    width: int = 0
    height: int = 0
    faces: list[FaceRecord] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        """JSON form: the same keys in `recognize --json`, the API, `history --json` and the results database."""
        out = {"file": self.file, "width": self.width, "height": self.height, "faces": [f.to_dict() for f in self.faces]}
        if self.error:
            out["error"] = self.error
        return out


def envelope(records: list[ImageRecord], models: dict[str, str | None], thresholds: dict) -> dict[str, Any]:
    """Records with the model versions and thresholds that produced them: the one results document."""
    return {"format_version": RESULTS_FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "models": models, "thresholds": thresholds, "images": [r.to_dict() for r in records]}
