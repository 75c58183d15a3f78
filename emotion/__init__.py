"""Emotion branch of mien: 48x48 grayscale face -> FER2013-trained networks (a VGGFace-layout ResNet50 and the
vgg48 CNN, shipped as an ensemble) -> FER2013's 7 emotions, or FER+'s 8 with the ferplus model.

Heavy modules (TensorFlow) load lazily, so ``from emotion import EMOTIONS`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from mien.emotion.labels import EMOTIONS, NUM_CLASSES

_LAZY = {
    "EmotionClassifier": "mien.emotion.classifier",
    "EmotionModelError": "mien.emotion.classifier",
    "EmotionError": "mien.emotion.errors",
    "evaluate": "mien.emotion.training.evaluate",
    "save_confusion_png": "mien.emotion.training.evaluate",
    "load_dataset": "mien.emotion.training.data",
    "DataFormatError": "mien.emotion.training.data",
    "FaceDataset": "mien.emotion.training.data",
    "build_model": "mien.emotion.model",
    "ModelConfig": "mien.emotion.model",
    "load_vggface_weights": "mien.emotion.backbone",
    "VGGFaceWeightsError": "mien.emotion.backbone",
    "to_keras3_name": "mien.emotion.backbone",
    "to_vggface_name": "mien.emotion.backbone",
    "export_run": "mien.emotion.training.export",
}

__all__ = ["EMOTIONS", "NUM_CLASSES", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import public API members on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emotion' has no attribute {name!r}")
