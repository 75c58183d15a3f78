"""FaceNet (InceptionResNetV1, Hiroki Taniai's Keras port) rebuilt in code for Keras 3.

The published ``facenet_keras.h5`` cannot be loaded with ``keras.models.load_model`` under
Keras 3 (its ``*_ScaleSum`` Lambda layers were serialised as Python 3.6 bytecode), so the
architecture is declared here with Taniai's exact layer names and the weights are copied
tensor by tensor from the HDF5 file.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import h5py
import keras
import numpy as np
from keras import layers

from mien.identity.errors import ModelFileError
from mien.identity.facenet_io import EMBEDDING_DIM, INPUT_SIZE, l2_normalize, prewhiten  # noqa: F401 (FaceNet's I/O)

# Number of weight tensors in Taniai's facenet_keras.h5; a load that assigns fewer is refused.
EXPECTED_TENSORS = 490


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


def build_inception_resnet_v1(input_size: int = INPUT_SIZE) -> keras.Model:
    """InceptionResNetV1 with Taniai's layer names; outputs the raw 128-d bottleneck (not normalised)."""
    inputs = keras.Input((input_size, input_size, 3), name="input_1")
    x = _conv_bn(inputs, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
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
    x = _residual_block(x, 1.0, "Block8", 6, activation=None)
    x = layers.GlobalAveragePooling2D(name="AvgPool")(x)
    x = layers.Dropout(0.2, name="Dropout")(x)
    x = layers.Dense(EMBEDDING_DIM, use_bias=False, name="Bottleneck")(x)
    x = layers.BatchNormalization(momentum=0.995, epsilon=0.001, scale=False, name="Bottleneck_BatchNorm")(x)
    return keras.Model(inputs, x, name="inception_resnet_v1")


def load_taniai_weights(model: keras.Model, h5_path: str | os.PathLike) -> int:
    """Copy every tensor of a Keras-2 ``facenet_keras.h5`` into ``model`` by layer name.

    Returns the number of tensors assigned; raises ModelFileError unless all of them were.
    """
    path = Path(h5_path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 weights file ({exc}). Re-fetch it with `mien models fetch`.") from exc
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        saved = {name.decode() if isinstance(name, bytes) else name for name in group.attrs.get("layer_names", [])}
        assigned = 0
        for layer in model.layers:
            if not layer.weights:
                continue
            if layer.name not in saved:
                raise ModelFileError(f"{path}: no weights for layer {layer.name!r}; this is not Taniai's FaceNet file.")
            g = group[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            arrays = [np.asarray(g[n]) for n in names]
            expected = [tuple(w.shape) for w in layer.weights]
            if [a.shape for a in arrays] != expected:
                raise ModelFileError(
                    f"{path}: layer {layer.name!r} has shapes {[a.shape for a in arrays]}, expected {expected}."
                )
            layer.set_weights(arrays)
            assigned += len(arrays)
    if assigned != EXPECTED_TENSORS:
        raise ModelFileError(f"{path}: assigned {assigned} weight tensors, expected {EXPECTED_TENSORS}.")
    return assigned
