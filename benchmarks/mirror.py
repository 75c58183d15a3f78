"""The mirror image only when unsure (issue 36): the same answers as always looking at it, for fewer passes.

    python benchmarks/mirror.py [--rounds 5] [--json FILE]

`--mirror unsure` (the default) lets FaceNet and the emotion networks look at a face's mirror image only where the
face alone gives an answer near a threshold; `--mirror always` looks at it for every face. In one run, both ways:
- identity: an open-set gallery built from lfw-dev (the first 2 photos of each of its people with 3 or more, ~450
  faces; the SVM and the nearest-neighbour matcher at the default thresholds), asked about their other photos and
  about one photo of each of 600 people never enrolled; and the 5-person demo gallery asked about its 25 held-out
  photos. Gate: the same name for every face; reported: the share of faces that needed the mirror, the largest change of a distance;
- emotion: FER2013 PublicTest (where the margin was chosen) and PrivateTest with the shipped fer2013 model, FER+
  PublicTest and PrivateTest majority labels with the ferplus model. Gate: no accuracy lost beyond 0.1 point;
  reported: the share of faces with the same emotion and the share that needed the mirror;
- speed: who + emotion ms/photo on the 25 held-out demo photos one at a time (warm), the two ways taking turns for
  ``--rounds`` rounds (median), as a ratio. Pause other work (a training run) first; the gates do not depend on it.
Runs in a temporary MIEN_HOME that shares the user's weights and converted models.
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
GATES = {"identity_names_differing": 0, "emotion_points_lost": 0.1}


def lfw_gallery(work: Path) -> tuple[Path, list[str], list[str]]:
    """(enroll folder, other photos of enrolled people, one photo each of people never enrolled) from lfw-dev."""
    people = sorted(p for p in (DATA / "lfw-dev").iterdir() if p.is_dir())
    enroll, known, strangers = work / "lfw-enroll", [], []
    for person in people:
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 3:
            (enroll / person.name).mkdir(parents=True)
            for p in photos[:2]:
                (enroll / person.name / p.name).symlink_to(p)
            known += [str(p) for p in photos[2:]]
        elif len(strangers) < 600:
            strangers.append(str(photos[0]))
    return enroll, known, strangers


def faces_of(rec, paths: list[str]) -> list:
    """The IdentityMatch of every face of the photos, by recognition's own path (chunks of 16)."""
    from mien.pipeline.images import load_image

    out = []
    for i in range(0, len(paths), 16):
        chunk = paths[i:i + 16]
        for record in rec.recognize_batch([load_image(p) for p in chunk], chunk):
            out += [f.identity for f in record.faces]
    return out


def identity_compare(always: list, unsure: list) -> dict:
    """Names that differ, and how far distances moved; a face the unsure rule mirrored has the same embedding both
    ways, so the share of faces whose distance did not move is the share it mirrored."""
    import numpy as np

    moved = np.array([abs(a.distance - b.distance) for a, b in zip(always, unsure)])
    return {"faces": len(always), "names_differing": sum(a.name != b.name for a, b in zip(always, unsure)),
            "named": sum(a.known for a in always), "mirrored_share": round(float(np.mean(moved < 1e-4)), 3),
            "largest_distance_change": round(float(moved.max()), 4) if len(moved) else 0.0}


def emotion_compare(label_set: str) -> dict:
    import numpy as np

    from mien.emotion.training.data import ferplus_majority, load_dataset
    from mien.emotion.labels import LABEL_SETS
    from mien.pipeline.models import load_emotion_model

    data = load_dataset(str(DATA / "fer2013.npz"))
    always = load_emotion_model(required=True, label_set=label_set, mirror="always")
    unsure = load_emotion_model(required=True, label_set=label_set, mirror="unsure")
    out = {}
    for split in ("PublicTest", "PrivateTest"):
        x = data.images[data.usage == split]
        if label_set == "ferplus":
            rows, y = ferplus_majority(DATA / "fer2013new.csv", data, split, LABEL_SETS[label_set])
            x = x[rows]
        else:
            y = data.labels[data.usage == split]
        pa, pu = always.predict(x), unsure.predict(x)
        mirrored = unsure.unsure(unsure.model.predict(x))
        out[split] = {"faces": len(y), "always_accuracy": round(100 * float(np.mean(pa.argmax(1) == y)), 2),
                      "unsure_accuracy": round(100 * float(np.mean(pu.argmax(1) == y)), 2),
                      "same_emotion": round(100 * float(np.mean(pa.argmax(1) == pu.argmax(1))), 2),
                      "mirrored_share": round(float(mirrored.mean()), 3)}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--speed-only", action="store_true", help="only the speed (the gates take ~10 min)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)
    import numpy as np

    from mien.pipeline.home import mien_home
    from workspace import shared_models_home

    user = mien_home()
    homes = [shared_models_home(user)]
    work = Path(tempfile.mkdtemp(prefix="mien-mirror-work-"))
    from mien.pipeline import Options, Recognizer, assets
    from mien.pipeline.enroll import enroll_folder

    report: dict = {"identity": {}, "emotion": {}, "speed": {}}
    # identity on an LFW gallery
    enroll, known, strangers = lfw_gallery(work)
    if not args.speed_only:
        enroll_folder(enroll, Recognizer(Options(), emotion=False))
    for matcher in () if args.speed_only else ("svm", "knn"):
        ways = {m: Recognizer(Options(mirror=m, matcher=matcher), emotion=False) for m in ("always", "unsure")}
        for name, paths in (("enrolled_people", known), ("strangers", strangers)):
            found = {m: faces_of(r, paths) for m, r in ways.items()}
            report["identity"][f"lfw_{matcher}_{name}"] = identity_compare(found["always"], found["unsure"])
    # identity and speed on the demo gallery
    train, val = work / "train", work / "val"
    assets.extract_demo_photos(train, val)
    homes.append(shared_models_home(user))  # a second gallery: the demo's 5 people
    enroll_folder(train, Recognizer(Options(), emotion=False))
    ways = {m: Recognizer(Options(mirror=m)) for m in ("always", "unsure")}
    photos = sorted(str(p) for p in val.rglob("*") if p.is_file())
    found = {m: faces_of(r, photos) for m, r in ways.items()}
    report["identity"]["demo_held_out"] = identity_compare(found["always"], found["unsure"])
    from mien.pipeline.images import load_image

    images = [load_image(p) for p in photos] if args.rounds else []
    for r in ways.values():  # warm every shape
        for img in images:
            r.recognize(img)
    per: dict[str, list[float]] = {m: [] for m in ways}
    for _ in range(args.rounds):
        for m, r in ways.items():
            t = time.perf_counter()
            for img in images:
                r.recognize(img)
            per[m].append(1000 * (time.perf_counter() - t) / len(images))
    med = {m: round(float(np.median(v)), 2) if v else None for m, v in per.items()}
    if args.rounds:
        report["speed"] = {"ms_per_photo": med, "unsure_vs_always": round(med["unsure"] / med["always"], 3),
                           "rounds": {m: [round(v, 2) for v in vs] for m, vs in per.items()}}
    # emotion
    for label_set in () if args.speed_only else ("fer2013", "ferplus"):
        report["emotion"][label_set] = emotion_compare(label_set)

    differ = sum(v["names_differing"] for v in report["identity"].values())
    lost = max((s["always_accuracy"] - s["unsure_accuracy"] for e in report["emotion"].values() for s in e.values()),
               default=0.0)
    report["gates"] = {"identity_names_differing": {"value": differ, "pass": differ <= GATES["identity_names_differing"]},
                       "emotion_points_lost": {"value": round(lost, 2), "pass": lost <= GATES["emotion_points_lost"]}}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
