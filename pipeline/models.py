"""The model zoo: the networks mien runs on top of the detector (pipeline.detection), built in one place from a
weights file (found and verified by ``assets``) on an inference runtime (``runtime``): FaceNet and the emotion model.

``assets`` knows files and checksums, ``runtime`` knows OpenVINO; only this module knows both.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from mien.identity.embedders import Embedder, build_embedder
from mien.pipeline.assets import FACENET, emotion_weights_path, resolve
from mien.pipeline.runtime import compile_forward_for, is_cached, network_precision, views_per_call_for

log = logging.getLogger(__name__)


def build_facenet(runtime: str = "openvino", precision: str = "auto") -> Embedder:
    """The FaceNet embedder (128-d, 160x160 RGB) on ``runtime`` (openvino | tensorflow) in ``precision``, weights
    verified."""
    if runtime == "openvino" and network_precision(precision, "facenet") == "int8":
        from mien.pipeline.quantize import int8_forward  # NNCF's INT8 model, made once and cached

        compile_forward = int8_forward
    else:
        compile_forward = compile_forward_for(runtime, "facenet", precision)
    return build_embedder("facenet", resolve("facenet"), weights_sha256=FACENET.sha256, compile_forward=compile_forward)


def load_emotion_model(path: str | os.PathLike | None = None, required: bool = False, runtime: str = "openvino",
                       views=None, precision: str = "auto", label_set: str = "fer2013"):
    """The emotion model at ``path`` (a weights file, or an ensemble's model.json; default: the shipped model of
    ``label_set``, fer2013 | ferplus; a file given is used whatever its labels) run by ``runtime`` (openvino | tensorflow) in ``precision``, or None (with one
    warning) when it is missing or incompatible; ``views`` (emotion.views.TestTimeViews) overrides model.json's
    test-time views."""
    from mien.emotion import EmotionClassifier, EmotionModelError
    from mien.emotion.ensemble import EmotionEnsemble, is_ensemble

    chosen = path is None  # a shipped model by label set (else the file is whatever model it is)
    path = Path(path) if path else emotion_weights_path(label_set)
    kind = EmotionEnsemble if is_ensemble(path) else EmotionClassifier  # a model.json of members, or one network
    try:
        model = kind.load(path, compile_forward=compile_forward_for(runtime, "emotion", precision), views=views,
                          views_per_call=views_per_call_for(runtime))
        if chosen and model.label_set != label_set:
            raise EmotionModelError(f"{path} is a {model.label_set} model ({len(model.labels)} emotions), not the "
                                    f"{label_set} one asked for; choose --emotion-model {model.label_set}")
        return model
    except EmotionModelError as exc:
        if required:
            raise
        log.warning("Emotion disabled: %s Identity still works; \"emotion\" will be null.", exc)
        return None


def openvino_models_cached(emotion_views: str | None = "model", label_set: str = "fer2013") -> bool:
    """Whether FaceNet and the shipped emotion model of ``label_set`` (every member of an ensemble) with
    ``emotion_views`` ("model":
    model.json's views, a preset name of emotion.views.PRESETS, None: no emotion) are already converted: then
    recognition never imports TensorFlow. Reads only model.json files, never the weights."""
    from mien.emotion.ensemble import members_of
    from mien.emotion.views import PRESETS, TestTimeViews

    if not is_cached("facenet", FACENET.sha256):
        return False
    if emotion_views is None:
        return True
    try:
        members = members_of(emotion_weights_path(label_set))
    except FileNotFoundError:
        return True  # no emotion model: nothing to convert (recognition warns about it)
    except (OSError, ValueError, KeyError):
        return False  # the emotion loader reports what is wrong with it
    try:
        for _, meta in members:
            views = TestTimeViews.from_meta(meta.get("tta", True)) if emotion_views == "model" else PRESETS[emotion_views]
            if not is_cached(views.cache_name, meta["weights_sha256"]):
                return False
    except (ValueError, KeyError):
        return False
    return True


def prepare_openvino_models(precision: str = "auto") -> list[str]:
    """Convert (or find converted) FaceNet and the shipped emotion model now (and quantize FaceNet if ``precision``
    asks for INT8), so the first recognition does not wait for it; returns what is ready. A missing emotion model
    is skipped (recognition warns about it)."""
    build_facenet("openvino", precision)
    ready = ["facenet" + (" (int8)" if network_precision(precision, "facenet") == "int8" else "")]
    if load_emotion_model(runtime="openvino") is not None:
        ready.append("emotion")
    return ready
