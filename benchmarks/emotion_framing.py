"""Does the product's face crop match FER2013's framing? Accuracy of re-detected FER faces per crop margin.

    python benchmarks/emotion_framing.py --data ../shared/data/fer2013.npz [--n 400] [--split PublicTest]

FER2013 faces are 48x48 crops. Each is upscaled 4x and padded (as if it were a face in a photo),
MTCNN re-detects it, and pipeline.faceprep.EmotionCrop cuts it out again with several margins.
The baseline is the original 48x48 face in the same run: the margin whose accuracy comes closest
to it is the framing the product should use.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="PublicTest", help="never tune on PrivateTest")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--weights", help="emotion weights (default: the shipped model)")
    ap.add_argument("--margins", default="-0.05,0,0.05,0.1,0.2")
    args = ap.parse_args(argv)

    import cv2
    import numpy as np

    from mien.emotion.training.data import load_dataset
    from mien.pipeline.detection import build_detector
    from mien.pipeline.models import load_emotion_model
    from mien.pipeline.faceprep import EmotionCrop

    model = load_emotion_model(args.weights, required=True)
    x, y = load_dataset(args.data).split(args.split)
    idx = np.random.default_rng(0).choice(len(y), min(args.n, len(y)), replace=False)
    detector = build_detector("mtcnn", min_face_size=40, threshold=0.8)
    margins = [float(m) for m in args.margins.split(",")]
    originals, found, crops = [], [], {m: [] for m in margins}
    for i in idx:
        big = cv2.copyMakeBorder(cv2.resize(x[i], (192, 192), interpolation=cv2.INTER_CUBIC), 48, 48, 48, 48,
                                 cv2.BORDER_REPLICATE)
        rgb = cv2.cvtColor(big, cv2.COLOR_GRAY2RGB)
        faces = detector.detect(rgb)
        if not faces:
            continue
        found.append(i)
        originals.append(x[i])
        for m in margins:
            crops[m].append(EmotionCrop(margin=m)(rgb, faces[0]))
    truth = y[found]

    def acc(faces) -> float:
        return float((model.predict(np.stack(faces)).argmax(axis=1) == truth).mean())

    result = {"faces": len(idx), "redetected": len(found), "original_48x48": acc(originals),
              "margins": {m: acc(c) for m, c in crops.items()}}
    print(f"{args.split}: {len(found)}/{len(idx)} faces re-detected by MTCNN; accuracy on them:")
    print(f"  original FER crop (baseline): {result['original_48x48']:.3f}")
    for m, a in result["margins"].items():
        print(f"  EmotionCrop margin {m:+.2f}: {a:.3f} ({a - result['original_48x48']:+.3f})")
    return result


if __name__ == "__main__":
    main()
