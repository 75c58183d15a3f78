"""Train the emotion model on FER2013: resumable, checkpointed every N steps and every epoch.

python -m mien.emotion.training.train --data ../shared/data/fer2013.npz --out runs/emotion [--init-from models/emotion] [--resume]

Selects on PublicTest (early stopping, best weights), reports PrivateTest only at the end. The learning rate is a
pure function of the optimizer step (= epoch x steps per epoch), so a run continued from an exported model's
train_state.json on another machine follows the same schedule (SGD momentum is rebuilt in a few steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import keras
import tensorflow as tf

from mien.emotion.errors import TrainingError
from mien.emotion.training.augment import AugmentConfig, augment_batch, mixup
from mien.emotion.training.options import AUGMENT_PRESETS, add_arguments, finish_args, trainer_options
from mien.emotion.backbone import load_vggface_weights
from mien.emotion.training.data import ferplus_labels, load_dataset, load_ferplus_votes, validation_split
from mien.emotion.training.evaluate import save_confusion_png, save_curves_png, summarize
from mien.emotion.inference import make_forward, predict_proba
from mien.emotion.views import MIRROR, NONE
from mien.emotion.labels import EMOTIONS, LABEL_SETS, NUM_CLASSES
from mien.emotion.model import ModelConfig, build_model

CKPT = "ckpt"
BEST = "best.weights.h5"


# Augmentation presets: "light" is a random 44-of-48 px crop (as a shift) + flip; "strong" the earlier default.
AUGMENTS: dict[str, AugmentConfig] = {name: AugmentConfig(**kw) for name, kw in AUGMENT_PRESETS.items()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse training options from a command line."""
    p = argparse.ArgumentParser(prog="python -m mien.emotion.training.train", description=__doc__.splitlines()[0])
    add_arguments(p)
    return finish_args(p.parse_args(argv))


# Arguments that define the model and the schedule: a continued run takes them from the state it continues.
SCHEDULE_ARGS = ("epochs", "cycle_epochs", "clipnorm", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "warmup_epochs",
                 "upscale_to", "layer_decay", "freeze_epochs",
                 "label_smoothing", "arch", "head_units", "dropout", "no_stem_pool", "seed", "precision", "augment", "random_erasing", "mixup", "ema", "no_class_weights",
                 "no_tta", "patience", "ferplus", "ferplus_weight", "teacher", "kd_weight", "temperature", "labels",
                 "ferplus_target")
TRAIN_STATE = "train_state.json"


def make_optimizer(args: argparse.Namespace, schedule, model: keras.Model | None = None,
                   steps_per_epoch: int = 0) -> keras.optimizers.Optimizer:
    """The configured optimizer, with weight decay off for BatchNorm parameters and biases (and keeping a moving
    average of the weights with --ema); a pretrained FaceNet trunk gets layer-wise rates and a head-first stage."""
    ema = {"use_ema": True, "ema_momentum": args.ema} if args.ema else {}
    common = {"learning_rate": schedule, "weight_decay": args.weight_decay, "global_clipnorm": args.clipnorm or None,
              **ema}
    sgd, adamw = keras.optimizers.SGD, keras.optimizers.AdamW
    if getattr(args, "arch", None) == "facenet" and model is not None:
        from mien.emotion.training import layer_rates
        from mien.nets.inception_resnet_v1 import TRUNK_BLOCKS, trunk_block

        scales = layer_rates.variable_scales(model, trunk_block, len(TRUNK_BLOCKS), args.layer_decay)
        freeze = int(round(args.freeze_epochs * steps_per_epoch))
        common.update(scales=scales, freeze_steps=freeze)
        sgd, adamw = layer_rates.with_layer_rates(sgd), layer_rates.with_layer_rates(adamw)
        _log(layer_rates.describe(scales, freeze))
    if args.optimizer == "sgd":
        opt = sgd(momentum=args.momentum, nesterov=True, **common)
    else:
        opt = adamw(**common)
    opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def continued_state(init_dir: Path) -> dict[str, Any] | None:
    """The training state an exported model was saved with (None if it was exported without one)."""
    path = init_dir / TRAIN_STATE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    state.update(step=0, partial={"loss": 0.0, "acc": 0.0, "n": 0, "seconds": 0.0}, status="running")
    return state


def load_init_weights(model: keras.Model, init_dir: Path) -> str:
    """Load an exported model's float16 weights (checksum-verified) into ``model``; returns its file name."""
    from mien.emotion.classifier import MODEL_JSON
    from mien.emotion.weights_io import file_sha256
    from mien.emotion.weights_io import load_weights_f16

    meta = json.loads((init_dir / MODEL_JSON).read_text())
    weights = init_dir / meta["weights_file"]
    if file_sha256(weights) != meta.get("weights_sha256"):
        raise TrainingError(f"{weights}: sha256 does not match {init_dir / MODEL_JSON}; restore it with git checkout")
    load_weights_f16(model, weights)
    return str(weights)


def transfer_weights(model: keras.Model, init_dir: Path, labels: tuple[str, ...]) -> str:
    """Start a model over another label set (FER+'s 8) from an exported one (FER2013's 7): every layer is copied
    but the classifier, whose columns of the emotions both sets share are copied too; the new ones (contempt) keep
    their fresh initialisation. Returns the weights file's name."""
    from mien.emotion.classifier import MODEL_JSON

    meta = json.loads((init_dir / MODEL_JSON).read_text())
    source = build_model(ModelConfig.from_dict(meta["config"]), policy="float32")
    weights = load_init_weights(source, init_dir)
    for layer in model.layers:
        if layer.name == "emotion_probs" or not layer.weights:
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        try:
            theirs = source.get_layer(layer.name)
        except ValueError:
            theirs = None
        if theirs is None or [tuple(w.shape) for w in theirs.weights] != shapes:
            raise TrainingError(f"{init_dir}: its layer {layer.name} differs from this run's; train with its "
                                f"architecture ({meta['config']})")
        layer.set_weights(theirs.get_weights())
    kernel, bias = model.get_layer("emotion_probs").get_weights()
    their_kernel, their_bias = source.get_layer("emotion_probs").get_weights()
    their_labels = list(meta.get("labels", EMOTIONS))
    for j, name in enumerate(labels):
        if name in their_labels:
            kernel[:, j], bias[j] = their_kernel[:, their_labels.index(name)], their_bias[their_labels.index(name)]
    model.get_layer("emotion_probs").set_weights([kernel, bias])
    shared = [n for n in labels if n in their_labels]
    _log(f"carried over {weights}: all layers, and the classifier of {len(shared)} of {len(labels)} emotions")
    return weights


@keras.saving.register_keras_serializable("mien")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` then cosine decay to ``final_fraction * peak`` at ``total_steps``.

    ``cycle``: restart every ``total_steps`` (SGDR warm restarts), so that every cycle ends at a low learning rate
    with a model worth exporting; the rate stays a pure function of the step either way.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, final_fraction: float = 0.01,
                 cycle: bool = False):
        self.peak, self.total_steps, self.warmup_steps, self.final_fraction = peak, total_steps, warmup_steps, final_fraction
        self.cycle = cycle

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.cycle:
            step = tf.math.floormod(step, float(self.total_steps))
        warm = self.peak * (step + 1.0) / float(max(self.warmup_steps, 1))
        prog = tf.clip_by_value((step - self.warmup_steps) / float(max(self.total_steps - self.warmup_steps, 1)), 0.0, 1.0)
        cos = self.final_fraction + (1 - self.final_fraction) * 0.5 * (1.0 + tf.cos(math.pi * prog))
        return tf.where(step < self.warmup_steps, warm, self.peak * cos)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "final_fraction": self.final_fraction, "cycle": self.cycle}


def recalibrate_batchnorm(model: keras.Model, images: np.ndarray, batches: int, batch_size: int = 256,
                          seed: int = 0) -> None:
    """Re-estimate every BatchNorm's moving statistics as the exact average over clean training batches, with
    dropout off ("precise BN"): the statistics inference uses then match what inference computes. Measured on a
    mid-run checkpoint: PublicTest 39.5% with the running statistics, 47.8% after this (train-mode 46.5%)."""
    if not batches:
        return
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    drops = [l for l in model.layers if isinstance(l, keras.layers.Dropout)]
    saved = [b.momentum for b in bns], [d.rate for d in drops]
    rng = np.random.default_rng(seed)
    try:
        for d in drops:
            d.rate = 0.0
        for k in range(batches):
            for b in bns:
                b.momentum = k / (k + 1)  # moving = mean of the batch statistics seen so far
            idx = np.sort(rng.choice(len(images), min(batch_size, len(images)), replace=False))
            model(tf.constant(images[idx, ..., None], tf.float32), training=True)
    finally:
        for b, m in zip(bns, saved[0]):
            b.momentum = m
        for d, r in zip(drops, saved[1]):
            d.rate = r


def class_weights(labels: np.ndarray, k: int = NUM_CLASSES) -> np.ndarray:
    """Square-root inverse-frequency class weights (disgust ~3x, happy ~0.75x), mean 1 over samples."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    w = np.sqrt(counts.sum() / (k * np.maximum(counts, 1)))
    w /= (w[labels]).mean() if len(labels) else 1.0
    return w.astype(np.float32)


def mixed_targets(labels: np.ndarray, votes: np.ndarray | None = None, weight: float = 0.0) -> np.ndarray:
    """Training targets float32 [N,7]: the one-hot FER2013 label, mixed as (1 - weight) x one-hot + weight x the
    FER+ vote shares where a face has votes (``load_ferplus_votes``: Training rows only)."""
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    if votes is None or not weight:
        return onehot
    has = votes.sum(1) > 0
    onehot[has] = (1.0 - weight) * onehot[has] + weight * votes[has]
    return onehot


def epoch_dataset(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, epoch: int, seed: int, batch_size: int,
                  start_step: int, aug: AugmentConfig, mixup_alpha: float = 0.0) -> tf.data.Dataset:
    """Deterministic per-epoch pipeline: seeded permutation, batching, in-graph augmentation (and mixup), prefetch.
    ``targets`` are [N,7] class distributions (``mixed_targets``), ``weights`` one loss weight per face."""
    perm = np.random.default_rng([seed, epoch]).permutation(len(x))
    ds = tf.data.Dataset.from_tensor_slices((x[perm], targets[perm].astype(np.float32), weights[perm]))
    ds = ds.batch(batch_size, drop_remainder=True).enumerate()
    if start_step:
        ds = ds.skip(start_step)
    epoch_seed = tf.constant(seed * 100_003 + epoch, tf.int64)

    def _aug(step, batch):
        xb, yb, wb = batch
        xb = augment_batch(tf.cast(xb, tf.float32)[..., None], tf.stack([epoch_seed, step]), aug)
        return mixup(xb, yb, wb, tf.stack([epoch_seed + 1, step]), mixup_alpha)

    return ds.map(_aug, num_parallel_calls=1).prefetch(2)


def save_optimizer(opt: keras.optimizers.Optimizer, path: Path) -> None:
    """Save every optimizer variable (step count, moments) in order, for exact resume."""
    np.savez(path, *[np.asarray(v.numpy()) for v in opt.variables])


def load_optimizer(opt: keras.optimizers.Optimizer, model: keras.Model, path: Path) -> None:
    """Restore optimizer variables saved by save_optimizer (builds the optimizer first)."""
    opt.build(model.trainable_variables)
    with np.load(path) as d:
        arrays = [d[f"arr_{i}"] for i in range(len(d.files))]
    if len(arrays) != len(opt.variables):
        raise RuntimeError(f"{path}: {len(arrays)} optimizer tensors, optimizer has {len(opt.variables)}")
    for var, arr in zip(opt.variables, arrays):
        var.assign(arr)


def write_checkpoint(out: Path, model: keras.Model, opt: keras.optimizers.Optimizer, state: dict[str, Any]) -> None:
    """Atomically replace out/ckpt with weights + optimizer + state (old one kept until the new is complete)."""
    new, cur, old = out / (CKPT + ".new"), out / CKPT, out / (CKPT + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    model.save_weights(new / "model.weights.h5")
    save_optimizer(opt, new / "optimizer.npz")
    (new / "state.json").write_text(json.dumps(state, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if cur.exists():
        cur.rename(old)
    new.rename(cur)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint directory of a run, if any."""
    for name in (CKPT, CKPT + ".old"):
        d = out / name
        if (d / "state.json").exists():
            return d
    return None


def library_versions() -> dict[str, str]:
    """Versions that determine numerical results, recorded in metrics.json."""
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "platform": platform.platform(), "cpu_count": str(os.cpu_count())}


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _subset(*arrays: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """The first ``n`` rows of each array (all of them for n=0)."""
    return tuple(a[:n] for a in arrays) if n else arrays


def eval_split(forward, x: np.ndarray, y: np.ndarray, labels: tuple[str, ...] = EMOTIONS) -> tuple[dict[str, Any], float]:
    """Summary + plain cross-entropy of the model on one split."""
    probs = predict_proba(forward, x)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)))) if len(y) else float("nan")
    return summarize(y, probs, labels), loss


def write_metrics(out: Path, state: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json and training_curves.png from the run state (called every epoch and at the end)."""
    hist = state["history"]
    metrics = {
        "model": f"emotion-{state.get('args', {}).get('arch', 'resnet50')} (GAP, Dense head)",
        "status": state.get("status", "running"),
        "epochs_completed": len(hist),
        "best_epoch": state.get("best_epoch"),
        "best_public_test_accuracy": state.get("best_val_acc"),
        "history": hist,
        "seconds_per_epoch": (float(np.mean([h["train_seconds"] for h in hist])) if hist else None),
        **extra,
    }
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    tmp.replace(out / "metrics.json")
    if hist:
        save_curves_png(hist, out / "training_curves.png")
    return metrics


def train(args: argparse.Namespace, on_epoch=None) -> dict[str, Any]:
    """Run (or resume) training as configured by ``args``; returns the metrics dict (restores the dtype policy).
    ``on_epoch(epoch, public_test_accuracy)`` is called after each epoch is checkpointed (a tuning study reports
    there, and may stop the run by raising)."""
    previous_policy = keras.mixed_precision.global_policy()
    try:
        return _train(args, on_epoch)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


@dataclasses.dataclass
class _Faces:
    """What one run trains and selects on: the Training faces with their targets and loss weights, the test splits."""

    x_tr: np.ndarray
    y_tr: np.ndarray
    t_tr: np.ndarray  # [N,7] targets: one-hot, FER+ mix, or distillation targets
    cw: np.ndarray  # loss weight per class
    x_va: np.ndarray
    y_va: np.ndarray
    x_te: np.ndarray
    y_te: np.ndarray
    record: dict[str, Any]  # what metrics.json says of the data
    labels: tuple[str, ...] = EMOTIONS  # the label set learnt (LABEL_SETS)
    teacher_version: str | None = None


def _start_state(args: argparse.Namespace, out: Path, ckpt: Path | None, init_dir: Path | None) -> dict[str, Any]:
    """The run's state: its checkpoint's, the continued export's, or a new one; the run's own schedule options
    replace the command line's (a run goes on with the model and schedule it started with)."""
    if ckpt is not None and not args.resume:
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    state: dict[str, Any] = {"epoch": 0, "step": 0, "partial": {"loss": 0.0, "acc": 0.0, "n": 0, "seconds": 0.0},
                             "best_val_acc": -1.0, "best_epoch": None, "since_best": 0, "history": [],
                             "status": "running"}
    if ckpt is not None:
        state = json.loads((ckpt / "state.json").read_text())
    elif init_dir is not None and _same_labels(init_dir, args.labels) and (continued := continued_state(init_dir)):
        state = continued
    elif args.resume:
        _log(f"--resume: no checkpoint in {out}, starting a new run")
    # A run recorded before a knob existed had that knob's default then (the ResNet50, no erasing, mixup or EMA).
    if "args" in state:
        state["args"] = {"arch": "resnet50", "random_erasing": 0.0, "mixup": 0.0, "ema": 0.0, "labels": "fer2013",
                         "ferplus_target": "majority", **state["args"]}
    for key in SCHEDULE_ARGS:
        if key == "epochs" and state.get("args", {}).get("cycle_epochs"):
            continue  # with cosine cycles the run's length does not shape the schedule: it may be extended
        if key in state.get("args", {}) and state["args"][key] != getattr(args, key):
            _log(f"continuing with the run's {key}={state['args'][key]!r} (command line: {getattr(args, key)!r})")
            setattr(args, key, state["args"][key])
    return state


def _load_faces(args: argparse.Namespace, out: Path) -> _Faces:
    """The splits, class weights and training targets (FER+ votes and a teacher's soft targets mixed in)."""
    data = validation_split(load_dataset(args.data), seed=args.seed)
    if args.labels == "ferplus":
        return _load_ferplus_faces(args, data)
    x_tr, y_tr = _subset(*data.split("Training"), n=args.limit_train)
    x_va, y_va = _subset(*data.split("PublicTest"), n=args.limit_eval)
    x_te, y_te = _subset(*data.split("PrivateTest"), n=args.limit_eval)
    _check_size(args, x_tr)
    cw = np.ones(NUM_CLASSES, np.float32) if args.no_class_weights else class_weights(y_tr)
    votes = None
    if args.ferplus:
        votes = _subset(load_ferplus_votes(args.ferplus, data)[data.usage == "Training"], n=args.limit_train)[0]
        _log(f"FER+ votes {args.ferplus}: {int((votes.sum(1) > 0).sum())} Training faces mixed "
             f"{1 - args.ferplus_weight:.2f} x label + {args.ferplus_weight:.2f} x votes")
    t_tr = mixed_targets(y_tr, votes, args.ferplus_weight)
    teacher_version = None
    if args.teacher:
        from mien.emotion.training import distill

        probs, teacher_version = distill.teacher_probabilities(out, args.teacher, x_tr, data.sha256, log=_log)
        _log(f"distilling {teacher_version} (Training accuracy {float((probs.argmax(1) == y_tr).mean()):.4f}): "
             f"loss = {1 - args.kd_weight:.2f} x CE(label) + {args.kd_weight:.2f} x T^2 x CE(teacher, T={args.temperature})")
        t_tr = distill.distillation_targets(t_tr, probs, args.temperature)
    faces = _Faces(x_tr, y_tr, t_tr, cw, x_va, y_va, x_te, y_te, _data_record(data, x_tr, x_va, x_te),
                   teacher_version=teacher_version)
    _log_faces(data, faces)
    return faces


def _load_ferplus_faces(args: argparse.Namespace, data) -> _Faces:
    """FER+'s 8 emotions: every split's faces that have a FER+ majority among them, labelled with it; the Training
    targets are that majority (one-hot) or the annotators' vote shares (--ferplus-target)."""
    if not args.ferplus:
        raise TrainingError("--labels ferplus needs the FER+ votes: --ferplus fer2013new.csv")
    if args.teacher:
        raise TrainingError("--teacher distils a 7-class model; it does not combine with --labels ferplus")
    labels = LABEL_SETS["ferplus"]
    majority, shares = ferplus_labels(args.ferplus, data, labels)

    def split(name: str, n: int) -> tuple[np.ndarray, ...]:
        rows = np.flatnonzero((data.usage == name) & (majority >= 0))
        return _subset(data.images[rows], majority[rows], shares[rows], n=n)

    x_tr, y_tr, s_tr = split("Training", args.limit_train)
    x_va, y_va, _ = split("PublicTest", args.limit_eval)
    x_te, y_te, _ = split("PrivateTest", args.limit_eval)
    _check_size(args, x_tr)
    cw = np.ones(len(labels), np.float32) if args.no_class_weights else class_weights(y_tr, len(labels))
    t_tr = np.eye(len(labels), dtype=np.float32)[y_tr] if args.ferplus_target == "majority" else s_tr
    record = {**_data_record(data, x_tr, x_va, x_te), "labels": "ferplus", "ferplus": str(args.ferplus),
              "ferplus_target": args.ferplus_target}
    faces = _Faces(x_tr, y_tr, t_tr, cw, x_va, y_va, x_te, y_te, record, labels)
    _log(f"FER+ {args.ferplus}: {len(labels)} emotions, {args.ferplus_target} targets; faces without a FER+ majority "
         f"among them left out: {int(((data.usage == 'Training') & (majority < 0)).sum())} of Training")
    _log_faces(data, faces)
    return faces


def _check_size(args: argparse.Namespace, x_tr: np.ndarray) -> None:
    if len(x_tr) < args.batch_size:
        raise TrainingError(f"only {len(x_tr)} training faces, fewer than --batch-size {args.batch_size}")


def _data_record(data, x_tr: np.ndarray, x_va: np.ndarray, x_te: np.ndarray) -> dict[str, Any]:
    """What metrics.json says of the data a run used."""
    return {"path": str(data.source), "sha256": data.sha256, "counts": data.counts(), "train_used": len(x_tr),
            "eval_used": [len(x_va), len(x_te)]}


def _log_faces(data, faces: _Faces) -> None:
    _log(f"data {data.source} sha256={data.sha256[:12]} train={len(faces.x_tr)} public={len(faces.x_va)} "
         f"private={len(faces.x_te)} class weights={np.round(faces.cw, 2).tolist()}")


def _same_labels(init_dir: Path, labels: str) -> bool:
    """Whether the exported model in ``init_dir`` has the label set ``labels`` (else a run starts from its trunk)."""
    from mien.emotion.classifier import MODEL_JSON

    meta = json.loads((init_dir / MODEL_JSON).read_text())
    return tuple(meta.get("labels", EMOTIONS)) == LABEL_SETS[labels]


def _compiled_model(args: argparse.Namespace, steps_per_epoch: int):
    """The network, its learning-rate schedule and optimizer, compiled with the run's loss."""
    head = tuple(int(u) for u in args.head_units.split(","))
    cfg = ModelConfig(arch=args.arch, head_units=head, head_dropout=args.dropout, stem_pool=not args.no_stem_pool,
                      preprocess="vggface" if args.backbone_weights and args.arch == "resnet50" else "standardize",
                      num_classes=len(LABEL_SETS[args.labels]), upscale_to=args.upscale_to)
    model = build_model(cfg)
    cycle_epochs = args.cycle_epochs or args.epochs
    schedule = WarmupCosine(args.lr, cycle_epochs * steps_per_epoch, int(args.warmup_epochs * steps_per_epoch),
                            cycle=bool(args.cycle_epochs))
    opt = make_optimizer(args, schedule, model, steps_per_epoch)
    if args.teacher:
        from mien.emotion.training import distill

        loss = distill.make_loss(args.kd_weight, args.temperature, args.label_smoothing)
        metric = distill.label_accuracy
        metric.__name__ = "acc"
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing)
        metric = keras.metrics.CategoricalAccuracy(name="acc")
    model.compile(optimizer=opt, loss=loss, metrics=[metric], weighted_metrics=[],
                  run_eagerly=args.run_eagerly, jit_compile=args.jit_compile)
    opt.build(model.trainable_variables)  # eagerly: ~5x cheaper than building inside the traced train step
    return cfg, model, schedule, opt


def _restore(args, out: Path, state: dict[str, Any], ckpt: Path | None, init_dir: Path | None, model: keras.Model,
             opt: keras.optimizers.Optimizer, schedule, steps_per_epoch: int) -> None:
    """Weights and optimizer from the checkpoint, or an exported model's weights at its continued step, or the
    VGGFace backbone for a new run."""
    if ckpt is not None:
        model.load_weights(ckpt / "model.weights.h5")
        if (ckpt / "optimizer.npz").is_file():
            load_optimizer(opt, model, ckpt / "optimizer.npz")
        else:  # a campaign seeded from git (emotion.training.campaign): the moments are rebuilt, the schedule kept
            opt.iterations.assign(state["epoch"] * steps_per_epoch + state["step"])
            _log(f"{ckpt} has no optimizer moments (a committed campaign): rebuilding them from step "
                 f"{int(opt.iterations.numpy())}")
        _log(f"resumed from {ckpt}: epoch {state['epoch'] + 1} step {state['step']} "
             f"(optimizer step {int(opt.iterations.numpy())}), best PublicTest {state['best_val_acc']:.4f}")
    elif init_dir is not None:
        if _same_labels(init_dir, args.labels):
            state["init_from"] = load_init_weights(model, init_dir)
        else:
            state["init_from"] = transfer_weights(model, init_dir, LABEL_SETS[args.labels])
        # The schedule is a function of the step: put the fresh optimizer where the continued epoch counter is.
        opt.iterations.assign(state["epoch"] * steps_per_epoch)
        if state["best_epoch"] is not None:  # the exported weights are the continued run's best so far
            model.save_weights(out / BEST)
        _log(f"initialised from {state['init_from']}: epoch {state['epoch'] + 1} of {args.epochs}, "
             f"lr {float(schedule(opt.iterations)):.2e}, best PublicTest so far {state['best_val_acc']:.4f}")
    elif args.backbone_weights and args.arch == "facenet":
        from mien.nets import inception_resnet_v1 as irv1

        n = irv1.load_taniai_weights(model, args.backbone_weights, expected=irv1.TRUNK_TENSORS,
                                     skip=lambda name: irv1.trunk_block(name) is None)
        _log(f"loaded FaceNet's {n} trunk tensors from {args.backbone_weights}")
    elif args.backbone_weights:
        n = load_vggface_weights(model, args.backbone_weights)
        _log(f"loaded VGGFace weights for {n} layers from {args.backbone_weights}")
    elif args.arch == "facenet":
        raise TrainingError("--arch facenet starts from FaceNet's weights: pass --backbone-weights facenet_keras.h5 "
                            "(`mien models fetch` downloads it)")


class _AveragedWeights:
    """With --ema, evaluate and save the optimizer's moving average of the weights instead of the raw ones; the raw
    weights are put back for training afterwards. Without it, a no-op."""

    def __init__(self, model: keras.Model, opt: keras.optimizers.Optimizer):
        self.model, self.opt, self.raw = model, opt, None

    def __enter__(self):
        if self.opt.use_ema:
            self.raw = [v.numpy() for v in self.model.trainable_variables]
            self.opt.finalize_variable_values(self.model.trainable_variables)  # assigns the averages
        return self

    def __exit__(self, *exc):
        if self.raw is not None:
            for var, value in zip(self.model.trainable_variables, self.raw):
                var.assign(value)
            self.raw = None


def _train_steps(args, out: Path, state: dict[str, Any], faces: _Faces, model: keras.Model, opt, schedule,
                 steps_per_epoch: int, aug: AugmentConfig, steps_run: int) -> tuple[int, bool]:
    """The rest of the current epoch's steps, checkpointed every --ckpt-every; returns (steps run in this
    invocation, whether --stop-after-steps stopped it mid-epoch)."""
    epoch, start, part = state["epoch"], state["step"], state["partial"]
    t_last = time.time()
    for step, (xb, yb, wb) in enumerate(epoch_dataset(faces.x_tr, faces.t_tr, faces.cw[faces.y_tr], epoch, args.seed,
                                                      args.batch_size, start, aug, args.mixup), start=start):
        r = model.train_on_batch(xb, yb, sample_weight=wb, return_dict=True)
        now = time.time()
        part["seconds"] += now - t_last
        t_last = now
        part["loss"] += float(r["loss"]) * len(yb)
        part["acc"] += float(r["acc"]) * len(yb)
        part["n"] += int(len(yb))
        done = step + 1
        if done % args.log_every == 0 or done == steps_per_epoch:
            rate = part["seconds"] / max(done, 1)
            _log(f"  epoch {epoch + 1} step {done}/{steps_per_epoch} loss {part['loss'] / part['n']:.4f} "
                 f"acc {part['acc'] / part['n']:.4f} lr {float(schedule(opt.iterations - 1)):.2e} "
                 f"{rate:.2f} s/step, epoch ETA {(steps_per_epoch - done) * rate / 60:.1f} min")
        steps_run += 1
        stop = bool(args.stop_after_steps) and steps_run >= args.stop_after_steps and done < steps_per_epoch
        if (done % args.ckpt_every == 0 or stop) and done < steps_per_epoch:
            state["step"] = done
            write_checkpoint(out, model, opt, state)
            t_last = time.time()
        if stop:
            return steps_run, True
    return steps_run, False


def _end_epoch(args, out: Path, state: dict[str, Any], faces: _Faces, model: keras.Model, opt, schedule,
               forward) -> float:
    """Evaluate the epoch's weights (averaged with --ema) on PublicTest, keep the best, checkpoint; returns the
    PublicTest accuracy."""
    epoch, part = state["epoch"], state["partial"]
    t_eval = time.time()
    with _AveragedWeights(model, opt):
        recalibrate_batchnorm(model, faces.x_tr, args.bn_recalibration_batches, seed=args.seed + epoch)
        val, val_loss = eval_split(forward, faces.x_va, faces.y_va, faces.labels)
        improved = val["accuracy"] > state["best_val_acc"]
        if improved:
            model.save_weights(out / (BEST + ".tmp.weights.h5"))
            os.replace(out / (BEST + ".tmp.weights.h5"), out / BEST)
    entry = {"epoch": epoch + 1, "train_loss": part["loss"] / max(part["n"], 1),
             "train_acc": part["acc"] / max(part["n"], 1), "val_loss": val_loss, "val_acc": val["accuracy"],
             "lr_end": float(schedule(opt.iterations - 1)), "train_seconds": part["seconds"],
             "eval_seconds": time.time() - t_eval}
    state["history"].append(entry)
    if improved:
        state.update(best_val_acc=val["accuracy"], best_epoch=epoch + 1, since_best=0)
    else:
        state["since_best"] += 1
    _log(f"epoch {epoch + 1} done in {part['seconds'] / 60:.1f} min: train loss {entry['train_loss']:.4f} "
         f"acc {entry['train_acc']:.4f} | PublicTest loss {val_loss:.4f} acc {val['accuracy']:.4f}"
         f"{' (best)' if improved else ''} [eval {entry['eval_seconds']:.0f}s]")
    state.update(epoch=epoch + 1, step=0, partial={"loss": 0.0, "acc": 0.0, "n": 0, "seconds": 0.0})
    if state["since_best"] >= args.patience:
        state["status"] = "early_stopped"
        _log(f"early stopping: no PublicTest gain for {args.patience} epochs")
    write_checkpoint(out, model, opt, state)
    return val["accuracy"]


def _final_report(out: Path, state: dict[str, Any], faces: _Faces, model: keras.Model, forward,
                  extra: dict[str, Any]) -> dict[str, Any]:
    """Metrics of the best-by-PublicTest weights; PrivateTest is looked at only here."""
    model.load_weights(out / BEST)
    if state["status"] == "running":
        state["status"] = "finished"
    pub, _ = eval_split(forward, faces.x_va, faces.y_va, faces.labels)
    priv, _ = eval_split(forward, faces.x_te, faces.y_te, faces.labels)
    extra.update(public_test=pub, private_test=priv, evaluated_on=f"best epoch {state['best_epoch']} weights")
    metrics = write_metrics(out, state, extra)
    save_confusion_png(priv["confusion_matrix"], out / "confusion_matrix.png", faces.labels,
                       title=f"PrivateTest, acc {priv['accuracy']:.3f} (best epoch {state['best_epoch']})")
    (find_checkpoint(out) / "state.json").write_text(json.dumps(state, indent=1))
    _log(f"final (best epoch {state['best_epoch']}): PublicTest {pub['accuracy']:.4f} PrivateTest {priv['accuracy']:.4f}")
    return metrics


def _train(args: argparse.Namespace, on_epoch=None) -> dict[str, Any]:
    """Body of train(): state, data, model, then epochs until the schedule ends (or early stopping)."""
    out = Path(args.out)
    ckpt = find_checkpoint(out)
    init_dir = Path(args.init_from) if args.init_from else None
    state = _start_state(args, out, ckpt, init_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(args.seed)

    faces = _load_faces(args, out)
    steps_per_epoch = len(faces.x_tr) // args.batch_size
    cfg, model, schedule, opt = _compiled_model(args, steps_per_epoch)
    forward = make_forward(model, NONE if args.no_tta else MIRROR)  # selection: the mirror alone (2 passes)
    _restore(args, out, state, ckpt, init_dir, model, opt, schedule, steps_per_epoch)
    state["args"] = {k: v for k, v in trainer_options(args).items() if k != "resume"}
    (out / "model.json").write_text(json.dumps({"config": cfg.to_dict(), "tta": not args.no_tta,
                                                "labels": list(faces.labels)}, indent=1))
    extra = {"config": cfg.to_dict(), "train_args": state["args"], "tta": not args.no_tta,
             "precision": args.precision, "class_weights": dict(zip(faces.labels, map(float, faces.cw))),
             "data": faces.record, "teacher": faces.teacher_version, "versions": library_versions()}
    aug = dataclasses.replace(AUGMENTS[args.augment], erase_prob=args.random_erasing)
    steps_run = 0
    while state["status"] == "running" and state["epoch"] < args.epochs:
        _log(f"epoch {state['epoch'] + 1}/{args.epochs} from step {state['step']}/{steps_per_epoch}")
        steps_run, stopped = _train_steps(args, out, state, faces, model, opt, schedule, steps_per_epoch, aug,
                                          steps_run)
        if not stopped:
            accuracy = _end_epoch(args, out, state, faces, model, opt, schedule, forward)
            if on_epoch is not None:
                on_epoch(state["epoch"], accuracy)
            write_metrics(out, state, extra)
        if stopped or (args.stop_after_steps and steps_run >= args.stop_after_steps and state["epoch"] < args.epochs
                       and state["status"] == "running"):
            _log(f"stopping after {steps_run} steps (--stop-after-steps); resume with --resume")
            return write_metrics(out, state, extra)
    return _final_report(out, state, faces, model, forward, extra)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
