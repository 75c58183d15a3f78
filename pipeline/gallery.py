"""Where the gallery lives and how the product opens it: location, model strings, legacy migration, matchers.

The gallery is ``MIEN_HOME/identity/gallery.sqlite3`` unless ``MIEN_GALLERY_URL`` names another (a path or a
``postgresql://`` URL). A classifier.joblib + embeddings cache left by an older mien is migrated into it on first
use and then deleted (the gallery is the one copy of the biometric data).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mien.identity.gallery import Gallery, GallerySnapshot, NewFace, open_gallery
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
    """What a cached photo result depends on: the gallery model plus the detector settings."""
    return f"{gallery_model(recognizer)}|{recognizer.detector.signature}"


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


def index_file(snapshot: GallerySnapshot, kind: str, home: Path | None = None) -> Path:
    """Where the nearest-neighbour index of a gallery is kept between runs (one file per gallery and index kind)."""
    return (home or mien_home()) / "identity" / "index" / f"{snapshot.gallery_id or 'gallery'}.{kind}"


def discard_saved_indexes(gallery: Gallery, home: Path | None = None) -> list[Path]:
    """Delete the saved indexes of ``gallery`` after faces were erased: an HNSW file keeps the bytes of deleted
    vectors, so erasure must not leave it behind (the next run rebuilds it). Returns the files removed."""
    folder = (home or mien_home()) / "identity" / "index"
    removed = sorted(folder.glob(f"{gallery.gallery_id()}.*")) if folder.is_dir() else []
    for f in removed:
        f.unlink(missing_ok=True)
    return removed


def _saved_index(gallery: Gallery, snapshot: GallerySnapshot, kind: str, model: str):
    """The saved index brought up to ``snapshot``'s generation via the change log, or None (absent, stale, corrupt)."""
    import json

    from mien.identity import knn
    from mien.identity.errors import ModelFileError

    path = index_file(snapshot, kind)
    try:
        stamp = json.loads(path.with_suffix(path.suffix + ".json").read_text())
        if (stamp["gallery_id"], stamp["model"], stamp["kind"]) != (snapshot.gallery_id, model, kind):
            return None
        index = knn.EmbeddingIndex.load(path, int(stamp["dim"]))
    except (OSError, ValueError, KeyError, ModelFileError) as exc:
        if path.exists():
            log.warning("%s: not reused (%s); rebuilding the index", path, exc)
        return None
    changes = gallery.changes_since(int(stamp["generation"]))
    if changes is None or changes.generation != snapshot.generation:
        return None  # the log no longer reaches back, or the gallery moved on meanwhile: rebuild
    if len(changes.removed_ids):
        index.remove(changes.removed_ids)
    if len(changes.added_ids):
        index.add(changes.added_ids, changes.added_vectors)
    return index if len(index) == len(snapshot.labels) else None


def _save_index(matcher, snapshot: GallerySnapshot, kind: str, model: str) -> None:
    """Keep a large index for the next run (atomic; a failure only costs the next run a rebuild)."""
    from mien.identity.storage import write_json_atomic

    path = index_file(snapshot, kind)
    try:
        matcher.index.save(path)
        write_json_atomic(path.with_suffix(path.suffix + ".json"),
                          {"gallery_id": snapshot.gallery_id, "generation": snapshot.generation, "model": model,
                           "kind": kind, "dim": matcher.index.dim, "faces": len(snapshot.labels)})
    except OSError as exc:
        log.warning("could not save the index to %s (%s); the next run rebuilds it", path, exc)


def load_matcher(gallery: Gallery, recognizer, kind: str = "auto"):
    """The matcher for the gallery's current snapshot (None while nobody is enrolled).

    A large gallery's nearest-neighbour index is saved beside the gallery and reused: the next run loads it and
    applies only the changes since (building one for a million faces takes minutes; loading it, seconds).
    """
    from mien.identity import knn
    from mien.identity.errors import NotEnrolledError
    from mien.identity.matchers import KNNMatcher, build_matcher, choose_matcher_kind

    model = gallery_model(recognizer)
    light = gallery.snapshot(vectors=False)
    n = len(light.labels)
    wanted = kind if kind != "auto" else (choose_matcher_kind(n, 0) if n else "svm")
    index_kind = knn.choose_index_kind(n)
    if n and wanted == "knn" and hasattr(gallery, "database_index") and light.model == model:
        return KNNMatcher(light, model, index=gallery.database_index())  # PostgreSQL: searched in the database
    if n and wanted == "knn" and index_kind != "exact" and light.model == model:
        index = _saved_index(gallery, light, index_kind, model)
        if index is not None:
            return KNNMatcher(light, model, index=index)
    snapshot = gallery.snapshot()
    try:
        matcher = build_matcher(snapshot, model, wanted)
    except NotEnrolledError:
        return None
    if matcher.kind == "knn" and index_kind != "exact":
        _save_index(matcher, snapshot, index_kind, model)
    return matcher


def refresh_matcher(matcher, gallery: Gallery, recognizer, kind: str = "auto"):
    """``matcher`` brought up to the gallery's generation: unchanged, updated in place (kNN), or rebuilt."""
    if matcher is not None and gallery.generation() == matcher.generation:
        return matcher
    if matcher is not None and matcher.kind == "knn" and kind in ("knn", "auto"):
        changes = gallery.changes_since(matcher.generation)
        from mien.identity.matchers import choose_matcher_kind

        if changes is not None and len(matcher) - len(changes.removed_ids) > 0 and (
                kind == "knn" or choose_matcher_kind(len(matcher) + len(changes.added_ids), 0) == "knn"):
            matcher.update(changes)
            return matcher
    return load_matcher(gallery, recognizer, kind)
