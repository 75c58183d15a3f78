"""Face embedders behind one small interface, with a registry (as deepface's ``modeling.py``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from mien.identity.errors import ModelFileError
from mien.identity.storage import sha256_file


class Embedder(Protocol):
    name: str
    version: str  # changes whenever the weights change; stored with every artefact built on embeddings
    input_size: int

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings [N,D] for aligned RGB uint8 faces [N,S,S,3], in one batched call."""


# compile_forward(name, weights_sha256, tf_function_factory) -> NumPy forward: how a caller (the pipeline) runs
# a model on another inference runtime; the factory builds the Keras model only when the runtime needs it.
CompileForward = Callable[[str, str, Callable[[], object]], Callable[[np.ndarray], np.ndarray]]


class FaceNetEmbedder:
    """FaceNet InceptionResNetV1 (Taniai's Keras weights): 160x160 RGB → prewhitened → 128-d, L2-normalised.

    Runs in TensorFlow, or on whatever ``compile_forward`` provides (the pipeline passes OpenVINO); both give
    the same embeddings (cosine >= 0.9999), so the version (which keys every stored embedding) is the same."""

    name = "facenet"

    def __init__(self, weights_path: str | os.PathLike, weights_sha256: str | None = None, batch_size: int = 32,
                 compile_forward: CompileForward | None = None):
        from mien.identity import facenet_io

        path = Path(weights_path)
        if not path.is_file():
            raise ModelFileError(f"{path}: FaceNet weights file not found; run `mien models fetch`.")
        self.input_size = facenet_io.INPUT_SIZE
        self.batch_size = batch_size
        digest = weights_sha256 or sha256_file(path)
        self.version = f"facenet-taniai-{digest[:12]}"

        def tf_function():
            from mien.identity import facenet

            model = facenet.build_inception_resnet_v1()
            facenet.load_taniai_weights(model, path)
            return _polymorphic_forward(model, self.input_size)

        if compile_forward is None:
            forward = tf_function()
            self._forward = lambda x: forward(x).numpy()
        else:
            self._forward = compile_forward("facenet", digest, tf_function)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        from mien.identity.facenet_io import EMBEDDING_DIM, l2_normalize, prewhiten

        faces = np.asarray(faces)
        if len(faces) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        if faces.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"FaceNet expects faces of shape [N,{self.input_size},{self.input_size},3], got {faces.shape}")
        x = prewhiten(faces).astype(np.float32, copy=False)
        out = np.concatenate([self._forward(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)])
        return l2_normalize(out.astype(np.float32, copy=False))


def _polymorphic_forward(model, size: int):
    """One traced graph for every batch size: a batch of 1 never pays a multi-second retrace."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def forward(x):
        return model(x, training=False)

    return forward


EMBEDDERS: dict[str, Callable[..., Embedder]] = {"facenet": FaceNetEmbedder}


def build_embedder(name: str, weights_path: str | os.PathLike, **options) -> Embedder:
    """Instantiate a registered embedder by name from its weights file."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}") from None
    return factory(weights_path, **options)
