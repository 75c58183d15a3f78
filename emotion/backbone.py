"""ResNet50 in the keras-vggface RESNET50 layout, rebuilt natively for Keras 3.

Layer names follow keras-vggface (``conv1/7x7_s2``, ``conv2_1_1x1_reduce/bn``, ...)
through a reversible mapping (``/`` -> ``__``) because Keras 3 refuses ``/`` in layer
names; this lets a Keras-2 VGGFace weights file (``rcmalli_vggface_tf_notop_resnet50.h5``)
load by name with :func:`load_vggface_weights`.
"""

from __future__ import annotations

import os
from typing import Iterable

import h5py
import keras
import numpy as np
from keras import layers

from mien.emotion.errors import EmotionError

SEP_KERAS2 = "/"
SEP_KERAS3 = "__"

# (stage, number of blocks, filters) exactly as in keras_vggface.models.RESNET50.
RESNET50_STAGES: tuple[tuple[int, int, tuple[int, int, int]], ...] = (
    (2, 3, (64, 64, 256)),
    (3, 4, (128, 128, 512)),
    (4, 6, (256, 256, 1024)),
    (5, 3, (512, 512, 2048)),
)


class VGGFaceWeightsError(EmotionError, ValueError):
    """A VGGFace weights file is missing, unreadable or does not fit the backbone."""


def to_keras3_name(vggface_name: str) -> str:
    """Map a keras-vggface layer name to a Keras-3-legal one (``/`` -> ``__``)."""
    if SEP_KERAS3 in vggface_name:
        raise ValueError(f"name {vggface_name!r} already contains {SEP_KERAS3!r}; mapping would not be reversible")
    return vggface_name.replace(SEP_KERAS2, SEP_KERAS3)


def to_vggface_name(keras3_name: str) -> str:
    """Map a Keras-3 layer name back to its keras-vggface spelling (``__`` -> ``/``)."""
    return keras3_name.replace(SEP_KERAS3, SEP_KERAS2)


def _conv_bn(x, filters: int, kernel: int | tuple[int, int], name: str, strides: int = 1,
             padding: str = "valid", relu: bool = True):
    """Conv2D (no bias) + BatchNorm (+ ReLU) with keras-vggface names ``name`` and ``name/bn``."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                      name=to_keras3_name(name))(x)
    x = layers.BatchNormalization(axis=-1, name=to_keras3_name(name + "/bn"))(x)
    if relu:
        x = layers.Activation("relu")(x)
    return x


def _bottleneck(x, filters: tuple[int, int, int], stage: int, block: int, strides: int, project: bool):
    """One keras-vggface ResNet50 bottleneck block (conv block if ``project`` else identity block)."""
    f1, f2, f3 = filters
    base = f"conv{stage}_{block}"
    y = _conv_bn(x, f1, 1, base + "_1x1_reduce", strides=strides)
    y = _conv_bn(y, f2, 3, base + "_3x3", padding="same")
    y = _conv_bn(y, f3, 1, base + "_1x1_increase", relu=False)
    shortcut = _conv_bn(x, f3, 1, base + "_1x1_proj", strides=strides, relu=False) if project else x
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu")(y)


def resnet50_features(x, stem_pool: bool = True):
    """Apply the VGGFace ResNet50 trunk (7x7/2 stem, then the stock 3x3/2 max-pool if ``stem_pool``) to ``x``."""
    x = _conv_bn(x, 64, 7, "conv1/7x7_s2", strides=2, padding="same")
    if stem_pool:
        x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    for stage, blocks, filters in RESNET50_STAGES:
        for block in range(1, blocks + 1):
            first = block == 1
            strides = (1 if stage == 2 else 2) if first else 1
            x = _bottleneck(x, filters, stage, block, strides, project=first)
    return x


def build_backbone(input_shape: tuple[int, int, int] = (48, 48, 3), name: str = "vggface_resnet50") -> keras.Model:
    """Build the notop VGGFace ResNet50 with global average pooling (works at 48x48, unlike AvgPool 7x7)."""
    inputs = keras.Input(shape=input_shape)
    x = resnet50_features(inputs)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name=name)


def vggface_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers of ``model`` (recursing into sub-models) that carry VGGFace-named weights."""
    found: list[keras.layers.Layer] = []

    def walk(layer_list: Iterable[keras.layers.Layer]) -> None:
        for layer in layer_list:
            if isinstance(layer, keras.Model):
                walk(layer.layers)
            elif isinstance(layer, (layers.Conv2D, layers.BatchNormalization)) and layer.weights \
                    and layer.name.startswith("conv"):
                found.append(layer)

    walk(model.layers)
    return found


def _short(weight_name: str) -> str:
    """``conv1/7x7_s2/kernel:0`` -> ``kernel``: the per-layer variable name in a Keras-2 h5 file."""
    return weight_name.split("/")[-1].split(":")[0]


def read_keras2_weights(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read a Keras-2 ``save_weights`` h5 file into {vggface layer name: {variable: array}}."""
    if not os.path.isfile(path):
        raise VGGFaceWeightsError(f"VGGFace weights file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in root.attrs:
                raise VGGFaceWeightsError(f"{path}: not a Keras-2 weights file (no 'layer_names' attribute)")
            out: dict[str, dict[str, np.ndarray]] = {}
            for raw in root.attrs["layer_names"]:
                lname = raw.decode() if isinstance(raw, bytes) else str(raw)
                group = root[lname]
                wnames = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])]
                if wnames:
                    out[lname] = {_short(w): np.asarray(group[w]) for w in wnames}
            return out
    except VGGFaceWeightsError:
        raise
    except (OSError, KeyError) as exc:
        raise VGGFaceWeightsError(f"{path}: unreadable VGGFace weights file ({exc})") from exc


_ORDER = {
    "Conv2D": ("kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}


def load_vggface_weights(model: keras.Model, path: str | os.PathLike) -> int:
    """Load a Keras-2 VGGFace ResNet50 weights file into ``model`` by layer name; return layers loaded.

    Fails loudly (VGGFaceWeightsError listing every missing or mismatched tensor) instead of
    loading a partial backbone; extra layers in the file (e.g. the 8631-way classifier) are ignored.
    """
    stored = read_keras2_weights(path)
    targets = vggface_layers(model)
    if not targets:
        raise VGGFaceWeightsError("model has no VGGFace-named layers to load into")
    problems: list[str] = []
    plan: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    for layer in targets:
        vname = to_vggface_name(layer.name)
        if vname not in stored:
            problems.append(f"missing layer {vname}")
            continue
        have = stored[vname]
        order = _ORDER[type(layer).__name__]
        wanted = [w for w in order if (w != "bias" or getattr(layer, "use_bias", False))]
        arrays: list[np.ndarray] = []
        for wname, var in zip(wanted, layer.weights):
            if wname not in have:
                problems.append(f"missing tensor {vname}/{wname}")
            elif tuple(have[wname].shape) != tuple(var.shape):
                problems.append(f"shape mismatch {vname}/{wname}: file {tuple(have[wname].shape)} vs model {tuple(var.shape)}")
            else:
                arrays.append(have[wname])
        if len(arrays) == len(layer.weights):
            plan.append((layer, arrays))
    if problems:
        head = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise VGGFaceWeightsError(
            f"{path}: does not fit the VGGFace ResNet50 backbone ({len(problems)} problems):\n  {head}{more}\n"
            "Expected keras-vggface 'rcmalli_vggface_tf_notop_resnet50.h5' (or the full model file).")
    for layer, arrays in plan:
        layer.set_weights(arrays)
    return len(plan)
