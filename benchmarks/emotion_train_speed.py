"""Training throughput of the emotion model per configuration (issue 8, step 1): seconds per step at batch 128.

python benchmarks/emotion_train_speed.py --data ../shared/data/fer2013.npz [--steps 20]

Each configuration runs in its own process (the dtype policy is global): mixed_bfloat16 vs float32, XLA
jit_compile on vs off, and the input pipeline alone (augmentation must not starve the model). Run it with
nothing else on the machine; the ratios against the first row are what to compare.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this folder's emotion.py would shadow the package

CONFIGS = [
    {"precision": "mixed_bfloat16", "jit": False},
    {"precision": "float32", "jit": False},
    {"precision": "mixed_bfloat16", "jit": True},
]


def measure(data: str, precision: str, jit: bool, steps: int, warmup: int) -> dict[str, float]:
    """Seconds per training step (after ``warmup`` untimed steps) and per input batch alone."""
    import keras
    import numpy as np

    from mien.emotion.training.data import load_dataset
    from mien.emotion.model import ModelConfig, build_model
    from mien.emotion.training.train import (AUGMENTS, WarmupCosine, class_weights, epoch_dataset, make_optimizer,
                                        mixed_targets, parse_args)

    args = parse_args(["--data", data, "--precision", precision] + (["--jit-compile"] if jit else []))
    keras.mixed_precision.set_global_policy(precision)
    x, y = load_dataset(data).split("Training")
    model = build_model(ModelConfig())
    opt = make_optimizer(args, WarmupCosine(args.lr, 10_000, 100))
    model.compile(optimizer=opt, loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=[keras.metrics.CategoricalAccuracy(name="acc")], weighted_metrics=[], jit_compile=jit)
    opt.build(model.trainable_variables)
    ds = epoch_dataset(x, mixed_targets(y), class_weights(y)[y], 0, 1, args.batch_size, 0, AUGMENTS[args.augment])
    batches = iter(ds)
    t0 = time.perf_counter()
    for _ in range(warmup):
        xb, yb, wb = next(batches)
        model.train_on_batch(xb, yb, sample_weight=wb)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        xb, yb, wb = next(batches)
        model.train_on_batch(xb, yb, sample_weight=wb)
    per_step = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        next(batches)
    input_only = (time.perf_counter() - t0) / steps
    return {"s_per_step": per_step, "warmup_s": first, "input_s_per_batch": input_only,
            "faces_per_s": args.batch_size / per_step, "nonfinite": float(not np.isfinite(per_step))}


def main(argv: list[str] | None = None) -> int:
    """Run every configuration in a child process and print a table with ratios to the first row."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        cfg = json.loads(a.child)
        print(json.dumps(measure(a.data, cfg["precision"], cfg["jit"], a.steps, a.warmup)))
        return 0
    rows = []
    for cfg in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--data", a.data, "--steps", str(a.steps),
                              "--warmup", str(a.warmup), "--child", json.dumps(cfg)],
                             capture_output=True, text=True, check=True)
        rows.append((cfg, json.loads(out.stdout.strip().splitlines()[-1])))
    base = rows[0][1]["s_per_step"]
    print(f"{'precision':<16}{'jit':<6}{'s/step':>8}{'x base':>8}{'faces/s':>9}{'input s/batch':>15}{'warm-up s':>11}")
    for cfg, r in rows:
        print(f"{cfg['precision']:<16}{str(cfg['jit']):<6}{r['s_per_step']:>8.3f}{r['s_per_step'] / base:>8.2f}"
              f"{r['faces_per_s']:>9.0f}{r['input_s_per_batch']:>15.4f}{r['warmup_s']:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
