"""Enrollment: photo folders (``<dir>/<person>/*.jpg``) → cached embeddings → identity classifier."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from identity.cache import CacheEntry, EmbeddingCache, content_hash
from identity.classifier import IdentityClassifier, Thresholds
from identity.errors import IdentityError
from pipeline.images import ImageError, decode_image, is_image_path
from pipeline.names import PersonNameError, validate_person_name

log = logging.getLogger(__name__)
# Among several faces in an enrollment photo, the largest is used only if this many times bigger than the next.
DOMINANT_AREA_RATIO = 2.0


class EnrollmentError(IdentityError):
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
    classifier_path: Path | None = None

    @property
    def enrolled(self) -> list[str]:
        return [p.name for p in self.persons if p.used]


def _person_dirs(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The person folders of ``root``, and what was ignored there with the reason (loose photos, bad names)."""
    if not root.exists():
        raise EnrollmentError(f"{root}: no such folder. Put photos in {root}/<person name>/*.jpg.")
    if not root.is_dir():
        raise EnrollmentError(f"{root}: is a file; enrollment takes a folder of person folders.")
    persons, ignored = [], []
    for p in sorted(root.iterdir()):
        if p.is_file() and is_image_path(p):
            ignored.append((str(p), "photos must be inside a person folder"))
        elif p.is_dir():
            try:
                if validate_person_name(p.name) != p.name:
                    raise PersonNameError("a person name may not start or end with a space.")
                persons.append(p)
            except PersonNameError as exc:  # the same rule as the API: such a person could not be forgotten
                ignored.append((str(p), f"not enrolled: {exc}"))
    if not persons:
        raise EnrollmentError(f"{root}: no person folders inside. Put photos in {root}/<person name>/*.jpg.")
    return persons, ignored


def check_enrollment_dir(root: str | os.PathLike) -> None:
    """Raise EnrollmentError if ``root`` is not a folder of person folders (cheap; no models needed)."""
    _person_dirs(Path(root))


def _choose_face(faces) -> tuple[object | None, str | None]:
    if not faces:
        return None, "no face found"
    if len(faces) == 1 or faces[0].area >= DOMINANT_AREA_RATIO * faces[1].area:
        return faces[0], None
    return None, f"{len(faces)} faces of similar size; crop the photo to the person"


def cache_version(recognizer) -> str:
    """Everything that changes a photo's embedding: weights, detector settings, face crop."""
    return f"{recognizer.embedder.version}|{recognizer.detector.signature}|{recognizer.identity_crop.signature}"


@dataclass
class EmbeddedPhotos:
    """What embed_photos found: ``(content hash, CacheEntry)`` per photo in input order, and the counts."""

    entries: list[tuple[str, CacheEntry]]
    embedded: int  # cache misses that went through the models now
    cached: int  # cache hits


def embed_photos(photos: Iterable[tuple[str, bytes]], recognizer, cache: EmbeddingCache) -> EmbeddedPhotos:
    """Cache entry per ``(name, bytes)`` photo; misses are decoded, detected and embedded in one FaceNet batch.

    The cache is updated and saved. Enrollment from folders and from uploads share this path.
    """
    entries: list[tuple[str, CacheEntry | None]] = []
    pending = []  # (index, key, identity crop, bbox) of cache misses with a usable face
    cached = 0
    for name, data in photos:
        key = content_hash(data)
        entry = cache.get(key)
        if entry is not None:
            cached += 1
        else:
            try:
                image = decode_image(data, name)
            except ImageError as exc:
                entry = CacheEntry(None, str(exc).split(": ", 1)[-1])
            else:
                face, reason = _choose_face(recognizer.detect(image))
                if face is None:
                    entry = CacheEntry(None, reason)
                else:
                    pending.append((len(entries), key, recognizer.identity_crop(image, face), face.bbox))
            if entry is not None:
                cache.put(key, entry)
        entries.append((key, entry))
    if pending:
        embeddings = recognizer.embed_crops([p[2] for p in pending])
        for (index, key, _, bbox), emb in zip(pending, embeddings):
            entries[index] = (key, CacheEntry(emb, None, bbox))
            cache.put(key, entries[index][1])
    cache.save()
    return EmbeddedPhotos(entries, len(pending), cached)


@dataclass
class LabelledEmbeddings:
    """Embeddings of the usable photos of a folder of person folders, with per-person reports."""

    vectors: np.ndarray
    labels: list[str]
    files: list[str]
    report: EnrollmentReport


def embed_folder(root: str | os.PathLike, recognizer, cache_file: str | os.PathLike | None = None,
                 progress=None) -> LabelledEmbeddings:
    """Embed every usable photo of ``root/<person>/`` (cache misses only, one batch) and report per person."""
    from pipeline.assets import cache_path

    root = Path(root)
    person_dirs, ignored = _person_dirs(root)
    cache = EmbeddingCache(cache_file or cache_path(), cache_version(recognizer))
    photos = [(d, f) for d in person_dirs for f in sorted(d.rglob("*")) if f.is_file() and is_image_path(f)]
    report_of = {d: PersonReport(d.name) for d in person_dirs}
    read: list[tuple[Path, Path]] = []  # (person dir, photo) of the photos whose bytes could be read

    def readable():
        for d, f in (progress(photos) if progress else photos):
            report_of[d].photos += 1
            try:
                data = f.read_bytes()
            except OSError as exc:
                report_of[d].skipped.append((str(f), f"unreadable ({exc.strerror})"))
                continue
            read.append((d, f))
            yield str(f), data

    result = embed_photos(readable(), recognizer, cache)
    vectors, labels, files = [], [], []
    for (d, f), (_, entry) in zip(read, result.entries):
        if entry.embedding is None:
            report_of[d].skipped.append((str(f), entry.reason or "unusable"))
        else:
            report_of[d].used += 1
            vectors.append(entry.embedding)
            labels.append(d.name)
            files.append(str(f))
    report = EnrollmentReport(list(report_of.values()), embedded=result.embedded, cached=result.cached,
                              ignored=ignored)
    dim = vectors[0].shape[0] if vectors else 0
    return LabelledEmbeddings(np.stack(vectors) if vectors else np.zeros((0, dim), np.float32), labels, files, report)


def enroll_folder(root: str | os.PathLike, recognizer, thresholds: Thresholds | None = None,
                  classifier_file: str | os.PathLike | None = None, cache_file: str | os.PathLike | None = None,
                  progress=None) -> EnrollmentReport:
    """Embed a folder of person folders and train + save the identity classifier atomically.

    If no photo is usable the previous classifier is kept and EnrollmentError says why.
    """
    from pipeline.assets import classifier_path

    data = embed_folder(root, recognizer, cache_file, progress)
    if not len(data.labels):
        raise EnrollmentError(f"{root}: no usable face in any photo; nothing enrolled, previous classifier kept.")
    clf = IdentityClassifier(data.vectors, data.labels, recognizer.embedder.version, thresholds or Thresholds())
    target = Path(classifier_file or classifier_path())
    clf.save(target)
    data.report.classifier_path = target
    return data.report
