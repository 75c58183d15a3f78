"""Where the gallery lives and how the product opens it: location, model strings, legacy migration, the
matcher's index folder (the matcher's upkeep itself is identity's: ``mien.identity.upkeep``).

The gallery is ``MIEN_HOME/identity/gallery.sqlite3`` unless ``MIEN_GALLERY_URL`` names another (a path or a
``postgresql://`` URL). A classifier.joblib + embeddings cache left by an older mien is migrated into it on first
use and then deleted (the gallery is the one copy of the biometric data).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mien.identity.gallery import Gallery, NewFace, open_gallery
from mien.pipeline.home import mien_home

log = logging.getLogger(__name__)


def gallery_location(home: Path | None = None) -> str:
    """``$MIEN_GALLERY_URL`` if set, else ``MIEN_HOME/identity/gallery.sqlite3``."""
    from mien.pipeline import settings

    env = settings.gallery_url()
    if env and home is None:
        return env
    return str((home or mien_home()) / "identity" / "gallery.sqlite3")


def gallery_model(recognizer) -> str:
    """What makes stored embeddings comparable: the embedding weights and the identity face crop."""
    return f"{recognizer.embedder.version}|{recognizer.identity_crop.signature}"


def cache_model(recognizer) -> str:
    """What a cached photo result depends on: the gallery model, the detector settings, the subject rule and the
    relaxed retry's threshold (pipeline.subject)."""
    from mien.pipeline.subject import SUBJECT_RULE

    return (f"{gallery_model(recognizer)}|{recognizer.detector.signature}|{SUBJECT_RULE}"
            f"-retry{recognizer.options.retry_threshold}")


def open_default_gallery(home: Path | None = None, recognizer=None) -> Gallery:
    """Open the gallery (migrating a legacy classifier + cache of the same home when ``recognizer`` is given)."""
    gallery = open_gallery(gallery_location(home))
    if recognizer is not None:
        migrate_legacy(gallery, home or mien_home(), recognizer)
    return gallery


def migrate_legacy(gallery: Gallery, home: Path, recognizer) -> int:
    """Move people from an older mien's ``identity/classifier.joblib`` (+ embeddings cache, API photos) into
    ``gallery``, then delete those files. Returns the number of faces moved (0 when there is nothing to do)."""
    legacy = home / "identity" / "classifier.joblib"
    if not legacy.is_file() or gallery.people():
        return 0
    import hashlib

    import joblib

    from mien.identity.errors import ModelFileError

    try:  # our own file in our own MIEN_HOME, read once, never again
        clf = joblib.load(legacy)["classifier"]
        vectors, labels = np.asarray(clf.embeddings, np.float32), [str(x) for x in clf.labels]
    except Exception as exc:  # noqa: BLE001 - joblib raises many types on foreign or corrupt files
        raise ModelFileError(f"{legacy}: an older mien classifier that cannot be read ({exc}); delete it and "
                             "enroll again with `mien enroll DIR`.") from exc
    by_vector = _legacy_cache_hashes(home / "identity" / "embeddings_cache.npz")
    uploads = home / "enrollment"
    people: dict[str, list[NewFace]] = {}
    for v, name in zip(vectors, labels):
        key = by_vector.get(v.tobytes()) or hashlib.sha256(v.tobytes()).hexdigest()
        photo = next((f for f in (uploads / name).glob(f"{key[:16]}.*")), None) if (uploads / name).is_dir() else None
        people.setdefault(name, []).append(
            NewFace(key, v, f"upload:{photo.name}" if photo else "migrated", photo.read_bytes() if photo else None))
    model = gallery_model(recognizer) if clf.embedder_version == recognizer.embedder.version else clf.embedder_version
    gallery.sync_folder(people, model)  # everyone in one transaction: a crash here leaves the legacy files to retry
    gallery.set_thresholds({"distance": clf.thresholds.distance, "probability": clf.thresholds.probability})
    for f in (legacy, Path(str(legacy) + ".json"), home / "identity" / "embeddings_cache.npz"):
        f.unlink(missing_ok=True)
    if uploads.is_dir():
        import shutil

        shutil.rmtree(uploads, ignore_errors=True)
    log.warning("moved %d people (%d faces) from %s into the gallery %s", len(people), len(labels), legacy,
                gallery.location)
    return len(labels)


def _legacy_cache_hashes(path: Path) -> dict[bytes, str]:
    """embedding bytes -> photo hash, from an older mien's embeddings cache (empty if unreadable)."""
    import json

    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return {np.asarray(data["embeddings"][i], np.float32).tobytes(): k
                    for i, (k, r) in enumerate(zip(meta["keys"], meta["reasons"])) if r is None}
    except Exception:  # noqa: BLE001 - a missing or corrupt cache only costs the original photo hashes
        return {}


def index_dir(home: Path | None = None) -> Path:
    """The folder where large galleries' nearest-neighbour indexes are kept between runs."""
    return (home or mien_home()) / "identity" / "index"
