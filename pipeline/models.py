"""The model zoo: the networks mien runs on top of the detector (pipeline.detection), built in one place from a
weights file (found and verified by ``assets``) on an inference runtime (``runtime``): FaceNet and the emotion model.

``assets`` knows files and checksums, ``runtime`` knows OpenVINO; only this module knows both.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from mien.identity.embedders import Embedder, build_embedder
from mien.identity.errors import ModelFileError
from mien.pipeline.assets import FACENET, emotion_weights_path, resolve
from mien.pipeline.errors import UsageError
from mien.pipeline.options import Options
from mien.pipeline.runtime import compile_forward_for, is_cached, network_precision, views_per_call_for

log = logging.getLogger(__name__)
# what stops FaceNet's INT8 model from being made (no NNCF, no calibration photos or sdist download, OpenVINO or
# NNCF failing): under `auto` FaceNet then runs fp32 (with one warning), under `int8` the error is the answer
INT8_FAILURES = (UsageError, ModelFileError, ImportError, OSError, RuntimeError, ValueError)
_fp32_said = False  # the fallback's warning, once per process


def build_facenet(runtime: str = "openvino", precision: str = "auto", *, make_int8: bool = False) -> Embedder:
    """The FaceNet embedder (128-d, 160x160 RGB) on ``runtime`` (openvino | tensorflow) in ``precision``, weights
    verified; its ``precision`` attribute says what it runs in. ``auto`` takes the INT8 model when it is made on
    this machine (``make_int8``: make it now, as `mien models fetch` does) and otherwise runs fp32, saying so once:
    recognition never waits ~40 s for a quantization nobody asked for."""
    weights = resolve("facenet")  # a missing weights file is its own error, not a reason to leave INT8
    chosen = network_precision(precision, "facenet") if runtime == "openvino" else "fp32"
    if chosen == "int8":
        from mien.pipeline import quantize  # NNCF's INT8 model, made once and cached

        if precision != "auto" or make_int8 or quantize.is_quantized("facenet", FACENET.sha256):
            try:
                return _facenet(weights, quantize.int8_forward, "int8")
            except INT8_FAILURES as exc:
                if precision != "auto":
                    raise
                _say_fp32(f"its INT8 model could not be made: {exc}")
        else:
            _say_fp32("its INT8 model is not made on this machine yet; `mien models fetch` makes it (~40 s, once)")
        chosen, precision = "fp32", "fp32"
    return _facenet(weights, compile_forward_for(runtime, "facenet", precision), chosen)


def _facenet(weights: Path, compile_forward, precision: str) -> Embedder:
    """FaceNet from ``weights`` on ``compile_forward`` (None: TensorFlow), tagged with the ``precision`` it runs in."""
    embedder = build_embedder("facenet", weights, weights_sha256=FACENET.sha256, compile_forward=compile_forward)
    embedder.precision = precision  # recorded with every result (Recognizer.precision, models.precision)
    return embedder


def _say_fp32(why: str) -> None:
    """The one warning of a process whose `--precision auto` runs FaceNet in fp32 instead of INT8, and why."""
    global _fp32_said
    if not _fp32_said:
        log.warning("FaceNet runs in fp32 (--precision auto takes INT8 once it is made): %s", why)
        _fp32_said = True


def load_emotion_model(path: str | os.PathLike | None = None, required: bool = False, runtime: str = "openvino",
                       views=None, precision: str = "auto", label_set: str = "fer2013", mirror: str = Options.mirror):
    """The emotion model at ``path`` (a weights file, or an ensemble's model.json; default: the shipped model of
    ``label_set``, fer2013 | ferplus; a file given is used whatever its labels) run by ``runtime`` (openvino | tensorflow) in ``precision``, or None (with one
    warning) when it is missing or incompatible; ``views`` (emotion.views.TestTimeViews) overrides model.json's
    test-time views; with ``mirror`` "unsure" a model whose views are the face and its mirror image sees the mirror
    only where its answer is unsure (emotion.views.MirrorWhenUnsure)."""
    from mien.emotion import EmotionClassifier, EmotionModelError
    from mien.emotion.ensemble import EmotionEnsemble, is_ensemble
    from mien.emotion.views import NONE, MirrorWhenUnsure

    chosen = path is None  # a shipped model by label set (else the file is whatever model it is)
    path = Path(path) if path else emotion_weights_path(label_set)
    kind = EmotionEnsemble if is_ensemble(path) else EmotionClassifier  # a model.json of members, or one network
    try:
        unsure = _single_view(path, views, mirror)
        model = kind.load(path, compile_forward=compile_forward_for(runtime, "emotion", precision),
                          views=NONE if unsure else views, views_per_call=views_per_call_for(runtime))
        model = MirrorWhenUnsure(model) if unsure else model
        if chosen and model.label_set != label_set:
            raise EmotionModelError(f"{path} is a {model.label_set} model ({len(model.labels)} emotions), not the "
                                    f"{label_set} one asked for; choose --emotion-model {model.label_set}")
        return model
    except EmotionModelError as exc:
        if required:
            raise
        log.warning("Emotion disabled: %s Identity still works; \"emotion\" will be null.", exc)
        return None


def _single_view(path: Path, views, mirror: str) -> bool:
    """Whether the model at ``path`` is loaded with one view per face and looks at the mirror itself where unsure
    (emotion.views.MirrorWhenUnsure): under ``mirror`` "unsure", when its views (every member's, as model.json
    says, unless ``views`` overrides them) are the face and its mirror image. The loader and the cache check both
    ask this, so they agree on which converted graphs recognition runs."""
    from mien.emotion.ensemble import members_of
    from mien.emotion.views import MIRROR, TestTimeViews

    if mirror != "unsure":
        return False
    if views is not None:
        return views == MIRROR
    try:
        return all(TestTimeViews.from_meta(meta.get("tta", True)) == MIRROR for _, meta in members_of(path))
    except (OSError, ValueError, KeyError, TypeError):
        return False  # the loader reports what is wrong with the files


def openvino_models_cached(emotion_views: str | None = "model", label_set: str = "fer2013",
                           mirror: str = Options.mirror) -> bool:
    """Whether FaceNet and the shipped emotion model of ``label_set`` (every member of an ensemble) with
    ``emotion_views`` ("model":
    model.json's views, a preset name of emotion.views.PRESETS, None: no emotion) are already converted: then
    recognition never imports TensorFlow. Reads only model.json files, never the weights."""
    from mien.emotion.ensemble import members_of
    from mien.emotion.views import NONE, PRESETS, TestTimeViews

    if not is_cached("facenet", FACENET.sha256):
        return False
    if emotion_views is None:
        return True
    path = emotion_weights_path(label_set)
    try:
        members = members_of(path)
    except FileNotFoundError:
        return True  # no emotion model: nothing to convert (recognition warns about it)
    except (OSError, ValueError, KeyError):
        return False  # the emotion loader reports what is wrong with it
    try:
        given = None if emotion_views == "model" else PRESETS[emotion_views]
        single = _single_view(path, given, mirror)  # as load_emotion_model runs it
        for _, meta in members:
            views = NONE if single else given or TestTimeViews.from_meta(meta.get("tta", True))
            if not is_cached(views.cache_name, meta["weights_sha256"]):
                return False
    except (ValueError, KeyError):
        return False
    return True


def prepare_openvino_models(precision: str = "auto") -> list[str]:
    """Convert (or find converted) FaceNet and the shipped emotion model now, and quantize FaceNet where
    ``precision`` runs it in INT8 (auto and int8; under auto a failure leaves fp32, with its reason), so the first
    recognition waits for none of it; returns what is ready. A missing emotion model is skipped (recognition warns
    about it)."""
    ready = [f"facenet ({build_facenet('openvino', precision, make_int8=True).precision})"]
    if load_emotion_model(runtime="openvino") is not None:
        ready.append("emotion")
    return ready
