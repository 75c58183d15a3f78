"""Enrollment: photo folders (``<dir>/<person>/*.jpg``) and uploads → embeddings → the gallery.

Photos are embedded once per content hash (the gallery's photo cache), in chunks, so a killed enrollment
keeps its work and a re-run finishes it; people are written in one transaction at the end.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from mien.identity.gallery import Gallery, NewFace
from mien.identity.storage import content_hash
from mien.pipeline.gallery import cache_model, gallery_model
from mien.pipeline.images import ImageError, decode_image, is_image_path, list_images, path_text, read_image_bytes
from mien.pipeline.errors import UsageError
from mien.pipeline.names import PersonNameError, validate_person_name

log = logging.getLogger(__name__)


EMBED_CHUNK = 32  # photos per FaceNet call; each chunk's results are cached before the next starts


@dataclass(frozen=True)
class CacheEntry:
    """What one photo gave: its embedding, or why it was skipped."""

    embedding: np.ndarray | None
    reason: str | None = None
    bbox: tuple[int, int, int, int] | None = None


class EnrollmentError(UsageError):
    """Enrollment could not produce a classifier; the previous one is left untouched."""


@dataclass
class PersonReport:
    name: str
    photos: int = 0
    used: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


@dataclass
class EnrollmentReport:
    persons: list[PersonReport]
    embedded: int  # photos that went through the models in this run (cache misses)
    cached: int
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, why): loose photos, bad names
    gallery: str | None = None
    added: int = 0  # faces new to the gallery
    removed: int = 0  # faces no longer in the folder (or, with --replace, of people not in it)
    forgotten: list[str] = field(default_factory=list)  # people removed by --replace
    shared: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)  # (photo, person, also enrolled as)

    @property
    def enrolled(self) -> list[str]:
        return [p.name for p in self.persons if p.used]


def _person_dirs(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The person folders of ``root``, and what was ignored there with the reason (loose photos, bad names)."""
    if not root.exists():
        raise EnrollmentError(f"{root}: no such folder. Put photos in {root}/<person name>/*.jpg.")
    if not root.is_dir():
        raise EnrollmentError(f"{root}: is a file; enrollment takes a folder of person folders.")
    from mien.identity.gallery.base import name_key

    persons, ignored = [], []
    for p in sorted(root.iterdir()):
        if p.is_file() and is_image_path(p):
            ignored.append((path_text(p), "photos must be inside a person folder"))
        elif p.is_dir():
            try:
                validate_person_name(p.name)
                if p.name != p.name.strip():
                    raise PersonNameError("a person name may not start or end with a space.")
                persons.append(p)
            except PersonNameError as exc:  # the same rule as the API: such a person could not be forgotten
                ignored.append((path_text(p), f"not enrolled: {exc}"))
    by_key: dict[str, list[Path]] = {}
    for p in persons:
        by_key.setdefault(name_key(validate_person_name(p.name)), []).append(p)
    for same in (group for group in by_key.values() if len(group) > 1):  # Ann/ and ann/: one person, two folders
        for p in same:
            persons.remove(p)
            others = ", ".join(q.name for q in same if q is not p)
            ignored.append((path_text(p), f"not enrolled: {others} names the same person (names are one person up "
                                          "to case); merge the folders"))
    if not persons:
        raise EnrollmentError(f"{root}: no person folders inside. Put photos in {root}/<person name>/*.jpg.")
    return persons, ignored


def check_enrollment_dir(root: str | os.PathLike) -> None:
    """Raise EnrollmentError if ``root`` is not a folder of person folders (cheap; no models needed)."""
    _person_dirs(Path(root))


NO_FACE = "no face found"


def is_unreadable(reason: str) -> bool:
    """Whether a photo was skipped because it could not be read (rather than for what it shows)."""
    return reason != NO_FACE


@dataclass
class EmbeddedPhotos:
    """What embed_photos found: ``(content hash, CacheEntry)`` per photo in input order, and the counts."""

    entries: list[tuple[str, CacheEntry]]
    embedded: int  # cache misses that went through the models now
    cached: int  # cache hits


def embed_photos(photos: Iterable[tuple[str, bytes]], recognizer, gallery: Gallery) -> EmbeddedPhotos:
    """Cache entry per ``(name, bytes)`` photo; misses are decoded, detected and embedded in FaceNet batches of
    EMBED_CHUNK, each batch's results stored in the gallery's photo cache before the next (so work survives a kill).
    Enrollment from folders and from uploads share this path."""
    model = cache_model(recognizer)
    entries: list[tuple[str, CacheEntry | None]] = []
    pending: list[tuple[int, str, np.ndarray, tuple]] = []  # (index, key, identity crop, bbox) of misses with a face
    fresh: dict[str, tuple] = {}  # what this run learnt, not yet written to the cache
    counts = {"embedded": 0, "cached": 0}

    def flush() -> None:
        if pending:
            embeddings = recognizer.embed_crops([p[2] for p in pending])
            for (index, key, _, bbox), emb in zip(pending, embeddings):
                entries[index] = (key, CacheEntry(emb, None, bbox))
                fresh[key] = (emb, None, bbox)
            counts["embedded"] += len(pending)
            pending.clear()
        gallery.cache(fresh, model)
        fresh.clear()

    for name, data in photos:
        key = content_hash(data)
        hit = gallery.cached([key], model).get(key)
        entry = CacheEntry(*hit) if hit is not None else None
        if entry is not None:
            counts["cached"] += 1
        else:
            try:
                image = decode_image(data, name)
            except ImageError as exc:
                entry = CacheEntry(None, str(exc).split(": ", 1)[-1])
            else:
                subject = recognizer.subject(image)  # pipeline.subject: the relaxed retry, then the subject rule
                if subject is None:
                    entry = CacheEntry(None, NO_FACE)
                else:
                    face = subject.face
                    pending.append((len(entries), key, recognizer.identity_crop(image, face), face.bbox))
            if entry is not None:
                fresh[key] = (None, entry.reason, None)
        entries.append((key, entry))
        if len(pending) >= EMBED_CHUNK:
            flush()
    flush()
    return EmbeddedPhotos(entries, counts["embedded"], counts["cached"])


@dataclass
class LabelledEmbeddings:
    """Embeddings of the usable photos of a folder of person folders, with per-person reports."""

    vectors: np.ndarray
    labels: list[str]
    files: list[str]
    report: EnrollmentReport
    hashes: list[str] = field(default_factory=list)  # content hash of each usable photo


def embed_folder(root: str | os.PathLike, recognizer, gallery: Gallery | None = None,
                 progress=None) -> LabelledEmbeddings:
    """Embed every usable photo of ``root/<person>/`` (cache misses only) and report per person."""
    from mien.pipeline.gallery import open_default_gallery

    root = Path(root)
    person_dirs, ignored = _person_dirs(root)
    own = gallery is None
    gallery = gallery or open_default_gallery()
    photos = [(d, f) for d in person_dirs for f in list_images(d)]
    name_of = {d: validate_person_name(d.name) for d in person_dirs}  # NFC: a macOS folder name is NFD
    report_of = {d: PersonReport(name_of[d]) for d in person_dirs}
    read: list[tuple[Path, Path]] = []  # (person dir, photo) of the photos whose bytes could be read

    def readable():
        for d, f in (progress(photos) if progress else photos):
            report_of[d].photos += 1
            try:
                data = read_image_bytes(f)
            except ImageError as exc:
                report_of[d].skipped.append((path_text(f), str(exc).removeprefix(f"{path_text(f)}: ")))
                continue
            read.append((d, f))
            yield path_text(f), data

    try:
        result = embed_photos(readable(), recognizer, gallery)
    finally:
        if own:
            gallery.close()
    vectors, labels, files, hashes = [], [], [], []
    for (d, f), (key, entry) in zip(read, result.entries):
        if entry.embedding is None:
            report_of[d].skipped.append((path_text(f), entry.reason or "unusable"))
        else:
            report_of[d].used += 1
            vectors.append(entry.embedding)
            labels.append(name_of[d])
            files.append(path_text(f))
            hashes.append(key)
    report = EnrollmentReport(list(report_of.values()), embedded=result.embedded, cached=result.cached,
                              ignored=ignored)
    dim = vectors[0].shape[0] if vectors else 0
    return LabelledEmbeddings(np.stack(vectors) if vectors else np.zeros((0, dim), np.float32), labels, files,
                              report, hashes)


def enroll_folder(root: str | os.PathLike, recognizer, gallery: Gallery | None = None, *, replace: bool = False,
                  thresholds: dict | None = None, progress=None) -> EnrollmentReport:
    """Merge a folder of person folders into the gallery in one transaction.

    Each person in the folder gets exactly the folder's photos (their uploaded photos are kept); people not
    in the folder are untouched, or with ``replace`` forgotten. A person whose photos are all unusable is left
    as they were. If no photo is usable at all, nothing is written and EnrollmentError says why.
    """
    from mien.pipeline.gallery import open_default_gallery

    own = gallery is None
    gallery = gallery or open_default_gallery(recognizer=recognizer)
    try:
        data = embed_folder(root, recognizer, gallery, progress)
        if not len(data.labels):
            raise EnrollmentError(f"{root}: no usable face in any photo; nothing enrolled, the gallery is unchanged.")
        people: dict[str, list[NewFace]] = {}
        for vector, label, file, key in zip(data.vectors, data.labels, data.files, data.hashes):
            people.setdefault(label, []).append(NewFace(key, vector, str(Path(file).resolve())))
        outcome = gallery.sync_folder(people, gallery_model(recognizer), replace=replace)
        if outcome["removed"]:
            from mien.identity.upkeep import discard_saved_indexes
            from mien.pipeline.gallery import index_dir

            discard_saved_indexes(gallery, index_dir())  # erased faces must not survive in a saved index file
        if thresholds:
            gallery.set_thresholds(thresholds)
        report = data.report
        report.gallery = gallery.location
        report.added, report.removed = outcome["added"], outcome["removed"]
        report.forgotten, report.shared = outcome["forgotten"], outcome["shared"]
        return report
    finally:
        if own:
            gallery.close()
