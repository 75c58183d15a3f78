"""Identity speed and memory on the 5-person demo photos, with ratios against baselines from the same run.

    python benchmarks/identity.py [--json FILE]

Measures: per-stage time of recognition (decode, detect, crop, embed, classify), images/s of a
folder recognized in batches vs one image at a time, FaceNet ms/face batched vs one call per face,
full enrollment vs re-enrollment after adding one photo (goal <= 5%), and peak RSS (goal <= 1.5 GB).
Runs in a temporary MIEN_HOME: a user's enrolled people are never touched.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    from workspace import demo_workspace

    work, train, val = demo_workspace()

    import numpy as np

    from mien.pipeline import Recognizer
    from mien.pipeline.enroll import enroll_folder
    from mien.pipeline.images import decode_image

    r: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    rec, r["model_load_s"] = timed(Recognizer, emotion=False, identity=False)

    # ---- enrollment: full vs after adding one photo -------------------------------------------
    report, full = timed(enroll_folder, train, rec)
    shutil.copy(sorted((val / "ben_afflek").iterdir())[0], train / "ben_afflek" / "added.jpg")
    report2, inc = timed(enroll_folder, train, rec)
    r["enroll"] = {"photos": sum(p.photos for p in report.persons), "full_s": full, "embedded_full": report.embedded,
                   "reenroll_one_added_s": inc, "embedded_reenroll": report2.embedded, "ratio": inc / full,
                   "goal_ratio": 0.05}
    rec.reload_classifier()

    # ---- per-stage times on the val photos ----------------------------------------------------
    paths = sorted(val.rglob("*.jpg"))
    stages = dict.fromkeys(["read+decode", "detect", "crop", "embed", "classify"], 0.0)
    crops, n_faces = [], 0
    rec.embed_faces(decode_image(paths[0].read_bytes()), rec.detect(decode_image(paths[0].read_bytes())))  # warm-up
    for p in paths:
        img, dt = timed(lambda: decode_image(p.read_bytes(), str(p)))
        stages["read+decode"] += dt
        faces, dt = timed(rec.detect, img)
        stages["detect"] += dt
        c, dt = timed(lambda: [rec.identity_crop(img, f) for f in faces])
        stages["crop"] += dt
        crops.extend(c)
        n_faces += len(faces)
    emb, stages["embed"] = timed(rec.embedder.embed, np.stack(crops))
    _, stages["classify"] = timed(rec.classifier.predict, emb)
    total = sum(stages.values())
    r["stages_ms_per_image"] = {k: 1000 * v / len(paths) for k, v in stages.items()}
    r["stages_share"] = {k: v / total for k, v in stages.items()}
    r["val"] = {"images": len(paths), "faces": n_faces}

    # ---- end to end: folder in batches vs one image at a time --------------------------------
    _, batched = timed(lambda: list(rec.recognize_paths(paths)))
    _, single = timed(lambda: [rec.recognize(decode_image(p.read_bytes()), str(p)) for p in paths])
    r["recognize"] = {"images_per_s_batched": len(paths) / batched, "images_per_s_one_by_one": len(paths) / single,
                      "speedup": single / batched}

    # ---- FaceNet: one batch vs one predict call per face ------------------------------------
    batch = np.stack((crops * 2)[:32])
    rec.embedder.embed(batch[:1])
    _, t_batch = timed(rec.embedder.embed, batch)
    _, t_one = timed(lambda: [rec.embedder.embed(batch[i:i + 1]) for i in range(len(batch))])
    r["facenet_ms_per_face"] = {"batched": 1000 * t_batch / len(batch), "one_at_a_time": 1000 * t_one / len(batch),
                                "speedup": t_one / t_batch, "faces": len(batch)}
    r["peak_rss_mb"] = peak_rss_mb()
    r["goal_peak_rss_mb"] = 1536
    shutil.rmtree(work, ignore_errors=True)

    print(f"model load {r['model_load_s']:.1f}s")
    e = r["enroll"]
    print(f"enroll {e['photos']} photos: {e['full_s']:.1f}s; re-enroll after adding 1 photo: {e['reenroll_one_added_s']:.2f}s "
          f"(embedded {e['embedded_reenroll']}) = {100 * e['ratio']:.1f}% of full (goal <= 5%)")
    print("per-stage ms/image: " + ", ".join(f"{k} {v:.1f} ({100 * r['stages_share'][k]:.0f}%)"
                                             for k, v in r["stages_ms_per_image"].items()))
    g = r["recognize"]
    print(f"recognize {len(paths)} val photos: {g['images_per_s_batched']:.2f} images/s batched vs "
          f"{g['images_per_s_one_by_one']:.2f} one by one (x{g['speedup']:.2f})")
    f = r["facenet_ms_per_face"]
    print(f"FaceNet: {f['batched']:.1f} ms/face batched vs {f['one_at_a_time']:.1f} one at a time (x{f['speedup']:.1f})")
    print(f"peak RSS {r['peak_rss_mb']:.0f} MB (goal <= 1536)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return r


if __name__ == "__main__":
    main()
