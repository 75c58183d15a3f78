"""Changing who is enrolled one person at a time (the API's add-photos and forget), via the embedding cache.

Uploaded photos are kept in ``MIEN_HOME/enrollment/<person>/`` (named by content hash), embedded once
into the shared embedding cache, and the classifier is rebuilt from the enrolled embeddings plus the
new ones, so nobody else's photos are re-embedded. Every file is replaced atomically.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from identity.cache import EmbeddingCache
from identity.classifier import IdentityClassifier, Thresholds
from identity.errors import IdentityError
from identity.storage import atomic_path
from pipeline.enroll import cache_version, embed_photos
from pipeline.home import mien_home
from pipeline.names import validate_person_name

_SUFFIX = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"BM": ".bmp", b"RI": ".webp", b"II": ".tif", b"MM": ".tif"}


class UnknownPersonError(IdentityError):
    """The person is not enrolled."""


def enrollment_dir(home: Path | None = None) -> Path:
    """Where photos enrolled through the API are kept: ``MIEN_HOME/enrollment/<person>/``."""
    return (home or mien_home()) / "enrollment"


@dataclass
class PhotoResult:
    file: str
    used: bool
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"file": self.file, "used": self.used, "reason": self.reason}


@dataclass
class PersonUpdate:
    """The outcome of adding photos: the new classifier (None if nothing usable) and one result per photo."""

    classifier: IdentityClassifier | None
    photos: list[PhotoResult] = field(default_factory=list)


def enroll_photos(name: str, photos: list[tuple[str, bytes]], recognizer, classifier: IdentityClassifier | None, *,
                  classifier_file: Path, cache_file: Path, home: Path | None = None) -> PersonUpdate:
    """Embed uploaded photos of one person (cache misses only) and save a classifier with them added.

    Photos already enrolled for that person (same content) are not added twice. The caller swaps the
    returned classifier in; nothing is saved when no photo is usable.
    """
    name = validate_person_name(name)
    cache = EmbeddingCache(cache_file, cache_version(recognizer))
    results, keys = [], []
    for (filename, data), (key, entry) in zip(photos, embed_photos(photos, recognizer, cache).entries):
        if entry.embedding is None:
            results.append(PhotoResult(filename, False, entry.reason))
            continue
        results.append(PhotoResult(filename, True))
        keys.append((key, data, entry.embedding))
    if not keys:
        return PersonUpdate(None, results)

    folder = enrollment_dir(home) / name
    folder.mkdir(parents=True, exist_ok=True)
    for key, data, _ in keys:
        target = folder / f"{key[:16]}{_SUFFIX.get(data[:2], '.img')}"
        if not target.exists():
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)

    if classifier is not None:
        vectors, labels = list(classifier.embeddings), list(map(str, classifier.labels))
        thresholds, version = classifier.thresholds, classifier.embedder_version
    else:
        vectors, labels, thresholds, version = [], [], Thresholds(), recognizer.embedder.version
    mine = [v for v, lab in zip(vectors, labels) if lab == name]
    for _, _, emb in keys:
        if not any(np.array_equal(emb, v) for v in mine):
            vectors.append(emb)
            labels.append(name)
            mine.append(emb)
    new = IdentityClassifier(np.stack(vectors), labels, version, thresholds)
    new.save(classifier_file)
    return PersonUpdate(new, results)


def forget_person(name: str, recognizer, classifier: IdentityClassifier | None, *, classifier_file: Path,
                  cache_file: Path, home: Path | None = None) -> IdentityClassifier | None:
    """Remove a person: classifier rebuilt without them (removed if nobody is left), cache entries and photos deleted.

    Returns the new classifier (None when nobody is enrolled any more); raises UnknownPersonError.
    """
    name = validate_person_name(name)
    if classifier is None or name not in classifier.persons:
        raise UnknownPersonError(f"{name!r} is not enrolled.")
    mask = np.array([str(lab) == name for lab in classifier.labels])
    theirs = classifier.embeddings[mask]
    new = None
    if (~mask).any():
        new = IdentityClassifier(classifier.embeddings[~mask], list(map(str, classifier.labels[~mask])),
                                 classifier.embedder_version, classifier.thresholds)
        new.save(classifier_file)
    else:
        for path in (classifier_file, Path(str(classifier_file) + ".json")):
            path.unlink(missing_ok=True)
    # The cache holds the very vectors the classifier was trained on: drop the entries that produced them.
    cache = EmbeddingCache(cache_file, cache_version(recognizer))
    cache.remove([k for k, e in cache.entries.items()
                  if e.embedding is not None and np.any(np.all(theirs == e.embedding.astype(np.float32), axis=1))])
    folder = enrollment_dir(home) / name
    for key_file in (folder.iterdir() if folder.is_dir() else []):
        cache.remove([k for k in cache.entries if k.startswith(key_file.stem)])
    cache.save()
    shutil.rmtree(folder, ignore_errors=True)
    return new
