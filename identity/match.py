"""The identity decision for one face (light: no scikit-learn), shared by the classifier and every result record."""
from __future__ import annotations

from dataclasses import dataclass

UNKNOWN = "unknown"


@dataclass(frozen=True)
class IdentityMatch:
    """The decision for one face: a name or ``unknown``, the SVM probability and the nearest distance."""

    name: str
    confidence: float
    distance: float
    candidate: str  # best enrolled person even when rejected as unknown

    def to_dict(self) -> dict:
        """JSON form (the candidate stays internal)."""
        return {"name": self.name, "confidence": round(self.confidence, 4), "distance": round(self.distance, 4)}
