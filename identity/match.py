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
        r4 = (lambda v: None if v is None else round(v, 4))  # None: erased with the person (results database)
        return {"name": self.name, "confidence": r4(self.confidence), "distance": r4(self.distance)}
