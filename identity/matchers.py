"""Matchers: who is this embedding, among a gallery snapshot, with one open-set rule for strangers.

``svm``: the design's calibrated linear SVM (small galleries; fitted from the gallery, its arrays kept between
runs by identity.upkeep).
``knn``: nearest neighbours over an index (exact numpy search for small galleries, HNSW for large ones),
updated incrementally from the gallery's change log. Both say ``unknown`` unless the distance to the candidate
person's nearest enrolled embedding is within the threshold (the SVM also needs its probability).
"""
from __future__ import annotations

import hashlib
import threading
from typing import Protocol

import numpy as np

from mien.identity.classifier import IdentityClassifier, MatchThresholds
from mien.identity.errors import NotEnrolledError, StaleModelError
from mien.identity.gallery.base import Changes, GallerySnapshot
from mien.identity.match import UNKNOWN, Candidate, IdentityMatch
from mien.identity.svm_proba import LinearSVMProba

# Above this many enrolled embeddings `auto` uses the nearest-neighbour matcher: the calibrated one-vs-one SVM's
# refit grows faster than the gallery (benchmarks/gallery.py, 2 idle cores, 5 photos per person: 100 faces 0.08 s,
# 500 0.57 s, 1000 2.6 s), and every enrollment refits it.
SVM_MAX_FACES = 500
NEIGHBOURS = 10


class Matcher(Protocol):
    """What the Recognizer needs from a matcher."""

    kind: str
    persons: list[str]
    thresholds: MatchThresholds
    embedder_version: str
    generation: int
    fingerprint: str

    @property
    def counts(self) -> dict[str, int]: ...

    def predict(self, embeddings: np.ndarray, thresholds: MatchThresholds | None = None,
                candidates: int = 0) -> list[IdentityMatch]: ...


def thresholds_of(snapshot: GallerySnapshot) -> MatchThresholds:
    """The thresholds stored with the gallery, else the defaults."""
    base = MatchThresholds()
    th = snapshot.thresholds or {}
    return MatchThresholds(distance=float(th.get("distance", base.distance)),
                      probability=float(th.get("probability", base.probability)))


def snapshot_fingerprint(snapshot: GallerySnapshot) -> str:
    """Changes with every enrollment: the gallery's face ids, labels and generation."""
    h = hashlib.sha256(np.ascontiguousarray(snapshot.face_ids).tobytes())
    h.update("\0".join(snapshot.labels).encode())
    h.update(f"{snapshot.generation}|{snapshot.model}".encode())
    return h.hexdigest()[:16]


class SVMMatcher(IdentityClassifier):
    """The calibrated linear SVM + nearest-distance check, fitted from a gallery snapshot."""

    kind = "svm"

    def __init__(self, snapshot: GallerySnapshot, embedder_version: str, fitted: LinearSVMProba | None = None):
        super().__init__(snapshot.vectors, snapshot.labels, embedder_version, thresholds_of(snapshot), fitted)
        self.generation = snapshot.generation
        self.fingerprint = snapshot_fingerprint(snapshot)


class KNNMatcher:
    """Nearest enrolled embeddings via an index; candidate = the nearest face's person, updated incrementally."""

    kind = "knn"

    def __init__(self, snapshot: GallerySnapshot, embedder_version: str, index=None, index_kind: str | None = None):
        from mien.identity import knn

        if not len(snapshot.labels):
            raise NotEnrolledError("no enrolled embeddings: enroll at least one person with `mien enroll`.")
        self.embedder_version = embedder_version
        self.thresholds = thresholds_of(snapshot)
        self.generation = snapshot.generation
        self.fingerprint = snapshot_fingerprint(snapshot)
        self._lock = threading.Lock()  # an update and a search never interleave (requests run in threads)
        self._names: list[str] = []
        self._code_of: dict[str, int] = {}
        self._ids = np.zeros(0, np.int64)
        self._codes = np.zeros(0, np.int32)
        self._set_labels(snapshot.face_ids, snapshot.labels)
        if index is None:  # else an index loaded from disk, already holding exactly the snapshot's faces
            index = knn.build_index(index_kind or knn.choose_index_kind(len(snapshot.labels)), snapshot.vectors.shape[1])
            index.add(snapshot.face_ids, snapshot.vectors)
        self.index = index

    # ---- labels by face id (sorted arrays: ~12 bytes per face, not a dict of a million entries) ----------
    def _code(self, name: str) -> int:
        if name not in self._code_of:
            self._code_of[name] = len(self._names)
            self._names.append(name)
        return self._code_of[name]

    def _set_labels(self, ids: np.ndarray, labels: list[str]) -> None:
        codes = np.fromiter((self._code(n) for n in labels), np.int32, count=len(labels))
        ids = np.concatenate([self._ids, np.asarray(ids, np.int64)])
        codes = np.concatenate([self._codes, codes])
        order = np.argsort(ids, kind="stable")
        self._ids, self._codes = ids[order], codes[order]

    def _labels_of(self, ids: np.ndarray) -> np.ndarray:
        """Person code per face id (-1 for padding or an id this matcher does not know)."""
        if not len(self._ids):
            return np.full(ids.shape, -1, np.int32)
        pos = np.clip(np.searchsorted(self._ids, ids), 0, len(self._ids) - 1)
        return np.where((ids >= 0) & (self._ids[pos] == ids), self._codes[pos], -1)

    @property
    def persons(self) -> list[str]:
        return sorted({self._names[c] for c in np.unique(self._codes)})

    @property
    def counts(self) -> dict[str, int]:
        codes, n = np.unique(self._codes, return_counts=True)
        return dict(sorted((self._names[c], int(k)) for c, k in zip(codes, n)))

    def __len__(self) -> int:
        return len(self._ids)

    def update(self, changes: Changes) -> None:
        """Apply the gallery's changes since this matcher's generation (removals, then additions)."""
        with self._lock:
            self._apply(changes)

    def _apply(self, changes: Changes) -> None:
        if len(changes.removed_ids):
            self.index.remove(changes.removed_ids)
            keep = ~np.isin(self._ids, changes.removed_ids)
            self._ids, self._codes = self._ids[keep], self._codes[keep]
        if len(changes.added_ids):
            self.index.add(changes.added_ids, changes.added_vectors)
            self._set_labels(changes.added_ids, changes.added_labels)
        self.generation = changes.generation
        h = hashlib.sha256(f"{self.fingerprint}|{changes.generation}".encode())
        self.fingerprint = h.hexdigest()[:16]

    def predict(self, embeddings: np.ndarray, thresholds: MatchThresholds | None = None,
                candidates: int = 0) -> list[IdentityMatch]:
        """Per row: the nearest face's person if within the distance threshold, else ``unknown`` (and that person
        as the closest); with ``candidates`` the nearest people among the searched neighbours, closest first.

        The confidence is d2 / (d1 + d2) with d1 the nearest distance and d2 the nearest distance to anybody
        else among the neighbours (0.5: a tie, 1.0: nobody else near).
        """
        th = thresholds or self.thresholds
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if not len(embeddings):
            return []
        if not len(self):
            raise NotEnrolledError("nobody is enrolled any more: enroll people with `mien enroll`.")
        with self._lock:
            ids, dists = self.index.search(embeddings, min(max(NEIGHBOURS, 4 * candidates), len(self)))
            codes = self._labels_of(ids)
            first = (codes >= 0).argmax(axis=1)  # the nearest face this matcher can name (normally column 0)
            names = [self._names[row[f]] if row[f] >= 0 else UNKNOWN for row, f in zip(codes, first)]
            tops = [self._nearest_people(row_codes, row_d, candidates) for row_codes, row_d in zip(codes, dists)]
        out = []
        for name, f, row_codes, row_d, top in zip(names, first, codes, dists, tops):
            best, d1 = int(row_codes[f]), float(row_d[f])
            if best < 0:
                out.append(IdentityMatch(UNKNOWN, None, float("inf"), UNKNOWN))
                continue
            others = row_d[(row_codes != best) & (row_codes >= 0)]
            d2 = float(others[0]) if len(others) else None
            conf = 1.0 if d2 is None or d1 + d2 == 0 else d2 / (d1 + d2)
            out.append(IdentityMatch(name if d1 <= th.distance else UNKNOWN, conf, d1, name, top))
        return out

    def _nearest_people(self, codes: np.ndarray, dists: np.ndarray, k: int) -> tuple[Candidate, ...]:
        """The first ``k`` distinct people among one row of neighbours (ascending distance)."""
        seen: dict[int, float] = {}
        for code, d in zip(codes, dists):
            if len(seen) >= k:
                break
            if code >= 0 and int(code) not in seen:
                seen[int(code)] = float(d)
        return tuple(Candidate(self._names[c], d) for c, d in seen.items())


MATCHERS = {"svm": SVMMatcher, "knn": KNNMatcher}


def choose_matcher_kind(n_faces: int, n_people: int) -> str:
    """``svm`` while the gallery is small enough to refit quickly (and has two people), else ``knn``."""
    return "svm" if n_faces <= SVM_MAX_FACES else "knn"


def build_matcher(snapshot: GallerySnapshot, model: str, kind: str = "auto",
                  fitted: LinearSVMProba | None = None) -> Matcher:
    """A matcher over ``snapshot``; refuses a gallery whose embeddings another model (weights, face crop) made.
    ``fitted``: an SVM saved from an earlier fit on this snapshot (identity.upkeep), so none is fitted now."""
    if not len(snapshot.labels):
        raise NotEnrolledError("nobody is enrolled yet: enroll people with `mien enroll DIR` or `mien people add`.")
    if snapshot.model is not None and snapshot.model != model:
        raise StaleModelError(
            f"the gallery's embeddings were made by {snapshot.model}, but {model} is loaded; "
            "rebuild it with `mien enroll DIR --replace`.")
    if kind == "auto":
        kind = choose_matcher_kind(len(snapshot.labels), len(set(snapshot.labels)))
    if kind not in MATCHERS:
        raise ValueError(f"unknown matcher {kind!r}; choose from {sorted(MATCHERS)} or auto")
    return SVMMatcher(snapshot, model, fitted) if kind == "svm" else MATCHERS[kind](snapshot, model)
