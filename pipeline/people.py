"""Changing who is enrolled one person at a time (``mien people``, the API and the web page), via the gallery.

Uploaded photos are stored in the gallery with the person (so a new model can re-embed them and forgetting
erases them in the same transaction); only photos new to the photo cache go through the models.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mien.identity.gallery import Gallery, NewFace, UnknownPersonError, name_key  # noqa: F401 (re-exported)
from mien.identity.gallery.base import NameSpan
from mien.pipeline.enroll import embed_photos
from mien.pipeline.gallery import gallery_model
from mien.pipeline.names import validate_person_name

UPLOAD = "upload:"


@dataclass
class PhotoResult:
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


def enroll_photos(name: str, photos: list[tuple[str, bytes]], recognizer, gallery: Gallery) -> PersonUpdate:
    """Embed photos of one person (cache misses only) and add them to the gallery in one transaction.

    Photos already enrolled for that person (same content) are not added twice; nothing is written when no
    photo is usable. A photo also enrolled as somebody else is added with a warning in its result.
    """
    name = validate_person_name(name)
    results, faces = [], []
    for (filename, data), (key, entry) in zip(photos, embed_photos(photos, recognizer, gallery).entries):
        results.append(PhotoResult(filename, entry.embedding is not None, entry.reason))
        if entry.embedding is not None:
            faces.append((len(results) - 1, NewFace(key, entry.embedding, UPLOAD + filename, data)))
    if not faces:
        return PersonUpdate(name, 0, 0, results)
    outcome = gallery.add_faces(name, [f for _, f in faces], gallery_model(recognizer))
    for (i, _), added in zip(faces, outcome):
        results[i].also_enrolled_as = added.also_enrolled_as
        if not added.added:
            results[i].reason = "already enrolled for this person"
    enrolled = next(n for k, n in gallery.people().items() if name_key(k) == name_key(name))
    return PersonUpdate(name, enrolled, sum(a.added for a in outcome), results)


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
