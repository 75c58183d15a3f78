"""Linking faces across video frames into tracks, voting a track's identity and smoothing its emotion.

A detection joins the track whose last box overlaps it most (IoU), unless their FaceNet embeddings
say they are different people; a track lost for a moment is re-found by embedding alone. One bad
frame cannot rename a track (majority vote over its frames), and emotion scores are smoothed with an
exponential moving average against frame-to-frame flicker.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

UNKNOWN = "unknown"

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class IdentityVote:
    """Majority vote over a track's per-frame names; known names beat ``unknown`` on ties, then total confidence."""

    counts: Counter = field(default_factory=Counter)
    confidence: Counter = field(default_factory=Counter)

    def add(self, name: str, confidence: float) -> None:
        self.counts[str(name)] += 1
        self.confidence[str(name)] += float(confidence)

    @property
    def name(self) -> str | None:
        if not self.counts:
            return None
        return max(self.counts, key=lambda n: (self.counts[n], n != UNKNOWN, self.confidence[n]))

    @property
    def share(self) -> float:
        """Fraction of the votes the winning name got."""
        total = sum(self.counts.values())
        return self.counts[self.name] / total if total else 0.0


class EmotionSmoother:
    """Exponential moving average of the emotion scores (7, or FER+'s 8): ``s = alpha * p + (1 - alpha) * s``."""

    def __init__(self, alpha: float = 0.3):
        if not 0 < alpha <= 1:
            raise ValueError("smoothing alpha must be in (0, 1]")
        self.alpha = alpha
        self.scores: np.ndarray | None = None

    def update(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        self.scores = scores.copy() if self.scores is None else self.alpha * scores + (1 - self.alpha) * self.scores
        return self.scores


def label_changes(labels: Sequence[str | None]) -> int:
    """How many times a sequence of labels switches value (None entries are skipped)."""
    seq = [x for x in labels if x is not None]
    return sum(a != b for a, b in zip(seq, seq[1:]))


@dataclass
class Observation:
    """One face in one frame: where, which track, raw and decided identity, raw and smoothed emotion."""

    frame: int
    time: float
    track_id: int
    bbox: tuple[int, int, int, int]
    detected: bool  # False: box carried by tracking between detection frames
    raw_identity: str | None
    identity: str | None
    identity_confidence: float | None
    raw_emotion: str | None
    raw_scores: dict[str, float] | None
    emotion: str | None
    scores: dict[str, float] | None
    detection_confidence: float | None = None  # MTCNN's, on detected frames

    def to_dict(self) -> dict:
        r4 = (lambda d: {k: round(v, 4) for k, v in d.items()} if d else None)
        return {"frame": self.frame, "time": round(self.time, 3), "track_id": self.track_id,
                "bbox": list(self.bbox), "detected": self.detected, "raw_identity": self.raw_identity,
                "identity": self.identity, "identity_confidence": None if self.identity_confidence is None
                else round(self.identity_confidence, 4), "raw_emotion": self.raw_emotion,
                "raw_emotion_scores": r4(self.raw_scores), "emotion": self.emotion, "emotion_scores": r4(self.scores)}


@dataclass
class Track:
    """One person followed through the video."""

    track_id: int
    bbox: Box
    first_frame: int
    last_detected: int
    embedding: np.ndarray | None = None
    vote: IdentityVote = field(default_factory=IdentityVote)
    smoother: EmotionSmoother = field(default_factory=EmotionSmoother)
    raw_names: list[str] = field(default_factory=list)
    voted_names: list[str | None] = field(default_factory=list)
    raw_emotions: list[str] = field(default_factory=list)
    smoothed_emotions: list[str] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.vote.name


class Tracker:
    """Greedy IoU + embedding association of each frame's detections to live tracks."""

    def __init__(self, iou_threshold: float = 0.3, different_person: float = 1.25, reid_distance: float = 0.8,
                 max_missed: int = 30, smoothing: float = 0.3):
        self.iou_threshold = iou_threshold
        # Embedding distance over which two faces are two people however much their boxes overlap. On the demo
        # photos different people are >= 1.28 apart, the same person <= 1.25 (blurred frames included); a frame
        # recognized as someone else below this distance stays in its track and is outvoted there.
        self.different_person = different_person
        self.reid_distance = reid_distance  # re-find a track by embedding alone (after it was lost or jumped)
        self.max_missed = max_missed        # frames a track survives without a detection
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 1

    def _compatible(self, track: Track, emb: np.ndarray | None) -> tuple[bool, float]:
        if emb is None or track.embedding is None:
            return True, 0.0
        dist = float(np.linalg.norm(emb - track.embedding))
        return dist <= self.different_person, dist

    def update(self, frame: int, boxes: list[Box], embeddings: Sequence[np.ndarray | None] | None = None) -> list[Track]:
        """Assign each detection of ``frame`` to a track (new ones are created); returns them in order."""
        n = len(boxes)
        embeddings = list(embeddings) if embeddings is not None else [None] * n
        self._expire(frame)
        pairs = []
        for ti, t in enumerate(self.tracks):
            for di in range(n):
                overlap = iou(t.bbox, boxes[di])
                ok, dist = self._compatible(t, embeddings[di])
                if not ok:
                    continue
                if overlap >= self.iou_threshold:
                    pairs.append((1.0 + overlap, ti, di))
                elif embeddings[di] is not None and t.embedding is not None and dist <= self.reid_distance:
                    pairs.append((1.0 - dist, ti, di))
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for _, ti, di in sorted(pairs, reverse=True):
            if ti in used_tracks or di in assigned:
                continue
            used_tracks.add(ti)
            assigned[di] = self.tracks[ti]
        out = []
        for di in range(n):
            track = assigned.get(di)
            if track is None:
                track = Track(self._next_id, boxes[di], frame, frame, smoother=EmotionSmoother(self.smoothing))
                self._next_id += 1
                self.tracks.append(track)
            track.bbox, track.last_detected = tuple(int(v) for v in boxes[di]), frame
            if embeddings[di] is not None:
                track.embedding = np.asarray(embeddings[di], dtype=np.float32)
            out.append(track)
        return out

    def live(self, frame: int) -> list[Track]:
        """Tracks seen at the most recent detection frame (the ones to follow between detections)."""
        latest = max((t.last_detected for t in self.tracks), default=None)
        return [t for t in self.tracks if t.last_detected == latest]

    def _expire(self, frame: int) -> None:
        keep = []
        for t in self.tracks:
            (keep if frame - t.last_detected <= self.max_missed else self.finished).append(t)
        self.tracks = keep

    def all_tracks(self) -> list[Track]:
        return sorted(self.finished + self.tracks, key=lambda t: t.track_id)
