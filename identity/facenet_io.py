"""FaceNet's input and output conventions, without TensorFlow: what every runtime of the network shares."""
from __future__ import annotations

import numpy as np

from mien.nets import FACENET_EMBEDDING_DIM as EMBEDDING_DIM, FACENET_INPUT_SIZE as INPUT_SIZE  # noqa: F401


def prewhiten(faces: np.ndarray) -> np.ndarray:
    """Per-image standardisation ``(x - mean) / max(std, 1/sqrt(n))`` as FaceNet was trained with."""
    x = np.asarray(faces, dtype=np.float32)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    floor = np.float32(1.0 / np.sqrt(np.prod(x.shape[1:])))
    return ((x - mean) / np.maximum(std, floor)).astype(np.float32, copy=False)


def l2_normalize(v: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Scale each row to unit length."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)
