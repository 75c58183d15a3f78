"""InceptionResNetV1 (FaceNet, Hiroki Taniai's Keras port) rebuilt in code for Keras 3, with its weight loading.

Shared by both branches: ``mien.identity`` runs it as FaceNet (the 128-d embedding) and ``mien.emotion`` fine-tunes
its trunk for expressions (a network that learned faces first). The published ``facenet_keras.h5`` cannot be loaded
with ``keras.models.load_model`` under Keras 3 (its ``*_ScaleSum`` Lambda layers were serialised as Python 3.6
bytecode), so the architecture is declared here with Taniai's exact layer names and the weights are copied tensor
by tensor from the HDF5 file.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Callable

import h5py
import keras
import numpy as np
from keras import layers

from mien.errors import MienError
from mien.nets import FACENET_EMBEDDING_DIM as EMBEDDING_DIM, FACENET_INPUT_SIZE as INPUT_SIZE

# Number of weight tensors in Taniai's facenet_keras.h5; a load that assigns fewer is refused.
EXPECTED_TENSORS = 490
# The trunk's tensors: all but the Bottleneck's kernel and its BatchNorm's beta, mean and variance.
TRUNK_TENSORS = EXPECTED_TENSORS - 4
# The trunk's blocks from the input up (a layer belongs to the first whose name prefixes its own): what layer-wise
# learning rates and staged fine-tuning count in.
TRUNK_BLOCKS: tuple[str, ...] = (
    ("Conv2d_",) + tuple(f"Block35_{i}_" for i in range(1, 6)) + ("Mixed_6a",)
    + tuple(f"Block17_{i}_" for i in range(1, 11)) + ("Mixed_7a",) + tuple(f"Block8_{i}_" for i in range(1, 7)))


class WeightsFileError(MienError):
    """A FaceNet weights file is unreadable or does not fit the network."""


def trunk_block(layer_name: str) -> int | None:
    """Index in TRUNK_BLOCKS of the block a layer of the trunk belongs to (None: not a trunk layer)."""
    for i, prefix in enumerate(TRUNK_BLOCKS):
        if layer_name.startswith(prefix) or layer_name == prefix.rstrip("_"):
            return i
    return None


@keras.saving.register_keras_serializable(package="mien")
class ScaleSum(layers.Layer):
    """Residual merge ``shortcut + scale * up`` (replaces Taniai's serialised Lambda)."""

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        shortcut, up = inputs
        return shortcut + self.scale * up

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _conv_bn(x, filters, kernel_size, name, strides=1, padding="same", activation="relu", use_bias=False):
    """Conv2D, then BatchNorm (only when the conv has no bias) and an activation, Taniai's naming."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=name)(x)
    if not use_bias:
        x = layers.BatchNormalization(axis=3, momentum=0.995, epsilon=0.001, scale=False, name=f"{name}_BatchNorm")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_Activation")(x)
    return x


def _layer_name(prefix: str, name: str, branch: int | None = None) -> str:
    return f"{prefix}_{name}" if branch is None else f"{prefix}_Branch_{branch}_{name}"


def _residual_block(x, scale: float, block_type: str, index: int, activation: str | None = "relu"):
    """One Inception-ResNet block (Block35 / Block17 / Block8) with its scaled residual sum."""
    prefix = f"{block_type}_{index}"
    n = partial(_layer_name, prefix)
    if block_type == "Block35":
        b0 = _conv_bn(x, 32, 1, n("Conv2d_1x1", 0))
        b1 = _conv_bn(x, 32, 1, n("Conv2d_0a_1x1", 1))
        b1 = _conv_bn(b1, 32, 3, n("Conv2d_0b_3x3", 1))
        b2 = _conv_bn(x, 32, 1, n("Conv2d_0a_1x1", 2))
        b2 = _conv_bn(b2, 32, 3, n("Conv2d_0b_3x3", 2))
        b2 = _conv_bn(b2, 32, 3, n("Conv2d_0c_3x3", 2))
        branches = [b0, b1, b2]
    elif block_type == "Block17":
        b0 = _conv_bn(x, 128, 1, n("Conv2d_1x1", 0))
        b1 = _conv_bn(x, 128, 1, n("Conv2d_0a_1x1", 1))
        b1 = _conv_bn(b1, 128, (1, 7), n("Conv2d_0b_1x7", 1))
        b1 = _conv_bn(b1, 128, (7, 1), n("Conv2d_0c_7x1", 1))
        branches = [b0, b1]
    elif block_type == "Block8":
        b0 = _conv_bn(x, 192, 1, n("Conv2d_1x1", 0))
        b1 = _conv_bn(x, 192, 1, n("Conv2d_0a_1x1", 1))
        b1 = _conv_bn(b1, 192, (1, 3), n("Conv2d_0b_1x3", 1))
        b1 = _conv_bn(b1, 192, (3, 1), n("Conv2d_0c_3x1", 1))
        branches = [b0, b1]
    else:
        raise ValueError(f"unknown block type {block_type!r}")
    mixed = layers.Concatenate(axis=3, name=f"{prefix}_Concatenate")(branches)
    up = _conv_bn(mixed, x.shape[-1], 1, n("Conv2d_1x1"), activation=None, use_bias=True)
    x = ScaleSum(scale, name=f"{prefix}_ScaleSum")([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{prefix}_Activation")(x)
    return x


def _reduction_a(x):
    n = partial(_layer_name, "Mixed_6a")
    b0 = _conv_bn(x, 384, 3, n("Conv2d_1a_3x3", 0), strides=2, padding="valid")
    b1 = _conv_bn(x, 192, 1, n("Conv2d_0a_1x1", 1))
    b1 = _conv_bn(b1, 192, 3, n("Conv2d_0b_3x3", 1))
    b1 = _conv_bn(b1, 256, 3, n("Conv2d_1a_3x3", 1), strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name=n("MaxPool_1a_3x3", 2))(x)
    return layers.Concatenate(axis=3, name="Mixed_6a")([b0, b1, pool])


def _reduction_b(x):
    n = partial(_layer_name, "Mixed_7a")
    b0 = _conv_bn(x, 256, 1, n("Conv2d_0a_1x1", 0))
    b0 = _conv_bn(b0, 384, 3, n("Conv2d_1a_3x3", 0), strides=2, padding="valid")
    b1 = _conv_bn(x, 256, 1, n("Conv2d_0a_1x1", 1))
    b1 = _conv_bn(b1, 256, 3, n("Conv2d_1a_3x3", 1), strides=2, padding="valid")
    b2 = _conv_bn(x, 256, 1, n("Conv2d_0a_1x1", 2))
    b2 = _conv_bn(b2, 256, 3, n("Conv2d_0b_3x3", 2))
    b2 = _conv_bn(b2, 256, 3, n("Conv2d_1a_3x3", 2), strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name=n("MaxPool_1a_3x3", 3))(x)
    return layers.Concatenate(axis=3, name="Mixed_7a")([b0, b1, b2, pool])


def inception_resnet_v1_features(x):
    """Apply InceptionResNetV1's trunk (stem, Block35 x5, Mixed_6a, Block17 x10, Mixed_7a, Block8 x6) to a
    3-channel prewhitened image batch; returns the last Block8's feature maps (1,792 channels)."""
    x = _conv_bn(x, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = _conv_bn(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = _conv_bn(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="MaxPool_3a_3x3")(x)
    x = _conv_bn(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = _conv_bn(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    x = _conv_bn(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")
    for i in range(1, 6):
        x = _residual_block(x, 0.17, "Block35", i)
    x = _reduction_a(x)
    for i in range(1, 11):
        x = _residual_block(x, 0.1, "Block17", i)
    x = _reduction_b(x)
    for i in range(1, 6):
        x = _residual_block(x, 0.2, "Block8", i)
    return _residual_block(x, 1.0, "Block8", 6, activation=None)


def build_inception_resnet_v1(input_size: int = INPUT_SIZE) -> keras.Model:
    """InceptionResNetV1 with Taniai's layer names; outputs the raw 128-d bottleneck (not normalised)."""
    inputs = keras.Input((input_size, input_size, 3), name="input_1")
    x = inception_resnet_v1_features(inputs)
    x = layers.GlobalAveragePooling2D(name="AvgPool")(x)
    x = layers.Dropout(0.2, name="Dropout")(x)
    x = layers.Dense(EMBEDDING_DIM, use_bias=False, name="Bottleneck")(x)
    x = layers.BatchNormalization(momentum=0.995, epsilon=0.001, scale=False, name="Bottleneck_BatchNorm")(x)
    return keras.Model(inputs, x, name="inception_resnet_v1")


def load_taniai_weights(model: keras.Model, h5_path: str | os.PathLike, expected: int = EXPECTED_TENSORS,
                        skip: Callable[[str], bool] = lambda name: False) -> int:
    """Copy every tensor of a Keras-2 ``facenet_keras.h5`` into ``model`` by layer name.

    Layers for which ``skip(name)`` is true (a new head on the trunk) are left alone. Returns the number of tensors
    assigned; raises WeightsFileError unless it is ``expected``.
    """
    path = Path(h5_path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsFileError(f"{path}: not a readable HDF5 weights file ({exc}). Re-fetch it with `mien models fetch`.") from exc
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        saved = {name.decode() if isinstance(name, bytes) else name for name in group.attrs.get("layer_names", [])}
        assigned = 0
        for layer in model.layers:
            if not layer.weights or skip(layer.name):
                continue
            if layer.name not in saved:
                raise WeightsFileError(f"{path}: no weights for layer {layer.name!r}; this is not Taniai's FaceNet file.")
            g = group[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            arrays = [np.asarray(g[n]) for n in names]
            wanted = [tuple(w.shape) for w in layer.weights]
            if [a.shape for a in arrays] != wanted:
                raise WeightsFileError(f"{path}: layer {layer.name!r} has shapes {[a.shape for a in arrays]}, expected {wanted}.")
            layer.set_weights(arrays)
            assigned += len(arrays)
    if assigned != expected:
        raise WeightsFileError(f"{path}: assigned {assigned} weight tensors, expected {expected}.")
    return assigned
