"""The emotion network on FaceNet's trunk (issue 37): layer-wise rates, a head-first stage, FaceNet's weights, and a
campaign that a fresh machine continues from what git carries."""
from __future__ import annotations

import json

import h5py
import keras
import numpy as np
import pytest

from mien.emotion.errors import TrainingError


def _two_layer_model() -> keras.Model:
    inputs = keras.Input((3,))
    x = keras.layers.Dense(3, name="trunk_a")(inputs)
    x = keras.layers.Dense(3, name="trunk_b")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def _one_step_deltas(model: keras.Model, optimizer) -> dict[str, np.ndarray]:
    before = {l.name: l.get_weights()[0].copy() for l in model.layers[1:]}
    model.compile(optimizer=optimizer, loss="mse")
    model.train_on_batch(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32))
    return {name: model.get_layer(name).get_weights()[0] - w for name, w in before.items()}


def test_layer_rates_hold_the_trunk_then_scale_each_block_by_its_depth():
    from mien.emotion.training import layer_rates

    block_of = {"trunk_a": 0, "trunk_b": 1}.get
    keras.utils.set_random_seed(0)
    plain = _two_layer_model()
    keras.utils.set_random_seed(0)
    scaled = _two_layer_model()
    scales = layer_rates.variable_scales(scaled, block_of, n_blocks=2, decay=0.5)
    assert sorted(scales.values()) == [0.25, 0.25, 0.5, 0.5]  # kernel + bias of a (2 below the head) and b
    sgd = layer_rates.with_layer_rates(keras.optimizers.SGD)
    want = _one_step_deltas(plain, keras.optimizers.SGD(0.1))
    got = _one_step_deltas(scaled, sgd(0.1, scales=scales, freeze_steps=0))
    np.testing.assert_allclose(got["head"], want["head"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["trunk_b"], 0.5 * want["trunk_b"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["trunk_a"], 0.25 * want["trunk_a"], rtol=1e-4, atol=1e-7)

    frozen = _two_layer_model()
    opt = sgd(0.1, scales=layer_rates.variable_scales(frozen, block_of, 2, 0.5), freeze_steps=1, weight_decay=0.1)
    first = _one_step_deltas(frozen, opt)
    assert not first["trunk_a"].any() and not first["trunk_b"].any() and first["head"].any()  # no decay either
    second = _one_step_deltas(frozen, opt)
    assert second["trunk_a"].any() and second["trunk_b"].any()


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    usage = np.array(["Training"] * 32 + ["PublicTest"] * 16 + ["PrivateTest"] * 16)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=rng.integers(0, 256, (64, 48, 48), dtype=np.uint8), labels=(np.arange(64) % 7).astype(np.int8),
             usage=usage)
    return path


@pytest.mark.slow
def test_a_facenet_run_starts_from_facenets_weights_and_a_fresh_machine_continues_its_campaign(tiny_npz, tmp_path,
                                                                                              facenet_weights):
    from mien.emotion.classifier import EmotionClassifier
    from mien.emotion.training import campaign
    from mien.emotion.training.export import export_run
    from mien.emotion.training.train import parse_args, train

    # 80 px: the smallest round size whose last Block8 maps are still 1x1 (the product trains at 112)
    common = ["--data", str(tiny_npz), "--arch", "facenet", "--upscale-to", "80", "--head-units", "16",
              "--batch-size", "16", "--log-every", "1", "--run-eagerly", "--bn-recalibration-batches", "1",
              "--layer-decay", "0.8", "--freeze-epochs", "1", "--epochs", "2", "--cycle-epochs", "0"]
    run = tmp_path / "session1"
    with pytest.raises(TrainingError, match="--backbone-weights"):
        train(parse_args(common + ["--out", str(tmp_path / "no-weights")]))
    train(parse_args(common + ["--out", str(run), "--backbone-weights", str(facenet_weights),
                               "--stop-after-steps", "3"]))  # epoch 1 (head only) and a step of epoch 2
    model = campaign._model_of(run)
    model.load_weights(run / "ckpt" / "model.weights.h5")
    with h5py.File(facenet_weights) as f:  # the trunk is FaceNet's, untouched while the head learnt alone
        kernel = np.asarray(f["model_weights"]["Block8_6_Conv2d_1x1"]["Block8_6_Conv2d_1x1"]["kernel:0"])
    # one step of the second epoch moved the trunk a little (the head's rate x 0.8 at most), not far
    assert 0 < np.abs(model.get_layer("Block8_6_Conv2d_1x1").get_weights()[0] - kernel).max() < 0.05

    dest = tmp_path / "campaign"
    campaign.save(run, dest)
    assert {p.name for p in dest.iterdir()} >= {campaign.LATEST, campaign.BEST_F16, campaign.STATE, "model.json"}
    state = json.loads((dest / campaign.STATE).read_text())
    assert (state["epoch"], state["step"]) == (1, 1) and state["args"]["arch"] == "facenet"

    fresh = tmp_path / "session2_on_a_fresh_machine"
    assert campaign.seed(dest, fresh) and not campaign.seed(dest, fresh)  # seeds once, then the run is its own
    train(parse_args(common + ["--out", str(fresh), "--resume"]))
    metrics = json.loads((fresh / "metrics.json").read_text())
    assert metrics["status"] == "finished" and [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["config"]["arch"] == "facenet" and metrics["config"]["upscale_to"] == 80

    ship = tmp_path / "ship"
    assert export_run(fresh, ship, force=True)["exported"]
    clf = EmotionClassifier.load(next(ship.glob("*.weights.h5")))
    assert clf.version.startswith("emotion-facenet-")
    p = clf.predict(np.random.default_rng(2).integers(0, 256, (2, 48, 48), dtype=np.uint8))
    assert p.shape == (2, 7) and np.allclose(p.sum(1), 1.0, atol=1e-4)
