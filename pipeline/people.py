"""Changing who is enrolled one person at a time (``mien people``, the API and the web page), via the gallery.

Uploaded photos are stored in the gallery with the person (so a new model can re-embed them and forgetting
erases them in the same transaction); only photos new to the photo cache go through the models.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mien.identity.gallery import Gallery, NewFace, UnknownPersonError, name_key  # noqa: F401 (re-exported)
from mien.identity.gallery.base import NameSpan
from mien.pipeline.enroll import embed_photos
from mien.pipeline.gallery import gallery_model
from mien.pipeline.errors import UsageError
from mien.pipeline.names import validate_person_name

UPLOAD = "upload:"


class SimilarNameError(UsageError):
    """A new person's name is a likely typo of an enrolled one; the message says which, and how to insist."""


@dataclass(frozen=True)
class Unreadable:
    """A photo whose bytes could not be had (the reason says why): skipped, and reported in order with the others."""

    reason: str


@dataclass
class PhotoResult:
    """What became of one photo: used or not, why not, and who else it is enrolled as."""

    file: str
    used: bool
    reason: str | None = None
    also_enrolled_as: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"file": self.file, "used": self.used, "reason": self.reason,
                "also_enrolled_as": list(self.also_enrolled_as)}


@dataclass
class PersonUpdate:
    """The outcome of adding photos: how many faces the person has now (0: nothing usable) and one result per photo."""

    name: str
    faces: int
    added: int
    photos: list[PhotoResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "faces": self.faces, "added": self.added, "photos": [p.to_dict() for p in self.photos]}


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (names are at most 64 characters)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def similar_name(name: str, enrolled: list[str]) -> str | None:
    """The enrolled name ``name`` is most likely a typo of (up to case and separators: ``Ben Afleck`` is two edits
    from ``ben_afflek``; one edit allowed under 8 letters, two from 8), or None if it is new or enrolled as is."""
    squash = lambda n: re.sub(r"[\s_.\-]+", "", name_key(n))  # noqa: E731
    key, mine = name_key(name), squash(name)
    if any(name_key(n) == key for n in enrolled):
        return None  # the same person (up to case): adding photos to them
    allowed = 1 if len(mine) < 8 else 2
    scored = sorted((_edits(mine, squash(n)), n) for n in enrolled)
    return scored[0][1] if scored and scored[0][0] <= allowed else None


def check_new_name(name: str, gallery: Gallery, new: bool = False) -> None:
    """SimilarNameError when ``name`` is not enrolled but is a likely typo of an enrolled name, unless ``new``."""
    near = None if new else similar_name(name, list(gallery.people()))
    if near is not None:
        raise SimilarNameError(f"{name!r} is not enrolled, but {near!r} is: did you mean {near!r}? To enroll a new "
                               f"person called {name!r}, say so (`mien people add --new`, or new=True in Python).")


def enroll_photos(name: str, photos: list[tuple[str, bytes | Unreadable]], recognizer, gallery: Gallery) -> PersonUpdate:
    """Embed photos of one person (cache misses only) and add them to the gallery in one transaction.

    Photos already enrolled for that person (same content) are not added twice; unreadable or faceless photos are
    skipped with the reason in their result; nothing is written when no photo is usable. A photo also enrolled as
    somebody else is added with a warning in its result.
    """
    name = validate_person_name(name)
    results = [PhotoResult(file, False, data.reason) if isinstance(data, Unreadable) else None for file, data in photos]
    readable = [(i, file, data) for i, (file, data) in enumerate(photos) if not isinstance(data, Unreadable)]
    faces = []
    embedded = embed_photos([(file, data) for _, file, data in readable], recognizer, gallery).entries
    for (i, file, data), (key, entry) in zip(readable, embedded):
        results[i] = PhotoResult(file, entry.embedding is not None, entry.reason)
        if entry.embedding is not None:
            faces.append((i, NewFace(key, entry.embedding, UPLOAD + file, data)))
    if not faces:
        return PersonUpdate(name, 0, 0, results)
    outcome = gallery.add_faces(name, [f for _, f in faces], gallery_model(recognizer))
    for (i, _), added in zip(faces, outcome):
        results[i].also_enrolled_as = added.also_enrolled_as
        if not added.added:
            results[i].reason = "already enrolled for this person"
    enrolled = next(n for k, n in gallery.people().items() if name_key(k) == name_key(name))
    return PersonUpdate(name, enrolled, sum(a.added for a in outcome), results)


def photo_hash_of(name: str, prefix: str, gallery: Gallery) -> str:
    """The full hash of the one photo of ``name`` whose hash starts with ``prefix`` (8 characters or more)."""
    hashes = {f["photo_hash"] for f in gallery.person(name).faces if f["photo_hash"].startswith(prefix)}
    if len(prefix) < 8 or len(hashes) != 1:
        raise UsageError(f"{prefix!r} names {'no' if not hashes else 'more than one'} photo of {name!r}; give 8 or "
                         "more characters of a hash `mien people show` lists.")
    return hashes.pop()


def remove_photo(name: str, photo_hash: str, gallery: Gallery, home: Path | None = None) -> int:
    """Erase one photo of a person (faces, stored bytes, cached embedding) and the saved nearest-neighbour index
    files (under ``home``, default MIEN_HOME) that still hold its vectors; the person keeps their other photos."""
    from mien.identity.upkeep import discard_saved_indexes
    from mien.pipeline.gallery import index_dir

    removed = gallery.remove_photo(validate_person_name(name), photo_hash)
    discard_saved_indexes(gallery, index_dir(home))
    return removed


@dataclass
class Forgotten:
    """What forgetting a person erased from the gallery, and the names (with when) their history rows are under."""

    faces: int
    names: list[NameSpan]


def forget_person(name: str, gallery: Gallery, home: Path | None = None) -> Forgotten:
    """Erase a person from the gallery (faces, stored photos, cached embeddings, former names) and the saved
    nearest-neighbour index files (under ``home``, default MIEN_HOME) that still hold their vectors; the names they
    had (``ResultsDB.redact_person`` takes them) are read first. Raises UnknownPersonError."""
    from mien.identity.upkeep import discard_saved_indexes
    from mien.pipeline.gallery import index_dir

    name = validate_person_name(name)
    names = gallery.name_spans(name)
    removed = gallery.forget(name)
    discard_saved_indexes(gallery, index_dir(home))
    return Forgotten(removed, names)
