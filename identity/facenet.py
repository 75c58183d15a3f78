"""FaceNet for identity: the shared InceptionResNetV1 (``mien.nets.inception_resnet_v1``) with its 128-d bottleneck,
its weights loaded from Taniai's ``facenet_keras.h5`` (errors as ``ModelFileError``)."""
from __future__ import annotations

import os

import keras

from mien.identity.errors import ModelFileError
from mien.identity.facenet_io import EMBEDDING_DIM, INPUT_SIZE, l2_normalize, prewhiten  # noqa: F401 (FaceNet's I/O)
from mien.nets import inception_resnet_v1 as irv1
from mien.nets.inception_resnet_v1 import EXPECTED_TENSORS, ScaleSum, build_inception_resnet_v1  # noqa: F401


def load_taniai_weights(model: keras.Model, h5_path: str | os.PathLike) -> int:
    """Copy every tensor of a Keras-2 ``facenet_keras.h5`` into ``model`` by layer name; all 490 must fit."""
    try:
        return irv1.load_taniai_weights(model, h5_path)
    except irv1.WeightsFileError as exc:
        raise ModelFileError(str(exc)) from exc
