"""Keeping a matcher in step with its gallery: built from a snapshot, a large gallery's index (or a small one's fitted
SVM) saved and reloaded, with only the changes since applied, updated in place from the change log, discarded when
faces are erased."""
from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from mien.identity import knn
from mien.identity.gallery import Gallery, GallerySnapshot
from mien.identity.matchers import KNNMatcher, build_matcher, choose_matcher_kind, snapshot_fingerprint
from mien.identity.storage import atomic_path, write_json_atomic
from mien.identity.svm_proba import LinearSVMProba

log = logging.getLogger(__name__)


def index_file(index_dir: Path, snapshot: GallerySnapshot, kind: str) -> Path:
    """Where the nearest-neighbour index of a gallery is kept between runs (one file per gallery and index kind)."""
    return index_dir / f"{snapshot.gallery_id or 'gallery'}.{kind}"


SVM_FIT_VERSION = 1  # part of a saved fit's name: bump when the fit changes (folds, calibration)


def svm_file(index_dir: Path, snapshot: GallerySnapshot) -> Path:
    """Where the SVM fitted on ``snapshot`` is kept between runs: named by the snapshot (faces, names, generation,
    model), scikit-learn's version and the fit's, so a saved fit is only ever used for what it was fitted on. Beside
    the indexes, so erasing faces discards it too (``discard_saved_indexes``)."""
    from importlib.metadata import version

    return index_dir / (f"{snapshot.gallery_id or 'gallery'}.svm-{snapshot_fingerprint(snapshot)}"
                        f"-sklearn{version('scikit-learn')}-v{SVM_FIT_VERSION}.npz")


def _saved_svm(index_dir: Path, snapshot: GallerySnapshot) -> LinearSVMProba | None:
    """The SVM saved for exactly this snapshot, or None (none saved, or a damaged file: then it is fitted again).
    Loading it spares a cold start scikit-learn's import and the fit (~1 s of `mien recognize one.jpg`)."""
    path = svm_file(index_dir, snapshot)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            fitted = LinearSVMProba.from_arrays(arrays)
        proba = fitted(snapshot.vectors[:64])
        if fitted.classes != sorted(set(snapshot.labels)) or not np.isfinite(proba).all():
            raise ValueError("it does not fit this gallery")
        return fitted
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring the saved SVM %s (%s); fitting it again", path, exc)
        return None


def _save_svm(matcher, snapshot: GallerySnapshot, index_dir: Path) -> None:
    """Keep the matcher's fitted SVM for the next run (replacing this gallery's earlier fits); a folder that cannot
    be written only means the next run fits it again."""
    fitted = matcher.fitted_svm
    if fitted is None:
        return
    path = svm_file(index_dir, snapshot)
    try:
        for old in index_dir.glob(f"{snapshot.gallery_id or 'gallery'}.svm-*.npz"):
            old.unlink(missing_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **fitted.arrays())
    except OSError as exc:
        log.debug("could not save the fitted SVM to %s (%s); the next run fits it again", path, exc)


def discard_saved_indexes(gallery: Gallery, index_dir: Path) -> list[Path]:
    """Delete the saved indexes of ``gallery`` after faces were erased: an HNSW file keeps the bytes of deleted
    vectors, so erasure must not leave it behind (the next run rebuilds it). Returns the files removed."""
    removed = sorted(index_dir.glob(f"{gallery.gallery_id()}.*")) if index_dir.is_dir() else []
    for f in removed:
        f.unlink(missing_ok=True)
    return removed


def _saved_index(gallery: Gallery, snapshot: GallerySnapshot, kind: str, model: str, index_dir: Path):
    """The saved index brought up to ``snapshot``'s generation via the change log, or None (absent, stale, corrupt)."""
    from mien.identity import knn
    from mien.identity.errors import ModelFileError

    path = index_file(index_dir, snapshot, kind)
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


def _save_index(matcher, snapshot: GallerySnapshot, kind: str, model: str, index_dir: Path) -> None:
    """Keep a large index for the next run (atomic; a failure only costs the next run a rebuild)."""
    path = index_file(index_dir, snapshot, kind)
    try:
        matcher.index.save(path)
        write_json_atomic(path.with_suffix(path.suffix + ".json"),
                          {"gallery_id": snapshot.gallery_id, "generation": snapshot.generation, "model": model,
                           "kind": kind, "dim": matcher.index.dim, "faces": len(snapshot.labels)})
    except OSError as exc:
        log.warning("could not save the index to %s (%s); the next run rebuilds it", path, exc)


def load_matcher(gallery: Gallery, model: str, kind: str = "auto", index_dir: Path | None = None):
    """The matcher for the gallery's current snapshot of ``model``'s embeddings (None while nobody is enrolled).

    With ``index_dir``, a large gallery's nearest-neighbour index is saved there and reused: the next run loads it
    and applies only the changes since (building one for a million faces takes minutes; loading it, seconds).
    """
    from mien.identity.errors import NotEnrolledError

    light = gallery.snapshot(vectors=False)
    n = len(light.labels)
    wanted = kind if kind != "auto" else (choose_matcher_kind(n, 0) if n else "svm")
    index_kind = knn.choose_index_kind(n)
    if n and wanted == "knn" and hasattr(gallery, "database_index") and light.model == model:
        return KNNMatcher(light, model, index=gallery.database_index())  # PostgreSQL: searched in the database
    if n and wanted == "knn" and index_kind != "exact" and light.model == model and index_dir is not None:
        index = _saved_index(gallery, light, index_kind, model, index_dir)
        if index is not None:
            return KNNMatcher(light, model, index=index)
    snapshot = gallery.snapshot()
    fitted = _saved_svm(index_dir, snapshot) if n and wanted == "svm" and index_dir is not None else None
    try:
        matcher = build_matcher(snapshot, model, wanted, fitted)
    except NotEnrolledError:
        return None
    if matcher.kind == "svm" and fitted is None and index_dir is not None:
        _save_svm(matcher, snapshot, index_dir)
    if matcher.kind == "knn" and index_kind != "exact" and index_dir is not None:
        _save_index(matcher, snapshot, index_kind, model, index_dir)
    return matcher


def refresh_matcher(matcher, gallery: Gallery, model: str, kind: str = "auto", index_dir: Path | None = None):
    """``matcher`` brought up to the gallery's generation: unchanged, updated in place (kNN), or rebuilt."""
    if matcher is not None and gallery.generation() == matcher.generation:
        return matcher
    if matcher is not None and matcher.kind == "knn" and kind in ("knn", "auto"):
        changes = gallery.changes_since(matcher.generation)
        if changes is not None and len(matcher) - len(changes.removed_ids) > 0 and (
                kind == "knn" or choose_matcher_kind(len(matcher) + len(changes.added_ids), 0) == "knn"):
            matcher.update(changes)
            return matcher
    return load_matcher(gallery, model, kind, index_dir)
