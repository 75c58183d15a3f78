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
SAMPLE, SEED = 500, 2013


@pytest.mark.slow
def test_shipped_model_matches_its_metrics():
    if not WEIGHTS.is_file():
        pytest.skip(f"no shipped emotion model yet ({WEIGHTS} absent)")
    if not FER.is_file():
        pytest.skip(f"FER2013 not available at {FER}")
    from emotion.classifier import EmotionClassifier
    from emotion.training.data import load_npz

    clf = EmotionClassifier.load(WEIGHTS)
    metrics = json.loads((SHIPPED / "metrics.json").read_text())
    assert metrics["shipped"]["version"] == clf.version
    x, y = load_npz(FER).split("PrivateTest")
    idx = np.random.default_rng(SEED).choice(len(y), SAMPLE, replace=False)
    acc = float((clf.predict(x[idx]).argmax(axis=1) == y[idx]).mean())
    full = metrics["shipped"]["private_test"]["accuracy"]
    # 500 of 3,589 faces: binomial standard error ~0.021; allow 3 of them.
    assert abs(acc - full) < 0.065, f"500-face sample accuracy {acc:.3f} vs recorded PrivateTest {full:.3f}"
    # The floor the shipped model earns: 0.660 on this fixed sample (full PrivateTest 0.645), minus 0.02 for
    # numerical differences between CPUs; raise it with every model that ships (issue 8's bar is 0.68).
    assert acc >= 0.640, f"shipped model scores only {acc:.3f} on the PrivateTest sample (expected >= 0.640)"
