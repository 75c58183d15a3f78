"""Emotion branch of mien: 48x48 grayscale face -> VGGFace-layout ResNet50 -> 7 FER2013 emotions.

Heavy modules (TensorFlow) load lazily, so ``from emotion import EMOTIONS`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from emotion.labels import EMOTIONS, NUM_CLASSES

_LAZY = {
    "EmotionClassifier": "emotion.classifier",
    "EmotionModelError": "emotion.classifier",
    "EmotionError": "emotion.errors",
    "evaluate": "emotion.training.evaluate",
    "save_confusion_png": "emotion.training.evaluate",
    "load_dataset": "emotion.training.data",
    "DataFormatError": "emotion.training.data",
    "FaceDataset": "emotion.training.data",
    "build_model": "emotion.model",
    "ModelConfig": "emotion.model",
    "load_vggface_weights": "emotion.backbone",
    "VGGFaceWeightsError": "emotion.backbone",
    "to_keras3_name": "emotion.backbone",
    "to_vggface_name": "emotion.backbone",
    "export_run": "emotion.training.export",
}

__all__ = ["EMOTIONS", "NUM_CLASSES", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import public API members on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emotion' has no attribute {name!r}")
