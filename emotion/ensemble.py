"""An ensemble of emotion networks: the weighted average of their probabilities, each with its own test-time views.

Networks of different architectures make different mistakes: averaging the shipped ResNet50 with a network that
keeps 48 px through its first stage gains points that more epochs of one network no longer do (issue 27;
``benchmarks/emotion_ensemble.py`` measures it). An ensemble is described by a model.json of its own::

    {"ensemble": [{"weights": "../emotion/emotion_resnet50.weights.h5", "weight": 0.5, "tta": true},
                  {"weights": "../emotion-vgg48/emotion_vgg48.weights.h5", "weight": 0.5, "tta": true}],
     "labels": [...7 FER2013 emotions, or FER+'s 8...]}

Each member is an exported model (its weights beside its own model.json, checksum checked on load); ``tta``
overrides the member's own test-time views (the cost per face is the sum of the members' passes).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mien.emotion.classifier import HOW_TO_GET, EmotionClassifier, EmotionModelError
from mien.emotion.labels import EMOTIONS, label_set_name
from mien.emotion.views import TestTimeViews


def is_ensemble(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ensemble's model.json (or a folder holding one)."""
    meta = _meta_path(Path(path))
    if meta is None:
        return False
    try:
        return "ensemble" in json.loads(meta.read_text())
    except (OSError, ValueError):
        return False


def _meta_path(path: Path) -> Path | None:
    if path.is_dir():
        path = path / "model.json"
    return path if path.name.endswith(".json") and path.is_file() else None


def members_of(path: str | os.PathLike) -> list[tuple[Path, dict]]:
    """(member weights file, its model.json) per member of an ensemble, or of one network: read from JSON only
    (no TensorFlow, no weights), for checks such as whether every member's conversion is cached."""
    path = Path(path)
    meta_path = _meta_path(path)
    if meta_path is not None and is_ensemble(meta_path):
        spec = json.loads(meta_path.read_text())["ensemble"]
        found = []
        for m in spec:
            weights = meta_path.parent / m["weights"]
            meta = json.loads((weights.parent / "model.json").read_text())
            if "tta" in m:
                meta = {**meta, "tta": m["tta"]}
            found.append((weights, meta))
        return found
    return [(path, json.loads((path.parent / "model.json").read_text()))]


class EmotionEnsemble:
    """The weighted average of member EmotionClassifiers' probabilities (the same interface as one classifier)."""

    def __init__(self, members: list[EmotionClassifier], weights: list[float]):
        if not members or len(members) != len(weights) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("an ensemble needs members and as many non-negative weights, not all zero")
        if len({m.labels for m in members}) != 1:
            raise ValueError(f"its members have different labels: {sorted({m.label_set for m in members})}")
        self.labels, self.label_set = members[0].labels, members[0].label_set
        self.members = members
        self.weights = [w / sum(weights) for w in weights]
        digest = hashlib.sha256(json.dumps([[m.version, round(w, 4)] for m, w in zip(members, self.weights)])
                                .encode()).hexdigest()[:12]
        self.version = f"emotion-ensemble{len(members)}-{digest}"
        self.views = members[0].views  # the first member's views (benchmarks and tests compare views per member)
        self.config = members[0].config

    @property
    def passes(self) -> int:
        """Network passes per face over all members (the cost multiplier of emotion inference)."""
        return sum(m.views.passes for m in self.members)

    @classmethod
    def load(cls, path: str | os.PathLike, compile_forward=None, views: TestTimeViews | None = None,
             views_per_call: int | None = None) -> "EmotionEnsemble":
        """Load the ensemble described by ``path`` (its model.json or its folder); ``views`` overrides every member's
        test-time views. EmotionModelError names the file and the fix for anything missing or wrong."""
        meta_path = _meta_path(Path(path))
        if meta_path is None:
            raise EmotionModelError(f"{path}: no ensemble model.json there; {HOW_TO_GET}")
        try:
            meta = json.loads(meta_path.read_text())
            spec = meta["ensemble"]
            labels = tuple(meta.get("labels", EMOTIONS))
            label_set_name(labels)
            members, weights = [], []
            for m in spec:
                member_views = views or (TestTimeViews.from_meta(m["tta"]) if "tta" in m else None)
                members.append(EmotionClassifier.load(meta_path.parent / m["weights"], compile_forward,
                                                      views=member_views, views_per_call=views_per_call))
                weights.append(float(m.get("weight", 1.0)))
            ensemble = cls(members, weights)
            if ensemble.labels != labels:
                raise ValueError(f"its members' labels {list(ensemble.labels)} differ from its own {list(labels)}")
            return ensemble
        except EmotionModelError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmotionModelError(f"{meta_path}: not a usable emotion ensemble ({exc}); {HOW_TO_GET}") from exc

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities float32 [N,len(labels)] for grayscale 48x48 faces: the members' weighted average."""
        out = None
        for member, w in zip(self.members, self.weights):
            p = member.predict(faces) * np.float32(w)
            out = p if out is None else out + p
        return out.astype(np.float32)

    def __repr__(self) -> str:
        return f"EmotionEnsemble(version={self.version!r}, members={[m.version for m in self.members]})"
