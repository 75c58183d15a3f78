"""Test-time augmentation for the emotion model: PublicTest accuracy per set of views, and what each costs.

    python benchmarks/emotion_tta.py [--weights models/emotion/emotion_resnet50.weights.h5] [--data FER2013.npz]
                                     [--split PublicTest] [--json FILE]

The shipped model averages each face with its mirror image. This measures, on one FER2013 split (select on
PublicTest only), what averaging over more views would gain: 2-4 pixel shifts left/right, four ways or
diagonally (the training augmentation shifts up to 10 %) and 10 % zoom in/out, mostly each with its mirror.
For each view set it reports the accuracy, how many faces change from wrong to right and right to wrong against
mirror-only (the paired count that says whether a gain is more than noise), and the network passes per face
(the cost multiplier of emotion inference). Runs on TensorFlow; ~10 s per pass on 2 cores for PublicTest's
3,589 faces.
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

SHIFTS = {"shift2": 2, "shift3": 3, "shift4": 4}
FOUR_WAYS = ("+x", "-x", "+y", "-y")
DIAGONALS = ("+x+y", "+x-y", "-x+y", "-x-y")


def mirrored(*views: str) -> list[tuple[str, bool]]:
    """Each view with and without its mirror image."""
    return [(v, m) for v in views for m in (False, True)]


VIEW_SETS = {  # name -> (view, mirrored) pairs, one network pass each
    "mirror only (shipped)": mirrored("identity"),
    "+ 2 px left/right": mirrored("identity", "shift2 +x", "shift2 -x"),
    "+ 3 px left/right": mirrored("identity", "shift3 +x", "shift3 -x"),
    "+ 2 px four ways": mirrored("identity", *(f"shift2 {d}" for d in FOUR_WAYS)),
    "+ 3 px four ways": mirrored("identity", *(f"shift3 {d}" for d in FOUR_WAYS)),
    "+ 4 px four ways": mirrored("identity", *(f"shift4 {d}" for d in FOUR_WAYS)),
    "+ 3 px four ways, shifts unmirrored": mirrored("identity") + [(f"shift3 {d}", False) for d in FOUR_WAYS],
    "+ 2 px diagonals": mirrored("identity", *(f"shift2 {d}" for d in DIAGONALS)),
    "+ 3 px four ways + diagonals": mirrored("identity", *(f"shift3 {d}" for d in FOUR_WAYS + DIAGONALS)),
    "+ zoom 0.9/1.1": mirrored("identity", "zoom 0.9", "zoom 1.1"),
}


def view(faces, name: str):
    """One view of a batch of 48x48 faces: shifted (e.g. "shift3 +x-y") or zoomed about the centre, edges replicated."""
    import re

    import cv2
    import numpy as np

    if name == "identity":
        return faces
    kind, arg = name.split()
    if kind == "zoom":
        m = cv2.getRotationMatrix2D((23.5, 23.5), 0, float(arg))
    else:
        step = {axis: SHIFTS[kind] * (1 if sign == "+" else -1) for sign, axis in re.findall(r"([+-])([xy])", arg)}
        m = np.float32([[1, 0, step.get("x", 0)], [0, 1, step.get("y", 0)]])
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

    from mien.emotion.classifier import EmotionClassifier
    from mien.emotion.inference import as_face_batch
    from mien.emotion.training.data import load_dataset

    model = EmotionClassifier.load(args.weights).keras_model()
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    faces, labels = load_dataset(args.data).split(args.split)
    faces, labels = faces[:args.limit], labels[:args.limit]
    probs = {}
    for name, flip in sorted({pair for pairs in VIEW_SETS.values() for pair in pairs}):
        x = view(faces, name)
        batch = as_face_batch(x[:, :, ::-1] if flip else x)
        probs[name, flip] = np.concatenate([forward(tf.constant(batch[i:i + 256])).numpy()
                                            for i in range(0, len(batch), 256)])

    def right(view_set):
        return sum(probs[pair] for pair in view_set).argmax(1) == labels

    base = right(VIEW_SETS["mirror only (shipped)"])
    result = {"weights": args.weights, "split": args.split, "faces": len(labels), "view_sets": {}}
    print(f"{args.split}, {len(labels)} faces, {Path(args.weights).name}")
    for name, view_set in VIEW_SETS.items():
        ok = right(view_set)
        row = {"accuracy": float(ok.mean()), "passes_per_face": len(view_set),
               "wrong_to_right": int((~base & ok).sum()), "right_to_wrong": int((base & ~ok).sum())}
        result["view_sets"][name] = row
        print(f"{name:36s} {100 * row['accuracy']:6.2f} %  {row['passes_per_face']:2d} passes/face  "
              f"+{row['wrong_to_right']} / -{row['right_to_wrong']} faces vs mirror only")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
