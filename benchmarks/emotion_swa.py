"""Weight averaging for the emotion model: PublicTest accuracy of averages of saved epochs' weights.

    python benchmarks/emotion_swa.py EP40.h5 EP32.h5+EP40.h5 EP38.h5+EP39.h5+EP40.h5 [--data FER2013.npz]
                                     [--config RUN/model.json] [--split PublicTest] [--json FILE]

Each positional argument is one candidate: a weights file, or several joined by '+' whose weights are averaged
element-wise (stochastic weight averaging over the ends of warm-restart cycles, or over the last epochs of one).
BatchNorm statistics of an average are not the average of the statistics, so every candidate gets the trainer's
precise-BN recalibration (30 clean batches of 256 training faces) before it is scored with the shipped mirror
averaging. The first candidate is the baseline for the paired counts (faces wrong -> right and right -> wrong),
which say whether a gain is more than noise. Files: float32 checkpoints (``model.save_weights``) or float16
exports. Select on PublicTest only. ~1.5 min per candidate on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load_any(model, path: Path) -> None:
    """Load a float32 Keras checkpoint or a float16 export into ``model``."""
    import h5py

    from mien.emotion.weights_io import FORMAT, load_weights_f16

    with h5py.File(path, "r") as f:
        exported = f.attrs.get("format") == FORMAT
    if exported:
        load_weights_f16(model, path)
    else:
        model.load_weights(path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="+", help="FILE or FILE+FILE+... (averaged)")
    ap.add_argument("--config", default=str(REPO / "models" / "emotion" / "model.json"),
                    help="model.json describing the network the files belong to")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fer2013.npz"))
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--bn-batches", type=int, default=30)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import numpy as np

    from mien.emotion.config import ModelConfig
    from mien.emotion.inference import make_forward, predict_proba
    from mien.emotion.model import build_model
    from mien.emotion.training.data import load_dataset
    from mien.emotion.training.train import recalibrate_batchnorm

    config = ModelConfig.from_dict(json.loads(Path(args.config).read_text())["config"])
    model = build_model(config, policy="float32")
    forward = make_forward(model)
    data = load_dataset(args.data)
    x_train, _ = data.split("Training")
    faces, labels = data.split(args.split)

    result = {"split": args.split, "faces": int(len(labels)), "candidates": {}}
    base = None
    for cand in args.candidates:
        files = [Path(p) for p in cand.split("+")]
        weights = []
        for f in files:
            load_any(model, f)
            weights.append(model.get_weights())
        model.set_weights([np.mean([w[i] for w in weights], axis=0) for i in range(len(weights[0]))])
        recalibrate_batchnorm(model, x_train, args.bn_batches)
        ok = predict_proba(forward, faces).argmax(1) == labels
        base = ok if base is None else base
        row = {"files": [str(f) for f in files], "accuracy": float(ok.mean()),
               "wrong_to_right": int((~base & ok).sum()), "right_to_wrong": int((base & ~ok).sum())}
        result["candidates"][cand] = row
        print(f"{100 * row['accuracy']:6.2f} %  +{row['wrong_to_right']} / -{row['right_to_wrong']} vs first  "
              f"{' + '.join(f.name for f in files)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
