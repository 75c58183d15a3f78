"""The emotion model's architecture settings, as stored in model.json (no TensorFlow needed to read them)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mien.emotion.labels import NUM_CLASSES

PREPROCESS_MODES = ("standardize", "vggface")
# The trunks an emotion model can be built on (emotion.model.TRUNKS builds them): the design's VGGFace-layout
# ResNet50, vgg48, a compact CNN that keeps 48 px through its first stage (the diverse second network), and facenet,
# FaceNet's InceptionResNetV1 trunk fine-tuned from its face-recognition weights (a network that learned faces first).
ARCHITECTURES = ("resnet50", "vgg48", "facenet")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters needed to rebuild the architecture (stored in model.json)."""

    input_size: int = 48
    head_units: tuple[int, ...] = (512, 256, 128)
    head_dropout: float = 0.3
    head_batchnorm: bool = True
    preprocess: str = "standardize"
    num_classes: int = NUM_CLASSES
    # False: no 3x3/2 max-pool after the 7x7/2 stem, so the stages see ~2x larger feature maps (at 48 px: 24x24
    # instead of 11x11 into stage 2, 3x3 instead of 2x2 out of stage 5) for ~3.5x the compute; same weights.
    stem_pool: bool = True
    # which trunk (ARCHITECTURES); a model.json written before there was a choice names none: resnet50
    arch: str = "resnet50"
    # > 0: the face is resized in the graph to this many pixels before the trunk (a pretrained trunk sees faces at
    # the scale it learned them: FaceNet's 160 px); 0: the trunk sees input_size
    upscale_to: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the config."""
        d = dataclasses.asdict(self)
        d["head_units"] = list(self.head_units)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Rebuild a config from its dict, rejecting unknown keys so stale files fail clearly."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        d = dict(d)
        if "head_units" in d:
            d["head_units"] = tuple(int(u) for u in d["head_units"])
        cfg = cls(**d)
        if cfg.preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {cfg.preprocess!r}")
        if cfg.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {cfg.arch!r}")
        return cfg
