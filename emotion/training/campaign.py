"""A training campaign that spans machines: what a session commits so the next one, anywhere, continues the run.

A run's local checkpoint (``ckpt/``: float32 weights, the optimizer's moments, the schedule position) is too large
to commit for a FaceNet-sized trunk (~280 MB). ``save`` keeps what resuming needs in ``DEST``: the latest
checkpoint's weights in float16 (~47 MB), its state (epoch, step, history, the run's arguments), the best epoch's
weights when they differ (save right after an improved epoch and one file serves both), and the run's metrics and
curves. ``seed`` lays that back as the run's checkpoint without
optimizer moments; the trainer then rebuilds them (SGD momentum in a few steps) at the same point of the schedule.

    python -m mien.emotion.training.campaign save RUN DEST
    python -m mien.emotion.training.campaign seed DEST RUN
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Sequence

LATEST = "latest.f16.weights.h5"
BEST_F16 = "best.f16.weights.h5"
STATE = "state.json"
# What a campaign folder carries beside the weights (the run's own files, copied as they are).
RUN_FILES = ("metrics.json", "training_curves.png", "confusion_matrix.png", "model.json")


def _model_of(run: Path):
    """The run's network (from its model.json), float32."""
    from mien.emotion.model import ModelConfig, build_model

    meta = json.loads((run / "model.json").read_text())
    return build_model(ModelConfig.from_dict(meta["config"]), policy="float32")


def save(run: str | Path, dest: str | Path) -> Path:
    """Copy the run's latest checkpoint (float16 weights + state) and its best weights into ``dest``, atomically."""
    from mien.emotion.training.train import BEST, find_checkpoint
    from mien.emotion.weights_io import save_weights_f16

    run, dest = Path(run), Path(dest)
    ckpt = find_checkpoint(run)
    if ckpt is None:
        raise SystemExit(f"{run}: no checkpoint to save (train first)")
    tmp = dest.with_name(dest.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = _model_of(run)
    model.load_weights(ckpt / "model.weights.h5")
    save_weights_f16(model, tmp / LATEST)
    state = json.loads((ckpt / STATE).read_text())
    best_is_latest = state["step"] == 0 and state.get("best_epoch") == state["epoch"]
    if (run / BEST).is_file() and not best_is_latest:  # saved at an improved epoch's end: one file serves both
        model.load_weights(run / BEST)
        save_weights_f16(model, tmp / BEST_F16)
    shutil.copy2(ckpt / STATE, tmp / STATE)
    for name in RUN_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, tmp / name)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def seed(campaign: str | Path, run: str | Path) -> bool:
    """Lay a saved campaign out as ``run``'s checkpoint (without optimizer moments), unless the run already has
    one of its own; returns whether it did."""
    from mien.emotion.training.train import BEST, CKPT, find_checkpoint
    from mien.emotion.weights_io import load_weights_f16

    campaign, run = Path(campaign), Path(run)
    if find_checkpoint(run) is not None or not (campaign / STATE).is_file():
        return False
    (run / CKPT).mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (campaign / name).is_file():
            shutil.copy2(campaign / name, run / name)
    model = _model_of(run)
    if (campaign / BEST_F16).is_file():
        load_weights_f16(model, campaign / BEST_F16)
        model.save_weights(run / BEST)
    load_weights_f16(model, campaign / LATEST)
    model.save_weights(run / CKPT / "model.weights.h5")
    if not (campaign / BEST_F16).is_file():  # saved at the best epoch's end: the latest weights are the best
        model.save_weights(run / BEST)
    shutil.copy2(campaign / STATE, run / CKPT / STATE)  # last: a checkpoint counts once its state is there
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``save RUN DEST`` or ``seed DEST RUN``."""
    p = argparse.ArgumentParser(prog="python -m mien.emotion.training.campaign", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("save", "seed"))
    p.add_argument("source")
    p.add_argument("target")
    a = p.parse_args(argv)
    if a.action == "save":
        print(f"saved {a.source} -> {save(a.source, a.target)}")
    else:
        print(f"seeded {a.target} from {a.source}" if seed(a.source, a.target) else f"{a.target}: kept its own checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
