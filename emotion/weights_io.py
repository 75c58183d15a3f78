"""Compact float16 weights file for the shipped model: one dataset per variable, keyed by variable path."""

from __future__ import annotations

import hashlib
import os

from typing import TYPE_CHECKING

import h5py
import numpy as np

if TYPE_CHECKING:
    import keras

FORMAT = "mien-emotion-weights"
FORMAT_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (weights checksums; which data a model was trained on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights_f16(model: keras.Model, path: str | os.PathLike) -> int:
    """Write every model weight as float16 (halves the ~95 MB float32 file); returns the tensor count."""
    paths = [w.path for w in model.weights]
    if len(set(paths)) != len(paths):
        raise ValueError("model has duplicate variable paths; cannot save by path")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["model_name"] = model.name
        for w in model.weights:
            arr = np.asarray(w.numpy())
            f.create_dataset(w.path, data=arr.astype(np.float16) if arr.dtype.kind == "f" else arr)
    return len(paths)


def load_weights_f16(model: keras.Model, path: str | os.PathLike) -> None:
    """Load a save_weights_f16 file into ``model``; raise ValueError listing missing/mismatched tensors."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format attribute {f.attrs.get('format')!r})")
        problems, values = [], []
        for w in model.weights:
            if w.path not in f:
                problems.append(f"missing {w.path}")
                continue
            arr = f[w.path][()]
            if tuple(arr.shape) != tuple(w.shape):
                problems.append(f"shape mismatch {w.path}: file {arr.shape} vs model {tuple(w.shape)}")
                continue
            values.append((w, arr))
        extra = _count_datasets(f) - len(model.weights)
        if extra > 0:
            problems.append(f"{extra} tensors in the file that the model does not have")
        if problems:
            raise ValueError("; ".join(problems[:10]) + (f"; ... {len(problems) - 10} more" if len(problems) > 10 else ""))
    for w, arr in values:
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"non-finite values in {w.path}")
        w.assign(arr.astype(w.dtype))


def _count_datasets(f: h5py.File) -> int:
    """Number of datasets anywhere in the file."""
    n = 0

    def visit(_name, obj):
        nonlocal n
        n += isinstance(obj, h5py.Dataset)

    f.visititems(visit)
    return n
