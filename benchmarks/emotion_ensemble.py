"""Emotion ensembles: each member's accuracy on a FER2013 split, the weighted average's, and what it costs per face.

    python benchmarks/emotion_ensemble.py MEMBER [MEMBER ...] [--data FER2013.npz] [--split PublicTest]
                                          [--ferplus fer2013new.csv] [--weights 0.5,0.5] [--json FILE]

    MEMBER = WEIGHTS_FILE[@VIEWS]   (VIEWS: a preset of emotion.views, e.g. mirror or mirror+shift3; default: the
                                     member's model.json)

Each member runs through the product's inference path (OpenVINO, its checked weights, its test-time views) once;
the ensemble's accuracy is then computed for the weights given and for a small grid of weights (two members), with
per-class recall and the paired wrong-to-right / right-to-wrong counts against the best member (the count that
says whether a gain is more than noise). Select on PublicTest only; report PrivateTest once per shipped model.
Cost: batched ms/face of each member, measured in the same run, and their sum.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("members", nargs="+", help="WEIGHTS_FILE[@VIEWS]")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fer2013.npz"))
    ap.add_argument("--split", default="PublicTest", choices=("PublicTest", "PrivateTest"))
    ap.add_argument("--ferplus", help="fer2013new.csv: score on the FER+ majority labels of the members' label set "
                                      "(FER2013's 7 or FER+'s 8; faces without a majority among them left out)")
    ap.add_argument("--weights", help="comma-separated member weights (default: equal)")
    ap.add_argument("--grid", help="more weight vectors to score, ';'-separated (e.g. '0.3,0.7,0;0.2,0.4,0.4')")
    ap.add_argument("--runtime", default="openvino", choices=("openvino", "tensorflow"))
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    import numpy as np

    from mien.emotion.training.data import ferplus_majority, load_dataset
    from mien.emotion.training.evaluate import summarize
    from mien.emotion.views import PRESETS
    from mien.pipeline.models import load_emotion_model

    data = load_dataset(args.data)
    x, y = data.split(args.split)
    members, probs, report = [], [], {"split": args.split, "members": []}
    for spec in args.members:
        path, _, views = spec.partition("@")
        # every face with all its views: the weights are chosen on the members' full answers (recognition then looks
        # at the mirror image only where the ensemble's answer is unsure, which kept every PublicTest answer)
        clf = load_emotion_model(path, required=True, runtime=args.runtime, views=PRESETS[views] if views else None,
                                 mirror="always")
        if members and clf.labels != members[0].labels:
            raise SystemExit(f"{path}: its labels differ from the first member's")
        if not members and args.ferplus:
            rows, y = ferplus_majority(args.ferplus, data, args.split, clf.labels)
            x = x[rows]
        report.update(faces=int(len(y)), labels=list(clf.labels))
        clf.predict(x[:2])  # warm-up: a first call converts or traces
        start = time.perf_counter()
        p = np.concatenate([clf.predict(x[i:i + 512]) for i in range(0, len(x), 512)])
        result = summarize(y, p, clf.labels)
        result["ms_per_face_batched"] = 1000 * (time.perf_counter() - start) / len(y)
        members.append(clf)
        probs.append(p)
        passes = getattr(clf, "passes", clf.views.passes)  # an ensemble: all its members' passes
        report["members"].append({"model": clf.version, "weights_file": path, "views": clf.views.tag,
                                  "passes": passes, "accuracy": result["accuracy"],
                                  "per_class_recall": result["per_class_accuracy"],
                                  "ms_per_face_batched": round(result["ms_per_face_batched"], 2)})
        print(f"{clf.version} ({clf.views.tag}, {passes} passes): {result['accuracy']:.4f} "
              f"{result['ms_per_face_batched']:.2f} ms/face", flush=True)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(members)
    best = max(range(len(members)), key=lambda i: report["members"][i]["accuracy"])
    best_right = probs[best].argmax(1) == y

    def scored(ws: list[float]) -> dict:
        avg = sum(w * p for w, p in zip(ws, probs)) / sum(ws)
        s = summarize(y, avg, members[0].labels)
        right = avg.argmax(1) == y
        return {"weights": [round(w / sum(ws), 3) for w in ws], "accuracy": s["accuracy"],
                "per_class_recall": s["per_class_accuracy"],
                "wrong_to_right_vs_best_member": int((right & ~best_right).sum()),
                "right_to_wrong_vs_best_member": int((~right & best_right).sum())}

    report["ensemble"] = scored(weights)
    report["ms_per_face_batched"] = round(sum(m["ms_per_face_batched"] for m in report["members"]), 2)
    if args.grid:
        report["weight_grid"] = [scored([float(w) for w in ws.split(",")]) for ws in args.grid.split(";")]
        for g in report["weight_grid"]:
            print(f"  weights {g['weights']}: {g['accuracy']:.4f}", flush=True)
    elif len(members) == 2:
        report["weight_grid"] = [scored([w, 1 - w]) for w in (0.3, 0.4, 0.5, 0.6, 0.7)]
        for g in report["weight_grid"]:
            print(f"  weights {g['weights']}: {g['accuracy']:.4f}", flush=True)
    e = report["ensemble"]
    print(f"ensemble {e['weights']}: {e['accuracy']:.4f} ({e['wrong_to_right_vs_best_member']} wrong->right, "
          f"{e['right_to_wrong_vs_best_member']} right->wrong vs the best member), {report['ms_per_face_batched']:.2f} "
          f"ms/face; recall " + " ".join(f"{k} {v:.2f}" for k, v in e["per_class_recall"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
