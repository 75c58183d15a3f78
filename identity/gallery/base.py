"""The gallery interface and its value types, shared by every backend."""
from __future__ import annotations

import json
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from mien.identity.errors import IdentityError

SCHEMA_VERSION = 2  # 2: former_names, the names each person had before a rename (erasure covers them)


class GalleryError(IdentityError):
    """The gallery cannot be opened or changed as asked; the message says why and what to do."""


class GalleryBusyError(GalleryError):
    """Another process held the gallery's write lock for too long."""


class GalleryGoneError(GalleryError):
    """The gallery's file was deleted or replaced under a running process: writing on would lose what it wrote."""


class GalleryFullError(GalleryError):
    """The disk under the gallery is full: the change was not made and nothing stored was lost."""


class UnknownPersonError(GalleryError):
    """The person is not enrolled."""

    @classmethod
    def of(cls, name: str) -> "UnknownPersonError":
        """The one way mien says a name is not enrolled (CLI, API and galleries alike)."""
        return cls(f"{name!r} is not enrolled; `mien people list` (GET /people) shows who is.")


class UnknownPhotoError(GalleryError):
    """The person has no photo with that content hash."""

    @classmethod
    def of(cls, name: str, photo_hash: str) -> "UnknownPhotoError":
        """The one wording for every place that looks a photo up (removing it, its thumbnail)."""
        return cls(f"{name!r} has no photo {photo_hash[:16]}...; `mien people show {name}` (GET /people/{name}) "
                   "lists their photos.")


class PersonExistsError(GalleryError):
    """A person of that name (or one differing only in case or Unicode form) is already enrolled."""


def name_key(name: str) -> str:
    """The identity of a name for uniqueness: NFC-normalised and case-folded (``Ana`` and ``ana`` are one person)."""
    return unicodedata.normalize("NFC", name).casefold()


@dataclass(frozen=True)
class NameSpan:
    """A name a person was recognised under and when (Unix times; None: open), so erasure finds their history rows
    under every name they had, and not another person's rows under the same name before or after them."""

    name: str
    since: float | None = None
    until: float | None = None


def name_spans(current: str, former: list[tuple[str, float | None]],
               taken_by_others: list[tuple[str, float]]) -> list[NameSpan]:
    """The spans of a person's names: ``current`` (open-ended) and each ``former`` (name, when another person took
    it or None); each starts when the last other holder of that name gave it up (``taken_by_others``: (key, when
    this person took it from them))."""
    spans = []
    for name, until in [(current, None), *former]:
        starts = [t for key, t in taken_by_others if key == name_key(name) and (until is None or t <= until)]
        spans.append(NameSpan(name, max(starts) if starts else None, until))
    return spans


@dataclass(frozen=True)
class NewFace:
    """A face to enroll: the photo's content hash, its embedding, where it came from and (uploads) its bytes."""

    photo_hash: str
    embedding: np.ndarray
    source: str
    photo: bytes | None = None


@dataclass(frozen=True)
class AddedFace:
    """What happened to one NewFace: added, already enrolled for that person, or also enrolled as someone else."""

    photo_hash: str
    added: bool
    also_enrolled_as: tuple[str, ...] = ()


@dataclass
class PersonInfo:
    """One enrolled person: name, and per face its photo hash, source and when it was added."""

    name: str
    faces: list[dict] = field(default_factory=list)

    @property
    def photos(self) -> int:
        return len(self.faces)


@dataclass(frozen=True)
class GallerySnapshot:
    """Every enrolled embedding at one generation: what matchers are built from."""

    vectors: np.ndarray  # (n, d) float32, L2-normalised
    labels: list[str]
    face_ids: np.ndarray  # (n,) int64, stable across generations
    generation: int
    model: str | None
    thresholds: dict
    gallery_id: str = ""  # unique per gallery: an index saved for one is never applied to another

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for label in self.labels:
            out[label] = out.get(label, 0) + 1
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class Changes:
    """What changed after a generation: faces added (ids, vectors, labels) and face ids removed."""

    generation: int
    added_ids: np.ndarray
    added_vectors: np.ndarray
    added_labels: list[str]
    removed_ids: np.ndarray


def person_info(name: str, rows: list) -> PersonInfo:
    """A PersonInfo from rows of (face id, photo hash, source, added, photo stored), as both backends select them."""
    return PersonInfo(name, [{"face_id": i, "photo_hash": h, "source": s, "added": a, "photo_stored": bool(st)}
                             for i, h, s, a, st in rows])


def snapshot_from(meta: dict, rows: list, vectors: np.ndarray) -> GallerySnapshot:
    """A GallerySnapshot from the meta table and rows of (face id, name, ...) in face id order."""
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return GallerySnapshot(vectors, [r[1] for r in rows], ids, int(meta["generation"]), meta.get("model"),
                           json.loads(meta["thresholds"]) if "thresholds" in meta else {}, meta.get("gallery_id", ""))


class Gallery(ABC):
    """A store of people and their face embeddings, written in transactions, versioned by a generation number."""

    location: str

    def check(self) -> None:
        """GalleryGoneError if the storage this gallery was opened on is no longer where it was (default: fine)."""

    # ---- reading ----------------------------------------------------------------------------
    @abstractmethod
    def generation(self) -> int:
        """A number that grows with every committed change (a server polls it to pick up other writers)."""

    @abstractmethod
    def gallery_id(self) -> str:
        """A unique id of this gallery (files derived from it, such as a saved index, carry it)."""

    @abstractmethod
    def model(self) -> str | None:
        """The embedding model version every stored embedding was made with (None while empty)."""

    @abstractmethod
    def people(self) -> dict[str, int]:
        """Enrolled people and their number of faces, sorted by name."""

    @abstractmethod
    def person(self, name: str) -> PersonInfo:
        """One person's faces; UnknownPersonError if not enrolled."""

    @abstractmethod
    def snapshot(self, vectors: bool = True) -> GallerySnapshot:
        """All embeddings with labels and face ids, at one generation (``vectors=False``: labels and ids only,
        for a matcher whose index was loaded from disk)."""

    @abstractmethod
    def changes_since(self, generation: int) -> Changes | None:
        """Faces added and removed after ``generation`` (None if the log no longer reaches back that far)."""

    @abstractmethod
    def thresholds(self) -> dict:
        """Open-set thresholds stored with the gallery (empty: the defaults)."""

    # ---- the embedding cache (photo hash -> embedding or why it was unusable) -----------------
    @abstractmethod
    def cached(self, photo_hashes: list[str], model: str) -> dict[str, tuple[np.ndarray | None, str | None, tuple | None]]:
        """Cached results for photo hashes under ``model``: (embedding or None, reason, bbox)."""

    @abstractmethod
    def cache(self, entries: dict[str, tuple[np.ndarray | None, str | None, tuple | None]], model: str) -> None:
        """Store what photos gave under ``model`` (so re-enrolling embeds only new photos)."""

    # ---- writing ----------------------------------------------------------------------------
    @abstractmethod
    def add_faces(self, name: str, faces: list[NewFace], model: str) -> list[AddedFace]:
        """Add faces to a person (created if new) in one transaction; a face already enrolled for them is skipped."""

    @abstractmethod
    def sync_folder(self, people: dict[str, list[NewFace]], model: str, *, replace: bool = False) -> dict:
        """Merge folder people in one transaction: each named person's folder faces become exactly ``faces``
        (uploads kept); with ``replace``, everybody else is forgotten. Returns {"added","removed","forgotten"}."""

    @abstractmethod
    def forget(self, name: str) -> int:
        """Erase a person: faces, stored photos and their cached embeddings; returns faces removed."""

    @abstractmethod
    def name_spans(self, name: str) -> list[NameSpan]:
        """Every name the person has had (renames are recorded) with when: what erasing their history must cover;
        UnknownPersonError if not enrolled."""

    @abstractmethod
    def remove_photo(self, name: str, photo_hash: str) -> int:
        """Erase one photo of a person (its faces, stored bytes and cached embedding); returns faces removed;
        UnknownPersonError / UnknownPhotoError when there is no such person or photo. The person stays enrolled
        with their other photos."""

    @abstractmethod
    def rename(self, old: str, new: str) -> None:
        """Rename a person; PersonExistsError if ``new`` is taken."""

    @abstractmethod
    def set_thresholds(self, thresholds: dict) -> None:
        """Store open-set thresholds with the gallery."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
