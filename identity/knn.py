"""Nearest-neighbour search over face embeddings: exact numpy for small galleries, HNSW (usearch) for large ones.

Both indexes share one interface (:class:`EmbeddingIndex`) keyed by int64 ids, so a gallery can switch kind as it
grows (:func:`choose_index_kind`). Adding or forgetting a person is incremental: neither index is rebuilt. Distances
are Euclidean (FaceNet), ascending; result slots beyond the gallery size hold id -1 and distance inf.

File format (both kinds): ``MAGIC``, a 4-byte little-endian header length, a JSON header (kind, dim, count, payload
length, index parameters), the payload (the library's own bytes) and the payload's sha256, so a truncated, corrupt
or foreign file is refused with :class:`~identity.errors.ModelFileError` before any library parses it.

Measured with ``benchmarks/gallery_index.py`` (2 cores shared with a training run, 128-d, one face): ExactIndex
~0.3 ms at 10k embeddings, ~1 ms at 20k, ~2-3 ms at 50k, ~6 ms at 100k (numpy ~50 ms at 1M); the usearch index
at ef=256 ~0.5 ms at 10k, ~0.7-1.5 ms at 20k-50k, ~1.5-3 ms at 100k with recall@1 1.000 on enrolled people's photos.
Hence EXACT_BELOW = 20k. Indexes are not thread-safe for add/remove concurrent with search: serialise writers.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from mien.identity.errors import ModelFileError
from mien.identity.storage import atomic_path

MAGIC = b"MIENKNN\x01"
FORMAT_VERSION = 1
EXACT_BELOW = 20_000  # below this many embeddings exact search is as fast as HNSW (and has no build cost)
ANN_KIND = "usearch"
_HEADER_WIDTH = 1024
_HEADER_MAX = 1 << 20
_CHUNK = 1 << 20


class _HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, fh: BinaryIO):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        """Write ``data`` to the wrapped file and add it to the hash."""
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)


def _check_ids(ids: Any) -> np.ndarray:
    ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if ids.size and ids.min() < 0:
        raise ValueError("ids must be >= 0 (-1 marks an empty result slot)")
    return ids


def _check_vectors(vectors: Any, dim: int, n: int | None = None) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {np.shape(vectors)}")
    if n is not None and len(x) != n:
        raise ValueError(f"{n} ids for {len(x)} vectors")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or inf")
    return np.ascontiguousarray(x)


class _OneBlasThread:
    """Keep numpy's BLAS on one thread while a few faces are searched: waking a second BLAS thread on a busy core
    costs a scheduler slice (measured: ~7 ms instead of ~0.8 ms for one face against 20k embeddings on 2 busy
    cores). Reference-counted under a lock, so overlapping searches from several threads restore the original
    thread count exactly once, when the last one leaves."""

    _lock = threading.Lock()
    _depth = 0
    _limiter: Any = None
    _controller: Any = None  # threadpoolctl controller (installed with scikit-learn); False where unavailable

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._controller is None:
                try:
                    from threadpoolctl import ThreadpoolController

                    cls._controller = ThreadpoolController()
                except Exception:  # noqa: BLE001 - optional: without it BLAS keeps its own thread count
                    cls._controller = False
            if cls._depth == 0 and cls._controller:
                cls._limiter = cls._controller.limit(limits=1, user_api="blas")
            cls._depth += 1

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0 and cls._limiter is not None:
                cls._limiter.restore_original_limits()
                cls._limiter = None


def _empty_result(m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((m, k), -1, np.int64), np.full((m, k), np.inf, np.float32)


class EmbeddingIndex(ABC):
    """A mutable id -> embedding set answering k-nearest-neighbour queries under Euclidean distance."""

    kind: ClassVar[str] = ""

    def __init__(self, dim: int):
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = int(dim)

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert embeddings under ``ids`` (int64 >= 0, unique in the call); an id already present is replaced."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Forget ``ids`` (absent ones are ignored) and return how many were removed; nothing is rebuilt."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest ids (m, k) int64 and Euclidean distances (m, k) float32, ascending; -1/inf pad."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of embeddings in the index."""

    @abstractmethod
    def _params(self) -> dict:
        """Parameters stored in the file header and given back to ``_from_payload``."""

    @abstractmethod
    def _write_payload(self, out: _HashingWriter) -> None:
        """Write the index body (the part the sha256 covers)."""

    @classmethod
    @abstractmethod
    def _from_payload(cls, fh: BinaryIO, size: int, dim: int, params: dict) -> EmbeddingIndex:
        """Rebuild an index from a verified payload of ``size`` bytes at the current position of ``fh``."""

    def _prepare_search(self, queries: Any, k: int) -> np.ndarray:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return _check_vectors(queries, self.dim)

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` atomically (temp file beside it, then rename): never half a file."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                # fixed-width header slot, filled in once the payload length and digest are known (one pass)
                fh.write(MAGIC + struct.pack("<I", _HEADER_WIDTH) + b" " * _HEADER_WIDTH)
                out = _HashingWriter(fh)
                self._write_payload(out)
                fh.write(out.sha.digest())
                header = json.dumps({"format": FORMAT_VERSION, "kind": self.kind, "dim": self.dim, "count": len(self),
                                     "payload_len": out.size, "params": self._params()}).encode()
                if len(header) > _HEADER_WIDTH:
                    raise ValueError(f"index header over {_HEADER_WIDTH} bytes: {header[:80]!r}...")
                fh.seek(len(MAGIC) + 4)
                fh.write(header.ljust(_HEADER_WIDTH, b" "))

    @classmethod
    def load(cls, path: str | os.PathLike, dim: int) -> EmbeddingIndex:
        """Read an index saved by :meth:`save`; a corrupt, truncated or foreign file raises ModelFileError naming it."""
        path = Path(path)
        fix = "delete it and rebuild the index from the enrolled embeddings"
        try:
            fh = open(path, "rb")
        except OSError as e:
            raise ModelFileError(f"cannot read nearest-neighbour index {path}: {e}") from e
        with fh:
            try:
                total = os.fstat(fh.fileno()).st_size
                head = fh.read(len(MAGIC) + 4)
                if len(head) < len(MAGIC) + 4 or head[:len(MAGIC)] != MAGIC:
                    raise ValueError("not a mien nearest-neighbour index (bad magic)")
                (width,) = struct.unpack("<I", head[len(MAGIC):])
                if width > _HEADER_MAX:
                    raise ValueError("header length out of range")
                header = json.loads(fh.read(width).decode("utf-8"))
                if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
                    raise ValueError(f"format {header.get('format')!r}, expected {FORMAT_VERSION}")
                size = int(header["payload_len"])
                start = fh.tell()
                if start + size + 32 != total:
                    raise ValueError(f"{total} bytes, expected {start + size + 32} (truncated or appended to)")
                sha = hashlib.sha256()
                left = size
                while left:
                    block = fh.read(min(_CHUNK, left))
                    if not block:
                        raise ValueError("truncated payload")
                    sha.update(block)
                    left -= len(block)
                if fh.read(32) != sha.digest():
                    raise ValueError("checksum mismatch (corrupt file)")
                kind, stored_dim, count = str(header["kind"]), int(header["dim"]), int(header["count"])
                params = dict(header.get("params") or {})
            except (ValueError, KeyError, TypeError, AttributeError, struct.error) as e:
                raise ModelFileError(f"nearest-neighbour index {path} is unreadable: {e}; {fix}") from e
            klass = INDEXES.get(kind)
            if klass is None or (cls is not EmbeddingIndex and not issubclass(klass, cls)):
                want = cls.kind or "a known"
                raise ModelFileError(f"nearest-neighbour index {path} holds a {kind!r} index, not {want} one; {fix}")
            if stored_dim != dim:
                raise ModelFileError(f"nearest-neighbour index {path} holds {stored_dim}-d embeddings, expected "
                                     f"{dim} (another embedding model); {fix}")
            fh.seek(start)
            try:
                index = klass._from_payload(fh, size, dim, params)
            except ModelFileError:
                raise
            except Exception as e:  # noqa: BLE001 - a verified payload the library still rejects
                raise ModelFileError(f"nearest-neighbour index {path} is unreadable: {e}; {fix}") from e
        if len(index) != count:
            raise ModelFileError(f"nearest-neighbour index {path} holds {len(index)} embeddings, header says "
                                 f"{count}; {fix}")
        return index


class ExactIndex(EmbeddingIndex):
    """Brute-force search (dist^2 = |q|^2 + |x|^2 - 2 q.x, float32): exact, nothing to build; for small galleries."""

    kind = "exact"

    def __init__(self, dim: int, *, block_rows: int = 65_536, block_queries: int = 256):
        super().__init__(dim)
        self.block_rows, self.block_queries = block_rows, block_queries  # bound scratch memory to ~64 MB
        self._n = 0
        self._ids = np.empty(0, np.int64)
        self._x = np.empty((0, self.dim), np.float32)
        self._sq = np.empty(0, np.float32)  # squared norms, so non-normalised vectors are still exact

    def __len__(self) -> int:
        """Number of embeddings in the index."""
        return self._n

    def _reserve(self, n: int) -> None:
        if n <= len(self._ids):
            return
        cap = max(n, 2 * len(self._ids), 1024)  # doubling: adding one person is amortised O(1)
        for name, shape, dtype in (("_ids", (cap,), np.int64), ("_x", (cap, self.dim), np.float32),
                                   ("_sq", (cap,), np.float32)):
            new = np.empty(shape, dtype)
            new[:self._n] = getattr(self, name)[:self._n]
            setattr(self, name, new)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append embeddings (replacing ids already present) without touching the rest."""
        ids = _check_ids(ids)
        x = _check_vectors(vectors, self.dim, len(ids))
        if len(np.unique(ids)) != len(ids):
            raise ValueError("duplicate ids in one add() call")
        self.remove(ids)
        self._reserve(self._n + len(ids))
        end = self._n + len(ids)
        self._ids[self._n:end], self._x[self._n:end] = ids, x
        self._sq[self._n:end] = np.einsum("ij,ij->i", x, x)
        self._n = end

    def remove(self, ids: np.ndarray) -> int:
        """Drop ids by moving the last rows into their holes: O(removed) copies, never a rebuild."""
        ids = _check_ids(ids)
        if not self._n or not ids.size:
            return 0
        rows = np.flatnonzero(np.isin(self._ids[:self._n], ids))
        if not rows.size:
            return 0
        n_new = self._n - rows.size
        holes = rows[rows < n_new]
        tail = np.setdiff1d(np.arange(n_new, self._n), rows, assume_unique=True)
        for arr in (self._ids, self._x, self._sq):
            arr[holes] = arr[tail]
        self._n = n_new
        return int(rows.size)

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest neighbours, gallery and queries processed in blocks so memory stays bounded."""
        q = self._prepare_search(queries, k)
        out_ids, out_d = _empty_result(len(q), k)
        n = self._n
        if not n or not len(q):
            return out_ids, out_d
        with _OneBlasThread() if len(q) < 64 else contextlib.nullcontext():
            self._search_blocks(q, k, out_ids, out_d)
        return out_ids, out_d

    def _search_blocks(self, q: np.ndarray, k: int, out_ids: np.ndarray, out_d: np.ndarray) -> None:
        n = self._n
        kk = min(k, n)
        for qs in range(0, len(q), self.block_queries):
            qb = q[qs:qs + self.block_queries]
            qsq = np.einsum("ij,ij->i", qb, qb)[:, None]
            best_d = np.full((len(qb), 0), np.inf, np.float32)
            best_r = np.empty((len(qb), 0), np.int64)
            for s in range(0, n, self.block_rows):
                e = min(n, s + self.block_rows)
                d2 = qb @ self._x[s:e].T
                d2 *= -2.0
                d2 += self._sq[None, s:e]
                d2 += qsq
                if kk < e - s:
                    part = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
                    d2 = np.take_along_axis(d2, part, axis=1)
                else:
                    part = np.broadcast_to(np.arange(e - s), d2.shape)
                cand_d = np.concatenate([best_d, d2], axis=1)
                cand_r = np.concatenate([best_r, part + s], axis=1)
                if cand_d.shape[1] > kk:
                    keep = np.argpartition(cand_d, kk - 1, axis=1)[:, :kk]
                    cand_d = np.take_along_axis(cand_d, keep, axis=1)
                    cand_r = np.take_along_axis(cand_r, keep, axis=1)
                best_d, best_r = cand_d, cand_r
            order = np.argsort(best_d, axis=1, kind="stable")
            best_d = np.take_along_axis(best_d, order, axis=1)
            best_r = np.take_along_axis(best_r, order, axis=1)
            out_ids[qs:qs + len(qb), :kk] = self._ids[best_r]
            out_d[qs:qs + len(qb), :kk] = np.sqrt(np.maximum(best_d, 0.0))

    def _params(self) -> dict:
        return {}

    def _write_payload(self, out: _HashingWriter) -> None:
        np.save(out, self._ids[:self._n], allow_pickle=False)
        np.save(out, self._x[:self._n], allow_pickle=False)

    @classmethod
    def _from_payload(cls, fh: BinaryIO, size: int, dim: int, params: dict) -> ExactIndex:
        ids = np.load(fh, allow_pickle=False)
        x = np.load(fh, allow_pickle=False)
        if ids.dtype != np.int64 or x.dtype != np.float32 or x.shape != (len(ids), dim):
            raise ValueError(f"payload arrays {ids.dtype}{ids.shape} / {x.dtype}{x.shape} do not match dim {dim}")
        index = cls(dim)
        if len(ids):
            index.add(ids, x)
        return index


class USearchIndex(EmbeddingIndex):
    """HNSW graph (usearch, float32, squared-L2) with native deletes and automatic capacity growth."""

    kind = "usearch"
    CONNECTIVITY = 16  # HNSW "M"
    EXPANSION_ADD = 128  # ef_construction
    EF = 256  # ef at search: recall@1 1.000 at 100k (0.998 at ef=128); chosen with headroom for 1M

    def __init__(self, dim: int, *, connectivity: int = CONNECTIVITY, expansion_add: int = EXPANSION_ADD,
                 ef: int = EF, threads: int = 0, _index: Any = None):
        super().__init__(dim)
        from usearch.index import Index  # lazy: importing identity.knn must not load the library

        # dtype f32 explicitly: by default usearch picks bf16/f16 where the CPU has it (results differ per machine)
        self._ix = _index if _index is not None else Index(
            ndim=self.dim, metric="l2sq", dtype="f32", connectivity=connectivity, expansion_add=expansion_add)
        self._ix.expansion_search = int(ef)
        self.threads = threads  # for bulk adds and batch searches; 0 = all cores

    def __len__(self) -> int:
        """Number of embeddings in the index."""
        return len(self._ix)

    @property
    def ef(self) -> int:
        """Search breadth (HNSW ef): higher is more exact and slower."""
        return int(self._ix.expansion_search)

    @ef.setter
    def ef(self, value: int) -> None:
        self._ix.expansion_search = int(value)

    def _threads(self, n: int) -> int:
        return 1 if n < 64 else self.threads  # one face: no thread start-up, no wait on a busy second core

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert into the graph (replacing ids already present); capacity grows by itself."""
        ids = _check_ids(ids)
        x = _check_vectors(vectors, self.dim, len(ids))
        if not len(ids):
            return
        if len(np.unique(ids)) != len(ids):
            raise ValueError("duplicate ids in one add() call")
        if len(self._ix):
            present = np.asarray(self._ix.contains(ids.astype(np.uint64)), dtype=bool).reshape(-1)
            if present.any():
                self._ix.remove(ids[present].astype(np.uint64))
        self._ix.add(ids.astype(np.uint64), x, threads=self._threads(len(ids)))

    def remove(self, ids: np.ndarray) -> int:
        """Delete from the graph in place (the slots are reused by later adds)."""
        ids = _check_ids(ids)
        if not ids.size or not len(self._ix):
            return 0
        return int(np.sum(self._ix.remove(np.unique(ids).astype(np.uint64))))

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Approximate k nearest neighbours (recall@1 >= 0.99 against exact search at the default ef)."""
        q = self._prepare_search(queries, k)
        out_ids, out_d = _empty_result(len(q), k)
        if not len(self._ix) or not len(q):
            return out_ids, out_d
        m = self._ix.search(q, k, threads=self._threads(len(q)))
        if hasattr(m, "counts"):  # BatchMatches: (m, k) slots, the first counts[i] of each row filled
            keys = np.asarray(m.keys).reshape(len(q), k)
            d2 = np.asarray(m.distances, dtype=np.float32).reshape(len(q), k)
            counts = np.asarray(m.counts).reshape(len(q))
        else:  # one query gives a flat Matches holding only what was found
            found = len(m.keys)
            keys, d2 = np.zeros((1, k), np.uint64), np.zeros((1, k), np.float32)
            keys[0, :found], d2[0, :found] = m.keys, m.distances
            counts = np.array([found])
        valid = np.arange(k)[None, :] < counts[:, None]
        out_ids[valid] = keys[valid].astype(np.int64)
        out_d[valid] = np.sqrt(np.maximum(d2[valid], 0.0))
        return out_ids, out_d

    def _params(self) -> dict:
        return {"connectivity": int(self._ix.connectivity), "expansion_add": int(self._ix.expansion_add),
                "ef": self.ef}

    def _write_payload(self, out: _HashingWriter) -> None:
        out.write(self._ix.save())  # one in-memory copy of the graph while saving

    @classmethod
    def _from_payload(cls, fh: BinaryIO, size: int, dim: int, params: dict) -> USearchIndex:
        from usearch.index import Index

        buf = bytearray(size)
        if fh.readinto(buf) != size:
            raise ValueError("truncated payload")
        ix = Index.restore(buf)
        if ix is None or ix.ndim != dim or "F32" not in str(ix.dtype) or "L2sq" not in str(ix.metric):
            raise ValueError(f"payload is not a {dim}-d float32 L2 usearch index")
        return cls(dim, ef=int(params.get("ef", cls.EF)), _index=ix)


INDEXES: dict[str, type[EmbeddingIndex]] = {"exact": ExactIndex, "usearch": USearchIndex}


def build_index(kind: str, dim: int) -> EmbeddingIndex:
    """An empty index of ``kind`` (a key of INDEXES) for ``dim``-d embeddings."""
    try:
        return INDEXES[kind](dim)
    except KeyError:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {sorted(INDEXES)}") from None


def choose_index_kind(n: int) -> str:
    """``exact`` for galleries under EXACT_BELOW embeddings (as fast, exact, nothing to build), else the HNSW index."""
    return "exact" if n < EXACT_BELOW else ANN_KIND
