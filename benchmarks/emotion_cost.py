"""Emotion cost per face, a candidate model against the shipped one in the same run (issue 37's ceiling: 8 ms).

    python benchmarks/emotion_cost.py CANDIDATE [CANDIDATE ...] [--precision auto] [--json FILE]

Each model (a weights file with its model.json, or an ensemble's model.json) is loaded as recognition loads it
(OpenVINO, its own test-time views, ``--precision``), then times one batched call on 64 real face crops of the demo
photos (median of 7 calls after a warm-up). The shipped model of the same label set is the baseline: the ratio is
what the candidate would cost instead. Pause training while it runs: the two cores must be quiet.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CEILING_MS = 8.0


def demo_faces(n: int = 64):
    """``n`` 48x48 grayscale emotion crops of the demo's held-out photos, as recognition makes them."""
    import numpy as np

    from mien.pipeline import Recognizer
    from mien.pipeline.images import load_image
    from workspace import demo_workspace

    _, _, val = demo_workspace()
    rec = Recognizer(identity=False, emotion=False)
    faces = []
    for path in sorted(val.rglob("*.jpg")):
        image = load_image(path)
        faces += [rec.emotion_crop(image, f) for f in rec.detect(image)]
    return np.stack((faces * (n // max(len(faces), 1) + 1))[:n])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidates", nargs="+", help="weights files or ensemble model.json files")
    ap.add_argument("--precision", default="auto", help="as `mien recognize --precision`")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    from mien.pipeline.models import load_emotion_model
    from workspace import median_ms

    faces = demo_faces()
    shipped = load_emotion_model(required=True, precision=args.precision)
    rows = {}
    for name, model in [("shipped", shipped)] + [(c, load_emotion_model(c, required=True, precision=args.precision))
                                                  for c in args.candidates]:
        ms = median_ms(lambda: model.predict(faces), 7) / len(faces)
        passes = getattr(model, "passes", None) or model.views.passes  # an ensemble sums its members' passes
        rows[name] = {"version": model.version, "passes_per_face": passes, "ms_per_face_batched": ms}
    base = rows["shipped"]["ms_per_face_batched"]
    for name, r in rows.items():
        r["vs_shipped"] = r["ms_per_face_batched"] / base
        r["within_ceiling"] = r["ms_per_face_batched"] <= CEILING_MS
        print(f"{r['version']}: {r['ms_per_face_batched']:.2f} ms/face batched ({r['passes_per_face']} passes), "
              f"{r['vs_shipped']:.2f}x the shipped model, ceiling {CEILING_MS} ms: "
              f"{'within' if r['within_ceiling'] else 'OVER'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
