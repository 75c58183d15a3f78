"""Export a training run's best weights as the shipped float16 model, only if it beats the shipped one.

python -m mien.emotion.training.export models/emotion/checkpoints/run1 [--dest models/emotion] [--data fer2013.npz] [--force]

The exported file is re-evaluated in float32 inference with the test-time views it ships with (the product's
path) on PublicTest and PrivateTest, and those numbers go into the shipped metrics.json; selection compares
PublicTest only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from mien.emotion.classifier import MODEL_JSON, EmotionClassifier
from mien.emotion.errors import TrainingError
from mien.emotion.training.options import add_export_arguments
from mien.emotion.training.data import load_dataset, validation_split
from mien.emotion.weights_io import file_sha256
from mien.emotion.training.evaluate import evaluate, save_confusion_png
from mien.emotion.labels import EMOTIONS
from mien.emotion.model import ModelConfig, build_model
from mien.emotion.weights_io import save_weights_f16
from mien.emotion.training.train import TRAIN_STATE
from mien.emotion.views import DEFAULT_PRESET, PRESETS

MAX_BYTES = 60 * 1024 * 1024


def weights_file_name(arch: str) -> str:
    """The shipped weights file of an architecture: emotion_resnet50.weights.h5, emotion_vgg48.weights.h5."""
    return f"emotion_{arch}.weights.h5"


def shipped_public_accuracy(dest: Path) -> float | None:
    """PublicTest accuracy recorded for the model currently shipped in ``dest`` (None if none)."""
    try:
        m = json.loads((dest / "metrics.json").read_text())
        return float(m["shipped"]["public_test"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def state_at_best_epoch(run: Path) -> dict[str, Any]:
    """The run's training state as of its best epoch (the exported weights), for `train --init-from` to go on."""
    from mien.emotion.training.train import find_checkpoint

    ckpt = find_checkpoint(run)
    if ckpt is None:
        raise TrainingError(f"{run}: no checkpoint with the run's state; is it a training run directory?")
    state = json.loads((ckpt / "state.json").read_text())
    best = state["best_epoch"]
    return {**state, "epoch": best, "step": 0, "since_best": 0, "status": "running",
            "partial": {"loss": 0.0, "acc": 0.0, "n": 0, "seconds": 0.0},
            "history": [h for h in state["history"] if h["epoch"] <= best]}


def _split_faces(ds, split: str, labels: tuple[str, ...], train_args: dict[str, Any]):
    """The faces and labels of ``split`` a model of ``labels`` is scored on: FER2013's, or for FER+'s 8 emotions
    the FER+ majority labels of the run's vote file (faces without one among the 8 left out)."""
    x, y = ds.split(split)
    if tuple(labels) == EMOTIONS:
        return x, y
    from mien.emotion.training.data import ferplus_majority

    rows, y = ferplus_majority(train_args["ferplus"], ds, split, tuple(labels))
    return x[rows], y


def export_run(run_dir: str | os.PathLike, dest: str | os.PathLike = "models/emotion", data: str | None = None,
               force: bool = False, limit_eval: int = 0, views: str = DEFAULT_PRESET) -> dict[str, Any]:
    """Write float16 weights + model.json + metrics.json (+ PNGs) from ``run_dir`` into ``dest`` if better;
    ``views`` names the test-time views (emotion.views.PRESETS) the product averages."""
    if views not in PRESETS:
        raise TrainingError(f"unknown test-time views {views!r}; choose one of {sorted(PRESETS)}")
    run, dest = Path(run_dir), Path(dest)
    run_meta = json.loads((run / "model.json").read_text())
    run_metrics = json.loads((run / "metrics.json").read_text())
    config = ModelConfig.from_dict(run_meta["config"])
    model = build_model(config, policy="float32")
    model.load_weights(run / "best.weights.h5")
    weights_name = weights_file_name(config.arch)

    data_path = data or run_metrics["data"]["path"]
    ds = validation_split(load_dataset(data_path), seed=run_metrics["train_args"]["seed"])
    if ds.sha256 != run_metrics["data"]["sha256"]:
        raise TrainingError(f"{data_path}: sha256 differs from the data the run was trained on")

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".export-") as tmp:
        tmp = Path(tmp)
        save_weights_f16(model, tmp / weights_name)
        size = (tmp / weights_name).stat().st_size
        if size > MAX_BYTES:
            raise TrainingError(f"exported weights are {size / 2**20:.1f} MB, over the {MAX_BYTES / 2**20:.0f} MB limit")
        meta = {"config": config.to_dict(), "tta": PRESETS[views].to_meta(), "labels": run_meta.get("labels", list(EMOTIONS)),
                "weights_file": weights_name, "weights_sha256": file_sha256(tmp / weights_name),
                "weights_dtype": "float16", "input": "grayscale face, 48x48, uint8 0..255 (FER2013 framing)",
                "source_run": str(run), "best_epoch": run_metrics.get("best_epoch")}
        (tmp / MODEL_JSON).write_text(json.dumps(meta, indent=1))
        clf = EmotionClassifier.load(tmp / weights_name)
        results = {}
        for split in ("PublicTest", "PrivateTest"):
            x, y = _split_faces(ds, split, clf.labels, run_metrics["train_args"])
            if limit_eval:
                x, y = x[:limit_eval], y[:limit_eval]
            results[split] = evaluate(clf, x, y)
        pub = results["PublicTest"]["accuracy"]
        current = shipped_public_accuracy(dest)
        summary = {"public_test": pub, "private_test": results["PrivateTest"]["accuracy"],
                   "previous_public_test": current, "run_best_public_test": run_metrics.get("best_public_test_accuracy"),
                   "weights_mb": size / 2**20, "exported": False}
        if current is not None and pub <= current and not force:
            print(f"not exported: PublicTest {pub:.4f} does not beat the shipped {current:.4f}", flush=True)
            return summary
        metrics = dict(run_metrics)
        metrics["shipped"] = {"weights_file": weights_name, "weights_sha256": meta["weights_sha256"],
                              "weights_dtype": "float16", "inference_precision": "float32",
                              "tta": meta["tta"], "views": views, "passes_per_face": clf.views.passes,
                              "version": clf.version,
                              "public_test": results["PublicTest"], "private_test": results["PrivateTest"]}
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
        save_confusion_png(results["PrivateTest"]["confusion_matrix"], tmp / "confusion_matrix.png", clf.labels,
                           title=f"PrivateTest (shipped {clf.version}), acc {results['PrivateTest']['accuracy']:.3f}")
        (tmp / TRAIN_STATE).write_text(json.dumps(state_at_best_epoch(run), indent=1))
        if (run / "training_curves.png").exists():
            shutil.copy(run / "training_curves.png", tmp / "training_curves.png")
        for f in tmp.iterdir():
            os.replace(f, dest / f.name)
    summary["exported"] = True
    print(f"exported {clf.version} to {dest}: PublicTest {pub:.4f}, PrivateTest {summary['private_test']:.4f}, "
          f"{size / 2**20:.1f} MB", flush=True)
    return summary


def run(args: argparse.Namespace) -> int:
    """Export the run if it beats the shipped model on PublicTest."""
    export_run(args.run_dir, args.dest, args.data, args.force, args.limit_eval, args.views)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m mien.emotion.training.export", description=__doc__.splitlines()[0])
    add_export_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
