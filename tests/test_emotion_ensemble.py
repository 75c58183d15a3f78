"""Emotion ensembles (issue 27): the weighted average of exported networks, each with its own test-time views,
loaded from a model.json of its own through the same loader as one network."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two tiny exported vgg48 networks trained from different seeds (different mistakes, as in the real thing)."""
    from mien.emotion.training.export import export_run
    from mien.emotion.training.train import parse_args, train

    root = tmp_path_factory.mktemp("ensemble")
    rng = np.random.default_rng(0)
    usage = np.array(["Training"] * 32 + ["PublicTest"] * 16 + ["PrivateTest"] * 16)
    np.savez(root / "tiny.npz", images=rng.integers(0, 256, (64, 48, 48), dtype=np.uint8),
             labels=(np.arange(64) % 7).astype(np.int8), usage=usage)
    paths = []
    for seed in (1, 2):
        run = root / f"run{seed}"
        train(parse_args(["--data", str(root / "tiny.npz"), "--out", str(run), "--epochs", "1", "--batch-size", "16",
                          "--run-eagerly", "--bn-recalibration-batches", "1", "--arch", "vgg48", "--head-units", "32",
                          "--seed", str(seed)]))
        assert export_run(run, root / f"model{seed}", views="mirror")["exported"]
        paths.append(root / f"model{seed}" / "emotion_vgg48.weights.h5")
    return root, paths


def write_ensemble(folder, paths, weights, tta=None):
    folder.mkdir(parents=True, exist_ok=True)
    members = [{"weights": str(p), "weight": w, **({"tta": tta} if tta is not None else {})}
               for p, w in zip(paths, weights)]
    (folder / "model.json").write_text(json.dumps({"ensemble": members}))
    return folder / "model.json"


def test_the_ensemble_is_the_weighted_average_of_its_members(two_models, tmp_path):
    from mien.emotion.classifier import EmotionClassifier
    from mien.emotion.ensemble import EmotionEnsemble, is_ensemble, members_of
    from mien.pipeline.models import load_emotion_model

    _, paths = two_models
    spec = write_ensemble(tmp_path / "ens", paths, [3, 1])
    assert is_ensemble(spec) and is_ensemble(spec.parent) and not is_ensemble(paths[0])
    faces = np.random.default_rng(5).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    a, b = (EmotionClassifier.load(p).predict(faces) for p in paths)
    ens = load_emotion_model(spec, required=True, runtime="tensorflow", mirror="always")  # every face, both views
    assert isinstance(ens, EmotionEnsemble) and ens.weights == [0.75, 0.25] and ens.passes == 4
    assert np.allclose(ens.predict(faces), 0.75 * a + 0.25 * b, atol=1e-5)
    other = EmotionEnsemble.load(write_ensemble(tmp_path / "other", paths, [1, 1]))
    assert other.version != ens.version and other.version.startswith("emotion-ensemble2-")
    assert [m["weights_sha256"] for _, m in members_of(spec)] == [
        json.loads((p.parent / "model.json").read_text())["weights_sha256"] for p in paths]
    unmirrored = EmotionEnsemble.load(write_ensemble(tmp_path / "plain", paths, [1, 1], tta=False))
    assert unmirrored.passes == 2 and unmirrored.version != other.version


def test_a_broken_ensemble_names_its_file_and_the_fix(two_models, tmp_path):
    from mien.emotion.classifier import EmotionModelError
    from mien.emotion.ensemble import EmotionEnsemble

    _, paths = two_models
    missing = write_ensemble(tmp_path / "missing", [paths[0], tmp_path / "nope.weights.h5"], [1, 1])
    with pytest.raises(EmotionModelError, match="nope.weights.h5"):
        EmotionEnsemble.load(missing)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text(json.dumps({"ensemble": [{"weight": 1}]}))
    with pytest.raises(EmotionModelError, match=r"bad/model.json: not a usable emotion ensemble"):
        EmotionEnsemble.load(tmp_path / "bad" / "model.json")
    negative = write_ensemble(tmp_path / "neg", paths, [1, -1])
    with pytest.raises(EmotionModelError, match="non-negative weights"):
        EmotionEnsemble.load(negative)
