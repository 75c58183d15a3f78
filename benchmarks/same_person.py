"""The one "same person" distance (identity.classifier.SAME_PERSON_DISTANCE), measured at several candidates.

    python benchmarks/same_person.py [--lfw ../shared/data/lfw-dev]    # ~2 min on 2 cores (demo + 2,334 LFW images)

Demo photos (all 118, leave one out): "named right" = the nearest other photo is the person's own and within the
distance; "strangers named" = with the photo's person left out of the gallery, some other person is within it.
Demo pairs: same / different pairs accepted. lfw-dev: accuracy of the 1,800 pairs at each distance, and the LFW
3-fold accuracy (each fold's threshold chosen on the other two).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

CANDIDATES = (0.90, 0.95, 1.00, 1.05, 1.10, 1.15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-dev")
    args = ap.parse_args()
    from mien.pipeline import assets
    from mien.pipeline.recognizer import Recognizer
    from mien.pipeline.verification import embed_subjects, pair_distances, read_lfw_pairs, score_pairs

    rec = Recognizer(emotion=False, identity=False)
    with tempfile.TemporaryDirectory() as tmp:
        assets.extract_demo_photos(Path(tmp, "train"), Path(tmp, "val"))
        paths = sorted(str(p) for p in Path(tmp).rglob("*.jpg"))
        emb = embed_subjects(paths, rec)
    paths = [p for p in paths if emb[p] is not None]
    x, y = np.stack([emb[p] for p in paths]), np.array([Path(p).parent.name for p in paths])
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    own = np.array([d[i, (y == y[i]) & (np.arange(len(y)) != i)].min() for i in range(len(y))])
    other = np.array([d[i, y != y[i]].min() for i in range(len(y))])
    iu = np.triu_indices(len(y), 1)
    pd, ps = d[iu], (y[:, None] == y[None])[iu]
    print(f"demo: {len(y)} photos with a face, {ps.sum()} same and {(~ps).sum()} different pairs")
    lfw = None
    if (args.lfw / "pairs.txt").is_file():
        pairs = read_lfw_pairs(args.lfw / "pairs.txt", args.lfw)
        dist = pair_distances(pairs, embed_subjects(pairs.images, rec))
        lfw = (dist, pairs)
        r = score_pairs(dist, pairs.same, pairs.fold, 1.0)
        print(f"lfw-dev: 3-fold accuracy {r['kfold_accuracy']:.4f} (fold thresholds "
              f"{', '.join(f'{t:.3f}' for t in r['fold_thresholds'])}), {r['pairs_without_face']} pairs without a face")
    for t in CANDIDATES:
        line = (f"{t:.2f}: demo named right {np.mean((own <= t) & (own < other)):.3f}, strangers named "
                f"{np.mean(other <= t):.3f}, same pairs accepted {np.mean(pd[ps] <= t):.3f}, different pairs accepted "
                f"{np.mean(pd[~ps] <= t):.4f}")
        if lfw is not None:
            line += f"; lfw-dev accuracy {np.mean(((lfw[0] <= t) == lfw[1].same) & np.isfinite(lfw[0])):.4f}"
        print(line)


if __name__ == "__main__":
    main()
