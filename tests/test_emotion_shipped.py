"""The shipped emotion model loads and scores on a fixed PrivateTest sample as its metrics.json says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "emotion"
WEIGHTS = SHIPPED / "emotion_resnet50.weights.h5"
FER = REPO.parent / "shared" / "data" / "fer2013.npz"


@pytest.mark.slow
def test_shipped_model_matches_its_metrics():
    if not WEIGHTS.is_file():
        pytest.skip(f"no shipped emotion model yet ({WEIGHTS} absent)")
    if not FER.is_file():
        pytest.skip(f"FER2013 not available at {FER}")
    from mien.emotion.classifier import EmotionClassifier
    from mien.emotion.training.data import load_npz

    clf = EmotionClassifier.load(WEIGHTS)
    metrics = json.loads((SHIPPED / "metrics.json").read_text())
    assert metrics["shipped"]["version"] == clf.version
    x, y = load_npz(FER).split("PrivateTest")
    acc = float((clf.predict(x).argmax(axis=1) == y).mean())  # all 3,589 faces: a sample of 500 strays by ~2 points
    full = metrics["shipped"]["private_test"]["accuracy"]
    assert abs(acc - full) < 0.003, f"PrivateTest accuracy {acc:.4f} vs {full:.4f} recorded in metrics.json"
    # The floor the shipped model earns: 0.6804 on PrivateTest (run4 epoch 48 averaged over 3-px shifts four
    # ways, each mirrored), minus 0.005 for numerical differences between CPUs; raise it with every model that
    # ships (issue 8's bar is 0.68, the next stop 0.70).
    assert acc >= 0.675, f"shipped model scores only {acc:.4f} on PrivateTest (expected >= 0.675)"
