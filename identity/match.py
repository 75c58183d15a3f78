"""The identity decision for one face (light: no scikit-learn), shared by the classifier and every result record.

"unknown" is told one way everywhere: the name ``unknown``, no confidence (a probability of a person mien did not
name means nothing to a reader), and the closest enrolled person with the distance to them.
"""
from __future__ import annotations

from dataclasses import dataclass

UNKNOWN = "unknown"


def _r4(value: float | None) -> float | None:
    return None if value is None else round(value, 4)  # None: erased with the person (results database)


@dataclass(frozen=True)
class Candidate:
    """One enrolled person and the distance from a face to that person's nearest enrolled photo."""

    name: str
    distance: float

    def to_dict(self) -> dict:
        return {"name": self.name, "distance": _r4(self.distance)}


@dataclass(frozen=True)
class IdentityMatch:
    """The decision for one face: an enrolled name or ``unknown``; ``confidence`` (how sure the matcher is of the
    name, ``None`` for a stranger); ``distance`` to ``candidate``, the closest enrolled person (the name itself when
    named); ``candidates``: the nearest people with their distances, closest first, when asked for."""

    name: str
    confidence: float | None
    distance: float
    candidate: str
    candidates: tuple[Candidate, ...] = ()

    def __post_init__(self) -> None:
        if self.name == UNKNOWN and self.confidence is not None:  # never a confidence for a name not given
            object.__setattr__(self, "confidence", None)

    @property
    def known(self) -> bool:
        """Whether the face was named (an enrolled person, not ``unknown``)."""
        return self.name != UNKNOWN

    @property
    def closest(self) -> str | None:
        """The closest enrolled person (None when not known, e.g. read back from an older results database)."""
        return None if self.candidate == UNKNOWN else self.candidate

    def to_dict(self) -> dict:
        """JSON form: ``name``, ``confidence`` (null for a stranger), ``distance``, ``closest`` and, when asked for,
        ``candidates``."""
        out = {"name": self.name, "confidence": _r4(self.confidence), "distance": _r4(self.distance),
               "closest": self.closest}
        if self.candidates:
            out["candidates"] = [c.to_dict() for c in self.candidates]
        return out


def who_text_for_stranger(closest: str) -> str:
    """A stranger's who-cell in a table: unknown, and the enrolled person nearest to them."""
    return f"{UNKNOWN} (closest: {closest})"


def name_text(name: str, closest: str | None) -> str:
    """How a table names a face (``mien recognize``, ``mien history``): the name, or ``unknown (closest: NAME)`` for
    a stranger whose closest enrolled person is known (the distance sits in its own column)."""
    return who_text_for_stranger(closest) if name == UNKNOWN and closest else name


# How far a face's answer may move when FaceNet also sees its mirror image (measured on 355 faces against the
# demo gallery: its distance moved at most 0.048 and the SVM's probability 0.058): twice that is "near a threshold".
MIRROR_DISTANCE_BAND = 0.1
MIRROR_PROBABILITY_BAND = 0.1


def near_threshold(match: IdentityMatch | None, distance: float, probability: float) -> bool:
    """Whether the mirror image could change this single-view answer: the face's distance lies within
    MIRROR_DISTANCE_BAND of the ``distance`` threshold; a named face's confidence within MIRROR_PROBABILITY_BAND
    above ``probability`` (or above an even split between two people); or a stranger within the distance, whom
    only the SVM's probability turned away (a stranger carries no probability to measure the margin by)."""
    if match is None:
        return False
    if abs(match.distance - distance) < MIRROR_DISTANCE_BAND:
        return True
    if not match.known:
        return match.distance <= distance
    return (match.confidence or 0.0) < max(probability, 0.5) + MIRROR_PROBABILITY_BAND
