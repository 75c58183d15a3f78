"""The shipped emotion model (an ensemble, issue 27) loads and scores on FER2013 PrivateTest as its metrics.json
says, through the same loader the product uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "emotion-ensemble"
FER = REPO.parent / "shared" / "data" / "fer2013.npz"


@pytest.mark.slow
def test_shipped_model_matches_its_metrics():
    if not (SHIPPED / "model.json").is_file():
        pytest.skip(f"no shipped emotion model yet ({SHIPPED} absent)")
    if not FER.is_file():
        pytest.skip(f"FER2013 not available at {FER}")
    from mien.emotion.training.data import load_npz
    from mien.pipeline.assets import emotion_weights_path
    from mien.pipeline.models import load_emotion_model

    assert emotion_weights_path() == SHIPPED / "model.json"  # the product's default is what this test scores
    model = load_emotion_model(required=True, runtime="tensorflow")  # as recognition runs it: --mirror unsure
    metrics = json.loads((SHIPPED / "metrics.json").read_text())
    assert metrics["shipped"]["version"] == load_emotion_model(runtime="tensorflow", mirror="always").version
    x, y = load_npz(FER).split("PrivateTest")
    acc = float((model.predict(x).argmax(axis=1) == y).mean())  # all 3,589 faces: a sample of 500 strays by ~2 points
    full = metrics["shipped"]["private_test"]["accuracy"]  # measured looking at every face's mirror image
    assert abs(acc - full) < 0.003, f"PrivateTest accuracy {acc:.4f} vs {full:.4f} recorded in metrics.json"
    # The floor the shipped model earns: 0.7088 on PrivateTest (the ResNet50 0.3 + vgg48 0.7, each with its mirror
    # image), minus 0.005 for numerical differences between CPUs and runtimes; raise it with every model that ships
    # (issue 27's bar is 0.70, its goal 0.74).
    assert acc >= 0.703, f"shipped model scores only {acc:.4f} on PrivateTest (expected >= 0.703)"
