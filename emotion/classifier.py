"""Inference API used by the pipeline: load the shipped emotion model once, predict batches of faces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mien.emotion.errors import EmotionError
from mien.emotion.labels import EMOTIONS, label_set_name
from mien.emotion.views import MIRROR, TestTimeViews

MODEL_JSON = "model.json"
HOW_TO_GET = ("restore the shipped files with `git checkout -- models/emotion`, or train and export a model: "
              "`mien train emotion --data fer2013.npz --out RUN` then `mien export emotion RUN`")


class EmotionModelError(EmotionError):
    """The emotion weights (or their model.json) are missing, corrupt or incompatible."""


def _sha256(path: Path) -> str:
    from mien.emotion.weights_io import file_sha256

    return file_sha256(path)


def _keras_model(path: Path, config):
    """The Keras network with the checked float16 weights of ``path`` (no test-time augmentation)."""
    from mien.emotion.model import build_model
    from mien.emotion.weights_io import load_weights_f16

    model = build_model(config, policy="float32")
    try:
        load_weights_f16(model, path)
    except (OSError, ValueError, KeyError) as exc:
        raise EmotionModelError(f"{path}: corrupt or incompatible emotion weights ({exc}); {HOW_TO_GET}") from exc
    return model


class EmotionClassifier:
    """Emotion classifier over 48x48 grayscale faces (a VGGFace-layout ResNet50 or the vgg48 CNN), over FER2013's 7
    emotions or FER+'s 8 (``labels``, as its model.json says)."""

    def __init__(self, forward, version: str, config, views: TestTimeViews, weights_path: Path,
                 views_per_call: int | None = None, labels: tuple[str, ...] = EMOTIONS):
        from mien.emotion.inference import VIEWS_PER_CALL

        self.labels = labels
        self.label_set = label_set_name(labels)  # fer2013 | ferplus (emotion.labels.LABEL_SETS)
        self._forward = forward
        self.version = version
        self.config = config
        self.views = views
        self.views_per_call = views_per_call or VIEWS_PER_CALL
        self.weights_path = weights_path
        self.input_size = config.input_size

    @classmethod
    def load(cls, weights_path: str | os.PathLike, compile_forward=None, views: TestTimeViews | None = None,
             views_per_call: int | None = None) -> "EmotionClassifier":
        """Load weights + sibling model.json; raise EmotionModelError for missing/corrupt/incompatible files.

        ``compile_forward(name, weights_sha256, tf_function_factory)`` runs the network on another inference
        runtime (the pipeline passes OpenVINO); the Keras model is then built only if that runtime asks.
        ``views`` overrides model.json's test-time views (benchmarks compare their cost); ``views_per_call``
        bounds the face views one network call runs (the rest of a batch goes in further calls)."""
        path = Path(weights_path)
        meta_path = path.parent / MODEL_JSON
        if not path.is_file():
            raise EmotionModelError(f"emotion weights not found: {path}; {HOW_TO_GET}")
        if not meta_path.is_file():
            raise EmotionModelError(f"{meta_path} is missing (it describes {path.name}); {HOW_TO_GET}")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise EmotionModelError(f"{meta_path}: unreadable model description ({exc}); {HOW_TO_GET}") from exc
        want = meta.get("weights_sha256")
        if not want:
            raise EmotionModelError(f"{meta_path}: no weights_sha256 (not an exported model); {HOW_TO_GET}")
        have = _sha256(path)
        if want != have:
            raise EmotionModelError(f"{path}: sha256 {have[:12]}... does not match {meta_path.name} "
                                    f"({want[:12]}...): the file is corrupt or from another model; {HOW_TO_GET}")
        from mien.emotion.config import ModelConfig

        labels = tuple(meta.get("labels", EMOTIONS))
        try:
            label_set_name(labels)
            config = ModelConfig.from_dict(meta["config"])
            if config.num_classes != len(labels):
                raise ValueError(f"{config.num_classes} classes for {len(labels)} labels")
        except (KeyError, TypeError, ValueError) as exc:
            raise EmotionModelError(f"{meta_path}: incompatible model config ({exc}); {HOW_TO_GET}") from exc
        if views is None:
            try:
                views = TestTimeViews.from_meta(meta.get("tta", True))
            except ValueError as exc:
                raise EmotionModelError(f"{meta_path}: {exc}; {HOW_TO_GET}") from exc

        from mien.emotion.inference import make_forward, make_tf_forward

        if compile_forward is None:
            forward = make_forward(_keras_model(path, config), views)
        else:
            forward = compile_forward(views.cache_name, have,
                                      lambda: make_tf_forward(_keras_model(path, config), views))
        # Other views give other probabilities: the version says which, so results made with others read as stale.
        version = f"emotion-{config.arch}-" + have[:12] + ("" if views == MIRROR else "-" + views.tag)
        return cls(forward, version, config, views, path, views_per_call, labels)

    def keras_model(self):
        """The network itself as a Keras model (no test-time augmentation), e.g. to try other augmentations."""
        return _keras_model(self.weights_path, self.config)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities float32 [N,len(labels)] for uint8/float grayscale faces [N,48,48] (or [N,48,48,1]), one batched call."""
        from mien.emotion.inference import chunk_for, predict_proba

        return predict_proba(self._forward, faces, self.input_size, chunk=chunk_for(self.views, self.views_per_call),
                             classes=len(self.labels))

    def __repr__(self) -> str:
        return f"EmotionClassifier(version={self.version!r}, views={self.views.to_meta()!r})"
