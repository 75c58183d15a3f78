"""Test-time augmentation for the emotion model: PublicTest accuracy per set of views, and what each costs.

    python benchmarks/emotion_tta.py [--weights models/emotion/emotion_resnet50.weights.h5] [--data FER2013.npz]
                                     [--split PublicTest] [--json FILE]

The shipped model averages each face with its mirror image. This measures, on one FER2013 split (select on
PublicTest only), what averaging over more views would gain: 2-pixel shifts (the training augmentation shifts
up to 10 %), 3-pixel shifts and 10 % zoom in/out, each with its mirror. For each view set it reports the
accuracy, how many faces change from wrong to right and right to wrong against mirror-only (the paired count
that says whether a gain is more than noise), and the network passes per face (the cost multiplier of
emotion inference). Runs on TensorFlow; takes ~30 s per view on 2 cores for PublicTest's 3,589 faces.
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

SHIFTS = {"shift2": 2, "shift3": 3}
VIEW_SETS = {  # name -> views (each also mirrored)
    "mirror only (shipped)": ["identity"],
    "+ 2 px left/right": ["identity", "shift2 +x", "shift2 -x"],
    "+ 2 px four ways": ["identity", "shift2 +x", "shift2 -x", "shift2 +y", "shift2 -y"],
    "+ 3 px four ways": ["identity", "shift3 +x", "shift3 -x", "shift3 +y", "shift3 -y"],
    "+ zoom 0.9/1.1": ["identity", "zoom 0.9", "zoom 1.1"],
    "all": ["identity", *(f"{s} {d}" for s in SHIFTS for d in ("+x", "-x", "+y", "-y")), "zoom 0.9", "zoom 1.1"],
}


def view(faces, name: str):
    """One view of a batch of 48x48 faces: shifted or zoomed about the centre, edges replicated."""
    import cv2
    import numpy as np

    if name == "identity":
        return faces
    kind, arg = name.split()
    if kind == "zoom":
        m = cv2.getRotationMatrix2D((23.5, 23.5), 0, float(arg))
    else:
        d = SHIFTS[kind] * (1 if arg[0] == "+" else -1)
        m = np.float32([[1, 0, d if arg[1] == "x" else 0], [0, 1, d if arg[1] == "y" else 0]])
    return np.stack([cv2.warpAffine(f, m, (48, 48), borderMode=cv2.BORDER_REPLICATE) for f in faces])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(REPO / "models" / "emotion" / "emotion_resnet50.weights.h5"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fer2013.npz"))
    ap.add_argument("--split", default="PublicTest")
    ap.add_argument("--limit", type=int, help="only the first N faces of the split (a quick check)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from emotion.classifier import EmotionClassifier
    from emotion.inference import as_face_batch
    from emotion.training.data import load_dataset

    model = EmotionClassifier.load(args.weights).keras_model()
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    faces, labels = load_dataset(args.data).split(args.split)
    faces, labels = faces[:args.limit], labels[:args.limit]
    views = sorted({v for vs in VIEW_SETS.values() for v in vs})
    probs = {}
    for name in views:
        x = view(faces, name)
        for mirrored in (False, True):
            batch = as_face_batch(x[:, :, ::-1] if mirrored else x)
            probs[name, mirrored] = np.concatenate([forward(tf.constant(batch[i:i + 256])).numpy()
                                                    for i in range(0, len(batch), 256)])

    def right(view_set):
        return sum(probs[v, m] for v in view_set for m in (False, True)).argmax(1) == labels

    base = right(VIEW_SETS["mirror only (shipped)"])
    result = {"weights": args.weights, "split": args.split, "faces": len(labels), "view_sets": {}}
    print(f"{args.split}, {len(labels)} faces, {Path(args.weights).name}")
    for name, view_set in VIEW_SETS.items():
        ok = right(view_set)
        row = {"accuracy": float(ok.mean()), "passes_per_face": 2 * len(view_set),
               "wrong_to_right": int((~base & ok).sum()), "right_to_wrong": int((base & ~ok).sum())}
        result["view_sets"][name] = row
        print(f"{name:24s} {100 * row['accuracy']:6.2f} %  {row['passes_per_face']:2d} passes/face  "
              f"+{row['wrong_to_right']} / -{row['right_to_wrong']} faces vs mirror only")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
