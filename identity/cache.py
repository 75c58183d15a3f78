"""Embeddings cache keyed by photo content hash and embedding-model version.

Re-enrolling after adding one photo embeds only that photo; a cache written by other
weights is detected by its version and ignored, never silently reused.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from identity.storage import atomic_path

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


def content_hash(data: bytes) -> str:
    """sha256 of a photo's bytes: the cache key (renaming or moving a photo keeps its entry)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """What one photo gave: its embedding, or why it was skipped."""

    embedding: np.ndarray | None
    reason: str | None = None
    bbox: tuple[int, int, int, int] | None = None


class EmbeddingCache:
    """A persistent ``{(photo hash) -> CacheEntry}`` map for one embedding model version."""

    def __init__(self, path: str | os.PathLike, model_version: str):
        self.path = Path(path)
        self.model_version = model_version
        self.entries: dict[str, CacheEntry] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format_version") != FORMAT_VERSION or meta.get("model_version") != self.model_version:
                    log.warning("%s was built by %s; ignoring it and re-embedding.", self.path, meta.get("model_version"))
                    return
                embeddings = data["embeddings"]
                keys, reasons, bboxes = meta["keys"], meta["reasons"], meta["bboxes"]
                if not len(keys) == len(reasons) == len(bboxes) <= len(embeddings):
                    raise ValueError(f"{len(keys)} keys, {len(reasons)} reasons, {len(bboxes)} boxes, "
                                     f"{len(embeddings)} embeddings")
                for i, (key, reason) in enumerate(zip(keys, reasons)):
                    emb = embeddings[i] if reason is None else None
                    bbox = tuple(meta["bboxes"][i]) if meta["bboxes"][i] else None
                    self.entries[key] = CacheEntry(emb, reason, bbox)
        except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile) as exc:
            log.warning("%s is unreadable (%s); ignoring it, re-embedding, and rewriting it.", self.path, exc)
            self.entries = {}
            self._dirty = True  # the next save() replaces the corrupt file

    def get(self, key: str) -> CacheEntry | None:
        return self.entries.get(key)

    def put(self, key: str, entry: CacheEntry) -> None:
        self.entries[key] = entry
        self._dirty = True

    def remove(self, keys: list[str]) -> None:
        for k in keys:
            if self.entries.pop(k, None) is not None:
                self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (only if something changed)."""
        if not self._dirty:
            return
        keys = list(self.entries)
        dim = next((e.embedding.shape[0] for e in self.entries.values() if e.embedding is not None), 0)
        embeddings = np.zeros((len(keys), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            if self.entries[k].embedding is not None:
                embeddings[i] = self.entries[k].embedding
        meta = {
            "format_version": FORMAT_VERSION,
            "model_version": self.model_version,
            "keys": keys,
            "reasons": [self.entries[k].reason for k in keys],
            "bboxes": [list(self.entries[k].bbox) if self.entries[k].bbox else None for k in keys],
        }
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, embeddings=embeddings, meta=np.array(json.dumps(meta)))
        self._dirty = False
