"""Training on a tiny slice writes every artefact and resumes mid-epoch; export + EmotionClassifier contract."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mien.emotion.errors import TrainingError
from mien.emotion.labels import EMOTIONS


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    rng = np.random.default_rng(0)
    usage = np.array(["Training"] * 32 + ["PublicTest"] * 16 + ["PrivateTest"] * 16)
    labels = np.arange(64) % 7
    images = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=images, labels=labels.astype(np.int8), usage=usage)
    return path


@pytest.fixture(scope="module")
def trained_run(tiny_npz, tmp_path_factory):
    """Run 1 step, stop (simulated interruption), then --resume to finish the 2-step epoch."""
    from mien.emotion.training.train import parse_args, train

    out = tmp_path_factory.mktemp("run") / "run"
    common = ["--data", str(tiny_npz), "--out", str(out), "--epochs", "1", "--batch-size", "16", "--log-every", "1",
              "--run-eagerly", "--bn-recalibration-batches", "2"]  # eager: tracing ResNet50's train step costs 1-2 min
    train(parse_args(common + ["--stop-after-steps", "1"]))
    state = json.loads((out / "ckpt" / "state.json").read_text())
    assert (state["epoch"], state["step"], state["partial"]["n"]) == (0, 1, 16)
    assert not (out / "best.weights.h5").exists()
    with pytest.raises(TrainingError, match="--resume"):
        train(parse_args(common))
    train(parse_args(common + ["--resume"]))
    return out


@pytest.mark.slow
def test_training_writes_artefacts_and_resumes(trained_run):
    out = trained_run
    for name in ("metrics.json", "training_curves.png", "confusion_matrix.png", "best.weights.h5", "model.json",
                 "ckpt/model.weights.h5", "ckpt/optimizer.npz", "ckpt/state.json"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "finished" and m["epochs_completed"] == 1 and m["best_epoch"] == 1
    h = m["history"][0]
    assert set(h) >= {"train_loss", "train_acc", "val_loss", "val_acc", "train_seconds", "lr_end"}
    for split in ("public_test", "private_test"):
        assert m[split]["n"] == 16
        assert np.asarray(m[split]["confusion_matrix"]).shape == (7, 7)
        assert set(m[split]["per_class_accuracy"]) == set(EMOTIONS)
    assert len(m["data"]["sha256"]) == 64 and m["versions"]["tensorflow"]
    with np.load(out / "ckpt" / "optimizer.npz") as d:
        iterations = [int(d[k]) for k in d.files if d[k].ndim == 0 and d[k].dtype.kind in "iu"]
    assert iterations == [2]  # one step before the interruption + one after resuming


@pytest.mark.slow
def test_export_and_classifier_contract(trained_run, tiny_npz, tmp_path):
    from mien.emotion.classifier import EmotionClassifier, EmotionModelError
    from mien.emotion.training.export import export_run, weights_file_name

    WEIGHTS_NAME = weights_file_name("resnet50")

    dest = tmp_path / "ship"
    summary = export_run(trained_run, dest)
    assert summary["exported"] and summary["weights_mb"] < 60
    meta = json.loads((dest / "model.json").read_text())
    assert meta["weights_dtype"] == "float16" and len(meta["weights_sha256"]) == 64
    shipped = json.loads((dest / "metrics.json").read_text())["shipped"]
    assert shipped["public_test"]["n"] == 16 and "ms_per_face_batched" in shipped["private_test"]
    assert not export_run(trained_run, dest)["exported"]  # not better than itself

    clf = EmotionClassifier.load(dest / WEIGHTS_NAME)
    # the product averages 3-px shifts four ways, each mirrored, unless the export says otherwise
    assert clf.labels == EMOTIONS and clf.views.passes == 10 and clf.version == shipped["version"]
    assert clf.version == "emotion-resnet50-" + meta["weights_sha256"][:12] + "-mirror+shift3"
    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    p = clf.predict(faces)
    assert p.shape == (3, 7) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(clf.predict(faces[..., None].astype(np.float64)), p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clf.predict(faces / 255.0), p, rtol=1e-4, atol=1e-5)  # floats in 0..1 accepted
    assert clf.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    with pytest.raises(ValueError, match=r"\[N,48,48\]"):
        clf.predict(np.zeros((2, 64, 64), np.uint8))

    from mien.emotion.training.evaluate import evaluate_dataset, format_report

    res = evaluate_dataset(clf, tiny_npz, "PrivateTest", tmp_path / "e.json", tmp_path / "e.png")
    assert res["n"] == 16 and (tmp_path / "e.png").is_file()
    assert json.loads((tmp_path / "e.json").read_text())["accuracy"] == res["accuracy"]
    assert "PrivateTest: accuracy" in format_report(res)

    bad = tmp_path / "bad"
    shutil.copytree(dest, bad)
    w = bad / WEIGHTS_NAME
    w.write_bytes(w.read_bytes()[: 1 << 20])  # truncated download
    with pytest.raises(EmotionModelError, match="sha256"):
        EmotionClassifier.load(w)
    meta["weights_sha256"] = __import__("mien.emotion.weights_io", fromlist=["x"]).file_sha256(w)
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(EmotionModelError, match="corrupt"):
        EmotionClassifier.load(w)
    with pytest.raises(EmotionModelError, match="not found"):
        EmotionClassifier.load(tmp_path / "nowhere" / WEIGHTS_NAME)
    (bad / "model.json").unlink()
    with pytest.raises(EmotionModelError, match="model.json is missing"):
        EmotionClassifier.load(w)


@pytest.mark.slow
def test_an_exported_model_continues_its_schedule_on_a_fresh_machine(tiny_npz, tmp_path):
    """export writes train_state.json at the best epoch; --init-from continues its epoch counter, arguments and
    learning-rate schedule in a new run directory (what a fresh machine does with the committed model)."""
    from mien.emotion.training.export import export_run
    from mien.emotion.training.train import parse_args, train

    common = ["--data", str(tiny_npz), "--batch-size", "16", "--log-every", "1", "--run-eagerly",
              "--bn-recalibration-batches", "2"]
    first = tmp_path / "session1"
    train(parse_args(common + ["--out", str(first), "--epochs", "1", "--cycle-epochs", "1", "--lr", "0.002"]))
    dest = tmp_path / "ship"
    export_run(first, dest)
    state = json.loads((dest / "train_state.json").read_text())
    assert state["epoch"] == state["best_epoch"] == 1 and len(state["history"]) == 1

    from mien.pipeline.app.cli import main

    out = tmp_path / "session2_on_a_fresh_machine"  # through the product's command line this time
    assert main(["train", "emotion", *common, "--out", str(out), "--init-from", str(dest), "--resume",
                 "--epochs", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["train_args"]["lr"] == 0.002 and metrics["train_args"]["cycle_epochs"] == 1  # the run's own
    with np.load(out / "ckpt" / "optimizer.npz") as d:
        iterations = [int(d[k]) for k in d.files if d[k].ndim == 0 and d[k].dtype.kind in "iu"]
    assert iterations == [4]  # the optimizer step was put at epoch 1 x 2 steps, then 2 more


def test_cyclic_schedule_restarts_as_a_function_of_the_step():
    from mien.emotion.training.train import WarmupCosine

    cyc = WarmupCosine(0.01, total_steps=100, warmup_steps=10, cycle=True)
    lr = {s: float(cyc(s)) for s in (0, 9, 10, 99, 100, 110, 199, 250)}
    assert lr[10] == pytest.approx(0.01) and lr[110] == pytest.approx(0.01)  # peak after each warm-up
    assert lr[99] < 2e-4 and lr[199] == pytest.approx(lr[99])  # every cycle ends low
    assert lr[100] == pytest.approx(lr[0]) and lr[250] == pytest.approx(float(cyc(50)))
    one = WarmupCosine(0.01, total_steps=100, warmup_steps=10)
    assert float(one(250)) == pytest.approx(1e-4)  # without cycles the rate stays at its floor


def test_batchnorm_recalibration_averages_clean_batch_statistics():
    """Stale moving statistics are replaced by the data's, computed with dropout off; settings are restored."""
    import keras
    import tensorflow as tf

    from mien.emotion.training.train import recalibrate_batchnorm

    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dropout(0.5, name="drop")(x)  # dropout before BN: the variance shift precise BN undoes
    out = keras.layers.BatchNormalization(name="bn", momentum=0.99)(x)
    model = keras.Model(inputs, out)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(tf.fill(bn.moving_mean.shape, 50.0))  # stale
    bn.moving_variance.assign(tf.fill(bn.moving_variance.shape, 1e-3))
    images = np.random.default_rng(0).normal(3.0, 2.0, (4096, 4, 4)).astype(np.float32)
    recalibrate_batchnorm(model, images, batches=8, batch_size=512)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 3.0, atol=0.15)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 4.0, rtol=0.15)  # with dropout on: ~17
    assert bn.momentum == 0.99 and model.get_layer("drop").rate == 0.5


def test_mixed_targets_blend_votes_only_where_a_face_has_them():
    from mien.emotion.training.train import mixed_targets

    labels = np.array([0, 3])
    votes = np.array([[0, 0, 0, 0.5, 0, 0, 0.5], [0] * 7], np.float32)  # the second face has no votes
    np.testing.assert_array_equal(mixed_targets(labels), np.eye(7, dtype=np.float32)[labels])
    t = mixed_targets(labels, votes, 0.3)
    np.testing.assert_allclose(t[0], [0.7, 0, 0, 0.15, 0, 0, 0.15])
    np.testing.assert_array_equal(t[1], np.eye(7)[3])
    np.testing.assert_allclose(t.sum(1), 1.0)


@pytest.mark.slow
def test_training_with_ferplus_votes_records_them(tiny_npz, tmp_path):
    """--ferplus reads the vote file against the dataset's rows and the run keeps it in its arguments."""
    from mien.emotion.training.train import parse_args, train

    usage = np.load(tiny_npz)["usage"]
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    (tmp_path / "new.csv").write_text("\n".join([header] + [f"{u},x.png,5,5,0,0,0,0,0,0,0,0" for u in usage]) + "\n")
    out = tmp_path / "run"
    train(parse_args(["--data", str(tiny_npz), "--out", str(out), "--epochs", "1", "--batch-size", "16",
                      "--run-eagerly", "--bn-recalibration-batches", "1", "--stop-after-steps", "1",
                      "--ferplus", str(tmp_path / "new.csv"), "--ferplus-weight", "0.4"]))
    args = json.loads((out / "metrics.json").read_text())["train_args"]
    assert args["ferplus"] == str(tmp_path / "new.csv") and args["ferplus_weight"] == 0.4


@pytest.mark.slow
def test_a_vgg48_run_with_erasing_and_mixup_resumes_and_exports_under_its_own_name(tiny_npz, tmp_path):
    """--arch vgg48 (issue 27): the run keeps its architecture and recipe when resumed with a bare command line,
    and exports emotion_vgg48.weights.h5 whose version names the architecture."""
    from mien.emotion.classifier import EmotionClassifier
    from mien.emotion.training.export import export_run
    from mien.emotion.training.train import parse_args, train

    out = tmp_path / "run"
    base = ["--data", str(tiny_npz), "--out", str(out), "--epochs", "1", "--batch-size", "16", "--run-eagerly",
            "--bn-recalibration-batches", "1"]
    train(parse_args(base + ["--arch", "vgg48", "--head-units", "64", "--random-erasing", "0.5", "--mixup", "0.4",
                             "--stop-after-steps", "1"]))
    train(parse_args(base + ["--resume"]))  # no --arch: the run's own settings go on
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "finished" and m["config"]["arch"] == "vgg48" and m["model"].startswith("emotion-vgg48")
    assert (m["train_args"]["random_erasing"], m["train_args"]["mixup"]) == (0.5, 0.4)
    dest = tmp_path / "ship"
    assert export_run(out, dest, views="mirror")["exported"]
    clf = EmotionClassifier.load(dest / "emotion_vgg48.weights.h5")
    assert clf.config.arch == "vgg48" and clf.version.startswith("emotion-vgg48-")
    assert clf.predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)


@pytest.mark.slow
def test_an_ema_run_selects_the_averaged_weights_and_keeps_the_average_across_a_resume(tiny_npz, tmp_path):
    """--ema (issue 27 step 3): the moving average lives in the optimizer's saved state, so a resumed run goes on
    averaging; the best weights written are the average, and training continues from the raw weights."""
    from mien.emotion.config import ModelConfig
    from mien.emotion.model import build_model
    from mien.emotion.training.train import parse_args, train

    out = tmp_path / "run"
    base = ["--data", str(tiny_npz), "--out", str(out), "--epochs", "1", "--batch-size", "16", "--run-eagerly",
            "--bn-recalibration-batches", "0", "--arch", "vgg48", "--head-units", "16"]
    train(parse_args(base + ["--ema", "0.5", "--stop-after-steps", "1"]))
    train(parse_args(base + ["--resume"]))  # no --ema on the command line: the run's own recipe goes on
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "finished" and m["train_args"]["ema"] == 0.5 and m["best_epoch"] == 1

    def weights(path):
        model = build_model(ModelConfig.from_dict(m["config"]))
        model.load_weights(path)
        return [v.numpy() for v in model.trainable_variables]

    raw, best = weights(out / "ckpt" / "model.weights.h5"), weights(out / "best.weights.h5")
    with np.load(out / "ckpt" / "optimizer.npz") as d:
        saved = [d[f"arr_{i}"] for i in range(len(d.files))]
    # after 2 steps the average (0.5 x step 1 + 0.5 x step 2) differs from the raw weights of step 2
    assert not all(np.allclose(r, b) for r, b in zip(raw, best))
    # and it is what the optimizer saved beside its momenta
    assert all(any(a.shape == b.shape and np.array_equal(a, b) for a in saved) for b in best)


def test_soften_and_the_distillation_loss_follow_hinton():
    """At T=1 the teacher's distribution is kept; a higher T flattens it; the loss at weight 0 is the label's
    cross-entropy alone and grows where the student disagrees with the teacher."""
    import keras

    from mien.emotion.training.distill import distillation_targets, make_loss, soften

    p = np.array([[0.7, 0.2, 0.1, 0, 0, 0, 0]], np.float32)
    assert np.allclose(soften(p, 1.0), p, atol=1e-6)
    hot = soften(p, 4.0)
    assert hot[0, 0] < 0.7 and hot[0, 1] > 0.2 and abs(hot.sum() - 1) < 1e-6
    targets = distillation_targets(np.eye(7, dtype=np.float32)[[0]], p, 2.0)
    assert targets.shape == (1, 14)
    agree = np.array([[0.69, 0.2, 0.1, 0.0025, 0.0025, 0.0025, 0.0025]], np.float32)
    disagree = np.array([[0.69, 0.0025, 0.0025, 0.2, 0.1, 0.0025, 0.0025]], np.float32)
    plain = keras.losses.categorical_crossentropy(targets[:, :7], agree)
    assert np.allclose(make_loss(0.0, 2.0, 0.0)(targets, agree), plain, atol=1e-5)
    kd = make_loss(0.5, 2.0, 0.0)
    assert float(kd(targets, disagree)[0]) > float(kd(targets, agree)[0])


@pytest.mark.slow
def test_a_distilled_run_caches_its_teachers_targets_and_keeps_its_teacher(tiny_npz, tmp_path):
    """--teacher (issue 27 step 2): the teacher's probabilities of the Training faces are computed once and cached
    with its version; a resumed run keeps its teacher and reuses them."""
    from mien.emotion.training.distill import TEACHER_CACHE
    from mien.emotion.training.export import export_run
    from mien.emotion.training.train import parse_args, train

    teacher_run, student = tmp_path / "teacher", tmp_path / "student"
    base = ["--data", str(tiny_npz), "--epochs", "1", "--batch-size", "16", "--run-eagerly",
            "--bn-recalibration-batches", "1", "--arch", "vgg48", "--head-units", "32"]
    train(parse_args(base + ["--out", str(teacher_run)]))
    assert export_run(teacher_run, tmp_path / "teacher_model", views="mirror")["exported"]
    teacher = str(tmp_path / "teacher_model" / "emotion_vgg48.weights.h5")
    train(parse_args(base + ["--out", str(student), "--teacher", teacher, "--kd-weight", "0.7",
                             "--stop-after-steps", "1"]))
    with np.load(student / TEACHER_CACHE) as d:
        probs, meta = d["probs"], json.loads(str(d["meta"]))
    assert probs.shape == (32, 7) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert meta["teacher_version"].startswith("emotion-vgg48-")
    stamp = (student / TEACHER_CACHE).stat().st_mtime_ns
    train(parse_args(base + ["--out", str(student), "--resume"]))  # the run's own teacher goes on
    assert (student / TEACHER_CACHE).stat().st_mtime_ns == stamp
    m = json.loads((student / "metrics.json").read_text())
    assert m["status"] == "finished" and m["teacher"] == meta["teacher_version"]
    assert m["train_args"]["teacher"] == teacher and m["train_args"]["kd_weight"] == 0.7


def test_an_optuna_study_tunes_the_recipe_resumes_and_records_pruned_trials(tiny_npz, tmp_path, monkeypatch):
    """--tune (issue 24): a 2-trial study stored in SQLite under the run that optuna opens, the best parameters with
    the command of a full run, its plots; the same command adds trials (none repeated); a pruned trial is recorded."""
    optuna = pytest.importorskip("optuna")
    from mien.emotion.training import tune
    from mien.emotion.training.train import parse_args

    out = tmp_path / "study"
    argv = ["--data", str(tiny_npz), "--out", str(out), "--epochs", "1", "--batch-size", "16", "--run-eagerly",
            "--bn-recalibration-batches", "1", "--arch", "vgg48", "--head-units", "32", "--tune", "2"]
    result = tune.tune(parse_args(argv))
    study = optuna.load_study(study_name=tune.STUDY_NAME, storage=f"sqlite:///{out / 'study.sqlite3'}")
    assert len(study.trials) == 2 and result["complete"] == 2
    best = json.loads((out / "best_params.json").read_text())
    assert set(best["params"]) == set(tune.TUNED) and best["command"].startswith("mien train emotion --data ")
    assert f"--lr {best['params']['lr']}" in best["command"]
    assert (out / "optimization_history.png").stat().st_size > 1000 and (out / "param_importances.png").is_file()
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["000", "001"]

    monkeypatch.setattr(tune, "make_pruner", lambda: optuna.pruners.ThresholdPruner(lower=2.0))  # prunes any trial
    tune.tune(parse_args(argv[:-1] + ["1"]))  # the same command, one more trial
    study = optuna.load_study(study_name=tune.STUDY_NAME, storage=f"sqlite:///{out / 'study.sqlite3'}")
    states = [t.state for t in study.trials]
    assert len(states) == 3 and states[2] == optuna.trial.TrialState.PRUNED
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 3  # none repeated
    assert json.loads((out / "best_params.json").read_text())["pruned"] == 1


def _ferplus_csv(path, usage, n_labels: int = 8):
    """A FER+ vote file whose row i votes for FER+'s emotion i % 8 (every 9th row not a face)."""
    from mien.emotion.labels import FERPLUS_EMOTIONS
    from mien.emotion.training.data import FERPLUS_ALL, FERPLUS_NAMES

    header = "Usage,Image name," + ",".join(FERPLUS_ALL)
    lines = [header]
    for i, u in enumerate(usage):
        votes = [0] * len(FERPLUS_ALL)
        if i % 9 == 8:
            votes[FERPLUS_ALL.index("NF")] = 10
        else:
            column = next(c for c in FERPLUS_ALL if FERPLUS_NAMES.get(c) == FERPLUS_EMOTIONS[i % n_labels])
            votes[FERPLUS_ALL.index(column)], votes[FERPLUS_ALL.index("neutral")] = 7, 3 if i % n_labels != 6 else 10
        lines.append(f"{u},fer{i:07d}.png," + ",".join(map(str, votes)))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_a_ferplus_run_learns_8_emotions_from_a_7_emotion_export(tiny_npz, tmp_path):
    """--labels ferplus (issue 24 item 2): started from a 7-emotion export, the run carries over every layer and the
    classifier's 7 shared columns, learns FER+'s 8 on the faces with a FER+ majority, and exports a model whose
    labels say so; an ensemble refuses members of two label sets."""
    from mien.emotion.classifier import EmotionClassifier, EmotionModelError
    from mien.emotion.ensemble import EmotionEnsemble
    from mien.emotion.labels import FERPLUS_EMOTIONS
    from mien.emotion.model import ModelConfig, build_model
    from mien.emotion.training.export import export_run
    from mien.emotion.training.train import parse_args, train, transfer_weights

    base = ["--data", str(tiny_npz), "--epochs", "1", "--batch-size", "16", "--run-eagerly",
            "--bn-recalibration-batches", "1", "--arch", "vgg48", "--head-units", "64"]
    train(parse_args(base + ["--out", str(tmp_path / "run7")]))
    export_run(tmp_path / "run7", tmp_path / "ship7", views="mirror")
    seven = EmotionClassifier.load(tmp_path / "ship7" / "emotion_vgg48.weights.h5")

    model = build_model(ModelConfig(arch="vgg48", head_units=(64,), num_classes=8), policy="float32")
    transfer_weights(model, tmp_path / "ship7", FERPLUS_EMOTIONS)
    source = seven.keras_model()
    for layer in ("vgg48_s1c1", "vgg48_s4c2_bn", "head_dense1"):
        for mine, theirs in zip(model.get_layer(layer).get_weights(), source.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    kernel, their_kernel = model.get_layer("emotion_probs").get_weights()[0], source.get_layer("emotion_probs").get_weights()[0]
    np.testing.assert_array_equal(kernel[:, :7], their_kernel)  # the 7 shared emotions keep their classifier

    _ferplus_csv(tmp_path / "new.csv", np.load(tiny_npz)["usage"])
    out = tmp_path / "run8"
    with pytest.raises(TrainingError, match="--ferplus fer2013new.csv"):
        train(parse_args(base + ["--out", str(out), "--labels", "ferplus"]))
    train(parse_args(base + ["--out", str(out), "--labels", "ferplus", "--ferplus", str(tmp_path / "new.csv"),
                             "--ferplus-target", "probability", "--init-from", str(tmp_path / "ship7")]))
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["num_classes"] == 8 and m["data"]["labels"] == "ferplus"
    assert m["data"]["train_used"] == 32 - 3  # rows 8, 17 and 26 are not faces: left out
    assert list(m["public_test"]["per_class_accuracy"]) == list(FERPLUS_EMOTIONS)
    assert json.loads((out / "ckpt" / "state.json").read_text())["init_from"].endswith("emotion_vgg48.weights.h5")
    assert export_run(out, tmp_path / "ship8", views="mirror")["exported"]
    eight = EmotionClassifier.load(tmp_path / "ship8" / "emotion_vgg48.weights.h5")
    assert eight.labels == FERPLUS_EMOTIONS and eight.label_set == "ferplus" and seven.label_set == "fer2013"
    assert eight.predict(np.zeros((2, 48, 48), np.uint8)).shape == (2, 8)
    shipped = json.loads((tmp_path / "ship8" / "metrics.json").read_text())["shipped"]
    assert shipped["private_test"]["labels"] == list(FERPLUS_EMOTIONS)

    spec = {"ensemble": [{"weights": "../ship7/emotion_vgg48.weights.h5"}, {"weights": "../ship8/emotion_vgg48.weights.h5"}]}
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "model.json").write_text(json.dumps(spec))
    with pytest.raises(EmotionModelError, match="different labels"):
        EmotionEnsemble.load(tmp_path / "mixed" / "model.json")
