"""Identity verification on LFW pairs, scored twice: by `mien evaluate pairs` and by an independent scorer over
`mien embed`'s embeddings of the same images (issue 23: the two must agree within 0.5 point).

    python benchmarks/verification.py [--pairs ../shared/data/lfw-dev/pairs.txt] [--root ../shared/data/lfw-dev]
                                      [--json FILE]
    python benchmarks/verification.py --cost    # what the identity crop's levers cost per face, in one run

The independent scorer shares no code with mien's: it reads the LFW pairs file itself, takes the largest face of
each image from the .npz `mien embed` writes, and picks each fold's threshold on the other folds by brute force
over the training distances; AUC comes from scikit-learn.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "lfw-dev"


def lfw_pairs(path: Path, root: Path) -> tuple[list[tuple[str, str, bool]], int]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    folds, per = map(int, lines[0][:2])
    img = lambda n, i: str(root / n / f"{n}_{int(i):04d}.jpg")  # noqa: E731
    pairs = [(img(p[0], p[1]), img(p[0], p[2]), True) if len(p) == 3 else (img(p[0], p[1]), img(p[2], p[3]), False)
             for p in lines[1:]]
    return pairs, 2 * per


def independent_score(npz: Path, pairs, per_fold: int) -> dict:
    from sklearn.metrics import roc_auc_score

    d = np.load(npz)
    largest: dict[str, np.ndarray] = {}
    area: dict[str, int] = {}
    for f, (x, y, w, h), e in zip(d["files"], d["bboxes"], d["embeddings"]):
        if w * h > area.get(str(f), -1):
            largest[str(f)], area[str(f)] = e, int(w * h)
    dist = np.array([np.linalg.norm(largest[a] - largest[b]) if a in largest and b in largest else np.inf
                     for a, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    fold = np.arange(len(pairs)) // per_fold
    accs = []
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        cands = np.sort(dist[tr & np.isfinite(dist)])
        best = max(cands, key=lambda t: np.mean((dist[tr] <= t) == same[tr]))
        accs.append(np.mean(((dist[te] <= best) == same[te]) & np.isfinite(dist[te])))
    ok = np.isfinite(dist)
    return {"kfold_accuracy": float(np.mean(accs)), "kfold_std": float(np.std(accs)),
            "auc": float(roc_auc_score(same[ok], -dist[ok])), "images_without_face": int(len({p for a, b, _ in pairs
                                                                                             for p in (a, b)} - set(largest)))}


def crop_cost(rounds: int = 5) -> dict:
    """ms per face of the identity branch (crop + FaceNet, batched 32 faces of the demo photos) for each lever,
    the box crop without flip as the baseline, best of ``rounds``."""
    from dataclasses import replace

    sys.path.insert(0, str(REPO / "benchmarks"))
    from workspace import demo_workspace

    from mien.pipeline import Recognizer
    from mien.pipeline.images import load_image

    _, _, val = demo_workspace()
    rec = Recognizer(identity=False, emotion=False)
    faces = [(img, f) for img in (load_image(p) for p in sorted(val.rglob("*.jpg"))) for f in rec.detect(img)][:32]
    out = {}
    for name, crop in (("crop", replace(rec.identity_crop, method="crop", flip=False)),
                       ("align", replace(rec.identity_crop, method="align", flip=False)),
                       ("align+flip (default)", replace(rec.identity_crop, method="align", flip=True))):
        rec.identity_crop = crop
        rec.embed_crops([crop(*faces[0])])  # warm-up
        best = min(_timed(lambda: rec.embed_crops([crop(img, f) for img, f in faces])) for _ in range(rounds))
        out[name] = round(1000 * best / len(faces), 2)
    base = out["crop"]
    print("identity branch, ms/face (crop + FaceNet, 32 faces batched): " + ", ".join(
        f"{k} {v} ({v / base:.2f}x)" for k, v in out.items()))
    return {"ms_per_face": out, "ratio_to_crop": {k: round(v / base, 2) for k, v in out.items()}}


def _timed(fn) -> float:
    import time

    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cost", action="store_true", help="only measure what each identity-crop lever costs per face")
    ap.add_argument("--pairs", type=Path, default=DATA / "pairs.txt")
    ap.add_argument("--root", type=Path, default=DATA)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)
    if args.cost:
        result = crop_cost()
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return result
    pairs, per_fold = lfw_pairs(args.pairs, args.root)
    images = sorted({p for a, b, _ in pairs for p in (a, b)})
    mien = [sys.executable, "-m", "mien", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "images"
        lst.mkdir()
        for i, p in enumerate(images):  # one folder of links: `mien embed` takes files or folders
            (lst / f"{i:05d}.jpg").symlink_to(p)
        npz, report = Path(tmp) / "emb.npz", Path(tmp) / "pairs.json"
        subprocess.run(mien + ["embed", str(lst), "--out", str(npz)], check=True)
        d = dict(np.load(npz))
        d["files"] = np.array([images[int(Path(f).stem)] for f in d["files"]])
        np.savez(npz, **d)
        subprocess.run(mien + ["evaluate", "pairs", "--lfw-pairs", str(args.pairs), "--root", str(args.root),
                               "--json", str(report)], check=True, stdout=subprocess.DEVNULL)
        ours = json.loads(report.read_text())
        theirs = independent_score(npz, pairs, per_fold)
    result = {"mien_evaluate_pairs": {k: ours[k] for k in ("kfold_accuracy", "kfold_std", "accuracy_at_verify_threshold",
                                                             "auc", "identity_crop", "embedder")},
              "independent_over_mien_embed": theirs,
              "difference_points": round(100 * abs(ours["kfold_accuracy"] - theirs["kfold_accuracy"]), 3)}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
