"""Full emotion model: grayscale 48x48 face -> in-graph preprocessing -> a trunk (VGGFace ResNet50, vgg48 or FaceNet) -> head."""

from __future__ import annotations

import keras
from keras import layers, ops

from mien.emotion.backbone import resnet50_features
from mien.emotion.config import PREPROCESS_MODES, ModelConfig  # noqa: F401 (ModelConfig re-exported)
from mien.emotion.vgg48 import vgg48_features
from mien.nets.inception_resnet_v1 import inception_resnet_v1_features

# keras-vggface RESNET50 (version 2) channel means, BGR; used only with pretrained VGGFace weights.
VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)


class FacePreprocess(layers.Layer):
    """Grayscale [N,H,W,1] pixels in 0..255 -> 3-channel backbone input; the ONE preprocessing path.

    ``standardize``: per-image zero mean / unit std (robust to exposure, used from scratch).
    ``vggface``: keras-vggface v2 mean subtraction on 0..255 values (for pretrained VGGFace weights).
    """

    def __init__(self, mode: str = "standardize", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"unknown preprocess mode {mode!r}")
        self.mode = mode

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.mode == "standardize":
            mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
            std = ops.std(x, axis=(1, 2, 3), keepdims=True)
            x = (x - mean) / ops.maximum(std, 1.0)
            return ops.concatenate([x, x, x], axis=-1)
        mean = ops.convert_to_tensor(VGGFACE2_MEAN_BGR, dtype="float32")
        return ops.concatenate([x, x, x], axis=-1) - mean

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


# The trunk of each architecture (emotion.config.ARCHITECTURES): features of the 3-channel preprocessed face.
TRUNKS = {
    "resnet50": lambda x, config: resnet50_features(x, stem_pool=config.stem_pool),
    "vgg48": lambda x, config: vgg48_features(x),
    "facenet": lambda x, config: inception_resnet_v1_features(x),
}


def build_model(config: ModelConfig = ModelConfig(), policy: str | None = None) -> keras.Model:
    """Build the full emotion classifier: float [N,S,S,1] grayscale 0..255 in, softmax [N,7] out.

    ``policy`` (e.g. "float32") overrides the global Keras dtype policy for this model only.
    """
    if policy is not None:
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(policy)
        try:
            return build_model(config)
        finally:
            keras.mixed_precision.set_global_policy(previous)
    s = config.input_size
    inputs = keras.Input(shape=(s, s, 1), name="face_gray")
    x = inputs
    if config.upscale_to:
        x = layers.Resizing(config.upscale_to, config.upscale_to, interpolation="bilinear", name="upscale",
                            dtype="float32")(x)
    x = FacePreprocess(config.preprocess, name="preprocess", dtype="float32")(x)
    x = TRUNKS[config.arch](x, config)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    for i, units in enumerate(config.head_units, start=1):
        x = layers.Dense(units, use_bias=not config.head_batchnorm, name=f"head_dense{i}")(x)
        if config.head_batchnorm:
            x = layers.BatchNormalization(name=f"head_bn{i}")(x)
        x = layers.Activation("relu", name=f"head_relu{i}")(x)
        if config.head_dropout > 0:
            x = layers.Dropout(config.head_dropout, name=f"head_dropout{i}")(x)
    outputs = layers.Dense(config.num_classes, activation="softmax", name="emotion_probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"mien_emotion_{config.arch}")
