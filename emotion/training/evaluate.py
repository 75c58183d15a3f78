"""Accuracy, per-class accuracy, confusion matrix and timing for an emotion model; PNG plots of them."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from mien.emotion.labels import EMOTIONS


class _Predictor(Protocol):
    def predict(self, faces: np.ndarray) -> np.ndarray: ...


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int = len(EMOTIONS)) -> np.ndarray:
    """k x k counts, rows = true label, columns = predicted label."""
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def summarize(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str] = EMOTIONS) -> dict[str, Any]:
    """Accuracy, per-class accuracy (recall) and confusion matrix of predicted probabilities."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.argmax(probs, axis=1) if len(probs) else np.zeros(0, np.int64)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    support = cm.sum(axis=1)
    per_class = {lab: (float(cm[i, i] / support[i]) if support[i] else None) for i, lab in enumerate(labels)}
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else None,
        "per_class_accuracy": per_class,
        "support": {lab: int(s) for lab, s in zip(labels, support)},
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }


def evaluate(classifier: _Predictor, images: np.ndarray, labels: np.ndarray, batch_size: int = 512,
             progress: Callable[[Iterable[int]], Iterable[int]] = iter) -> dict[str, Any]:
    """Evaluate an EmotionClassifier-like object on faces; adds batched ms/face to the summary.

    ``progress`` wraps the batch offsets (e.g. a progress bar over the batches)."""
    images = np.asarray(images)
    probs, elapsed = [], 0.0
    classifier.predict(images[:2])  # warm-up: first call traces the graph
    for i in progress(range(0, len(images), batch_size)):
        t = time.perf_counter()
        probs.append(classifier.predict(images[i:i + batch_size]))
        elapsed += time.perf_counter() - t
    names = tuple(getattr(classifier, "labels", EMOTIONS))
    p = np.concatenate(probs) if probs else np.zeros((0, len(names)), np.float32)
    out = summarize(labels, p, names)
    out["ms_per_face_batched"] = 1000.0 * elapsed / max(len(images), 1)
    out["batch_size"] = batch_size
    return out


def evaluate_dataset(classifier: _Predictor, data_path: str | os.PathLike, split: str = "PrivateTest",
                     json_path: str | os.PathLike | None = None, png_path: str | os.PathLike | None = None,
                     limit: int = 0, progress: Callable[[Iterable[int]], Iterable[int]] = iter,
                     ferplus: str | os.PathLike | None = None, about: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate one split of a FER2013-style dataset (``limit``: a fixed random sample, seed 0); write JSON/PNG.
    With ``ferplus`` (fer2013new.csv) the labels are the FER+ annotators' majority, on the faces that have one
    among the classifier's emotions (``data.ferplus_majority``: FER2013's 7, or FER+'s 8). ``about``: what the caller adds to the record (how the model
    ran)."""
    import json

    from mien.emotion.training.data import SPLITS, DataFormatError, load_dataset

    if split not in SPLITS:
        raise DataFormatError(f"split must be one of {SPLITS}, got {split!r}")
    ds = load_dataset(data_path)
    x, y = ds.split(split)
    if len(y) == 0:
        raise DataFormatError(f"{data_path}: no {split} rows")
    labels = "fer2013"
    if ferplus:
        from mien.emotion.training.data import ferplus_majority

        names = tuple(getattr(classifier, "labels", EMOTIONS))
        rows, y = ferplus_majority(ferplus, ds, split, names)
        x, labels = x[rows], f"ferplus-majority-{len(names)}"
    if limit:
        keep = np.sort(np.random.default_rng(0).choice(len(y), size=min(limit, len(y)), replace=False))
        x, y = x[keep], y[keep]
    out = evaluate(classifier, x, y, progress=progress)
    out.update(split=split, data=str(data_path), data_sha256=ds.sha256, model=getattr(classifier, "version", None),
               label_set=labels, **(about or {}))
    if json_path:
        tmp = f"{json_path}.tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, json_path)
    if png_path:
        save_confusion_png(out["confusion_matrix"], png_path, out["labels"],
                           title=f"{split}: accuracy {out['accuracy']:.3f} ({out['model']})")
    return out


def format_report(result: dict[str, Any]) -> str:
    """Human-readable accuracy, per-class accuracy, confusion matrix and timing."""
    labels = result["labels"]
    against = " (FER+ majority labels)" if result.get("label_set", "fer2013") != "fer2013" else ""
    lines = [f"{result.get('split', 'eval')}{against}: accuracy {result['accuracy']:.4f} on {result['n']} faces, "
             f"{result.get('ms_per_face_batched', float('nan')):.2f} ms/face batched",
             "per-class accuracy: " + ", ".join(
                 f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in result["per_class_accuracy"].items()),
             "confusion (rows true, cols predicted): " + " ".join(f"{l[:4]:>5}" for l in labels)]
    for lab, row in zip(labels, result["confusion_matrix"]):
        lines.append(f"  {lab:>9} " + " ".join(f"{v:5d}" for v in row))
    return "\n".join(lines)


def save_confusion_png(cm: np.ndarray | list, path: str | os.PathLike, labels: Sequence[str] = EMOTIONS,
                       title: str = "Confusion matrix") -> None:
    """Write a row-normalised confusion-matrix heatmap with counts to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_curves_png(history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write loss and accuracy per epoch (train vs PublicTest) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    # the training objective (label smoothing, mixup, or a distillation mix at T^2 scale) is not the plain
    # cross-entropy PublicTest is scored with: each says which it is
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train (training objective)")
    a1.plot(ep, [h["val_loss"] for h in history], "o-", label="PublicTest (cross-entropy)")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(ep, [h["train_acc"] for h in history], "o-", label="train (augmented)")
    a2.plot(ep, [h["val_acc"] for h in history], "o-", label="PublicTest")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mien.emotion.training.evaluate --data PATH --weights W [...]` (the product's form is `mien evaluate emotion`)."""
    import argparse

    from mien.emotion.classifier import EmotionClassifier
    from mien.emotion.training.options import add_evaluate_arguments

    p = argparse.ArgumentParser(prog="python -m mien.emotion.training.evaluate", description="Evaluate an emotion model.")
    add_evaluate_arguments(p)
    a = p.parse_args(argv)
    clf = EmotionClassifier.load(a.weights or "models/emotion/emotion_resnet50.weights.h5")
    print(format_report(evaluate_dataset(clf, a.data, a.split, a.json, a.confusion, a.limit)))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
