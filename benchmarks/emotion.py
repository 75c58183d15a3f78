"""Emotion speed: ms/face batched vs one at a time, and the added cost of emotion over identity-only recognize,
with the shipped test-time views and with the mirror image alone.

    python benchmarks/emotion.py [--weights models/emotion/emotion_resnet50.weights.h5] [--json FILE]

The baseline of each ratio is measured in the same run: identity-only recognition of the demo val
photos (goal: emotion adds <= 10%), one predict call per face (vs one batched call), and the mirror-only
views (2 passes per face) against the shipped ones (model.json's ``tta``; 10 passes for 3-px shifts).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(fn, rounds: int = 3) -> float:
    """Smallest wall time of ``rounds`` calls (the least disturbed by other processes)."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="emotion weights (default: the shipped model)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import numpy as np

    from mien.pipeline import Recognizer
    from mien.pipeline.models import load_emotion_model
    from mien.emotion.views import MIRROR
    from mien.pipeline.images import load_image
    from workspace import demo_workspace

    model = load_emotion_model(args.weights, required=True)
    mirror_only = load_emotion_model(args.weights, required=True, views=MIRROR)
    work, _, val = demo_workspace()
    paths = sorted(val.rglob("*.jpg"))
    images = [load_image(p) for p in paths]

    from mien.identity.classifier import IdentityClassifier

    rec = Recognizer(identity=False, emotion=False)
    detections = [rec.detect(img) for img in images]
    faces = [rec.emotion_crop(img, f) for img, fs in zip(images, detections) for f in fs]
    # an in-memory classifier over the photos' own main faces, so identity runs in full (FaceNet + SVM)
    main_faces = np.concatenate([rec.embed_faces(img, fs[:1]) for img, fs in zip(images, detections)])
    rec.classifier = IdentityClassifier(main_faces, [p.parent.name for p in paths], rec.embedder.version)
    rec.emotion_model = model
    batch = np.stack((faces * 4)[:64])
    model.predict(batch[:1])
    mirror_only.predict(batch[:1])
    t_batch = best_of(lambda: model.predict(batch))
    t_one = best_of(lambda: [model.predict(batch[i:i + 1]) for i in range(len(batch))], rounds=1)
    t_mirror = best_of(lambda: mirror_only.predict(batch))
    r = {"model": model.version, "views": model.views.to_meta(), "passes_per_face": model.views.passes,
         "emotion_ms_per_face": {
             "batched": 1000 * t_batch / len(batch), "one_at_a_time": 1000 * t_one / len(batch),
             "speedup": t_one / t_batch, "faces": len(batch), "mirror_only_batched": 1000 * t_mirror / len(batch),
             "vs_mirror_only": t_batch / t_mirror}}

    def recognize_all():
        rec.recognize_batch(images, [str(p) for p in paths])

    recognize_all()  # warm-up (graph tracing)
    with_emotion = best_of(recognize_all)
    rec.emotion_model = mirror_only
    recognize_all()
    with_mirror_only = best_of(recognize_all)
    rec.emotion_model = None
    recognize_all()
    identity_only = best_of(recognize_all)
    r["recognize_val"] = {"images": len(images), "faces": len(faces), "identity_only_s": identity_only,
                          "with_emotion_s": with_emotion, "added_cost": with_emotion / identity_only - 1,
                          "with_mirror_only_emotion_s": with_mirror_only,
                          "added_cost_mirror_only": with_mirror_only / identity_only - 1, "goal_added_cost": 0.10}
    e, g = r["emotion_ms_per_face"], r["recognize_val"]
    print(f"emotion model {model.version}, {r['passes_per_face']} passes/face: {e['batched']:.2f} ms/face batched vs "
          f"{e['one_at_a_time']:.1f} one at a time (x{e['speedup']:.1f}); mirror only (2 passes) "
          f"{e['mirror_only_batched']:.2f} ms/face (the shipped views cost x{e['vs_mirror_only']:.1f})")
    print(f"recognize {g['images']} val photos ({g['faces']} faces): identity only {g['identity_only_s']:.2f}s, "
          f"with emotion {g['with_emotion_s']:.2f}s: +{100 * g['added_cost']:.1f}% (goal <= 10%); with mirror-only "
          f"emotion {g['with_mirror_only_emotion_s']:.2f}s: +{100 * g['added_cost_mirror_only']:.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return r


if __name__ == "__main__":
    main()
