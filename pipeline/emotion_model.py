"""Finding and loading the emotion model that ships with mien (``models/emotion/``)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pipeline.home import shipped_models_dir

log = logging.getLogger(__name__)
WEIGHTS_NAME = "emotion_resnet50.weights.h5"


def emotion_weights_path() -> Path:
    """``$MIEN_EMOTION_WEIGHTS`` if set, else the model shipped in ``models/emotion/``."""
    env = os.environ.get("MIEN_EMOTION_WEIGHTS")
    return Path(env) if env else shipped_models_dir() / "emotion" / WEIGHTS_NAME


def load_emotion_model(path: str | os.PathLike | None = None, required: bool = False):
    """The EmotionClassifier, or None (with one warning) when it is missing or incompatible."""
    from emotion import EmotionClassifier, EmotionModelError

    path = Path(path) if path else emotion_weights_path()
    try:
        return EmotionClassifier.load(path)
    except EmotionModelError as exc:
        if required:
            raise
        log.warning("Emotion disabled: %s Identity still works; \"emotion\" will be null.", exc)
        return None
