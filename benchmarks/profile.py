"""One photo end to end, stage by stage (issue 25): where the milliseconds of `mien recognize` go.

    python benchmarks/profile.py [--precision fp32|bf16] [--json FILE]

On the 25 held-out demo photos, one at a time and warm (each photo recognized once before it is timed; median of 5
rounds per stage): decoding the file, each MTCNN stage (input scaling, P-Net over the pyramid, R-Net, O-Net, and
the rest of the detector: resizing, retries, bookkeeping), the face crops, FaceNet, the matcher, the emotion network,
and writing the record as JSON. The stages are the product's own functions, timed where they are called. Pause
other work (a training run) first.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CASCADE = ("propose", "refine", "finish")  # P-Net over the pyramid, R-Net, O-Net (pipeline.mtcnn_cascade)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="auto", help="as `mien recognize --precision` (default: its default)")
    ap.add_argument("--photos", default=str(REPO / "demo_data" / "val"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import numpy as np

    from mien.pipeline import Options, Recognizer, mtcnn_cascade
    from mien.pipeline.images import load_image

    spent: dict[str, float] = defaultdict(float)

    def timed(stage: str, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[stage] += time.perf_counter() - t
        return wrapper

    for name in CASCADE:  # detect() looks these up in its module at call time
        setattr(mtcnn_cascade, name, timed(name, getattr(mtcnn_cascade, name)))

    rec = Recognizer(Options(precision=args.precision))
    photos = sorted(p for p in Path(args.photos).rglob("*") if p.is_file())
    rounds: list[dict[str, float]] = []
    faces = 0
    for r in range(args.rounds + 1):  # round 0 warms every shape
        per = defaultdict(float)
        for path in photos:
            spent.clear()
            t0 = time.perf_counter()
            image = load_image(path)
            t1 = time.perf_counter()
            record = rec.recognize(image, path.name)
            t2 = time.perf_counter()
            json.dumps(record.to_dict())
            t3 = time.perf_counter()
            stages = {"decode": t1 - t0, **{s: spent[s] for s in CASCADE}}
            timing = {k: v / 1000 for k, v in rec.last_timing.items()}
            stages["detector other"] = timing.pop("detect") - sum(spent[s] for s in CASCADE)
            stages.update(timing)
            stages["recognizer other"] = (t2 - t1) - sum(rec.last_timing.values()) / 1000
            stages["json"] = t3 - t2
            stages["total"] = t3 - t0
            for k, v in stages.items():
                per[k] += 1000 * v / len(photos)
            if r == 0:
                faces += len(record.faces)
        if r:
            rounds.append(per)
    names = list(rounds[0])
    median = {k: float(np.median([rd[k] for rd in rounds])) for k in names}
    total = median.pop("total")
    report = {"precision": rec.precision, "photos": len(photos), "faces": faces,
              "ms_per_photo": {k: round(v, 2) for k, v in median.items()}, "total_ms_per_photo": round(total, 2),
              "share": {k: round(v / total, 3) for k, v in median.items()}}
    print(f"{report['photos']} photos, {report['faces']} faces, precision {report['precision']}: "
          f"{total:.1f} ms/photo")
    for k, v in median.items():
        print(f"  {k:18s} {v:7.2f} ms  {100 * v / total:5.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
