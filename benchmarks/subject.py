"""Issue 38: the relaxed retry and the subject rule of one-subject tasks, before and after, in one run.

    python benchmarks/subject.py [--pairs ../shared/data/lfw-dev/pairs.txt] [--root ../shared/data/lfw-dev]
                                 [--cache DIR] [--json FILE]

- lfw-dev (LFW's subject is the centred face): images without a face, images found on the retry, images whose
  subject is not the largest face, and 3-fold accuracy / AUC / TAR at FAR 1e-3 before (the largest face found at
  the detection thresholds, as mien did) and after (``Recognizer.subject``: the retry, then the subject rule).
- False faces: on the 118 demo photos and on a face-free set made from them (64 px patches away from every face
  found, even by a relaxed search, tiled 2x2, 3x3 and 4x4 with random mirroring, the 2x2 ones also as 64 and
  96 px thumbnails; seeded), the faces found by ``recognize`` (the detection thresholds) and by a one-subject task
  (the same, then the retry when none).
- Upscaling on the retry (not built): on thumbnails, what a 2x copy would find: the demo val photos shrunk until
  the default misses their face, and the face-free thumbnails.
- The demo: enrollment's skipped photos before (no face, or several faces of similar size) and after, top-1 and
  leave-one-person-out strangers through ``mien evaluate identity``'s code.

Every face of an lfw-dev image is embedded once (FaceNet, the product's crop) and kept in --cache, so a second run
only detects again.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "lfw-dev"
sys.path.insert(0, str(REPO / "benchmarks"))
PATCH = 64  # side of a face-free patch
RELAXED_SEARCH = (0.3, 0.3, 0.5)
RATIOS = (1.0, 1.25, 1.5, 2.0, 4.0, float("inf"))  # DOMINANT_AREA_RATIO candidates (1.0: always the largest face)  # what must not overlap a face-free patch: every face found even this loosely


def face_free_set(photos: list[Path], detector, seed: int = 38) -> list[np.ndarray]:
    """Images without a face from the demo photos' backgrounds: PATCH px patches that overlap no face found by a
    search looser than the retry (each box grown by half its size), tiled 2x2, 3x3 and 4x4, randomly mirrored."""
    from mien.pipeline.images import load_image

    rng = np.random.default_rng(seed)
    patches = []
    for p in photos:
        image = load_image(p)
        h, w = image.shape[:2]
        blocked = np.zeros((h, w), bool)
        for f in detector.detect(image) + detector._search(image, 1.0, RELAXED_SEARCH):
            x, y, bw, bh = f.bbox
            blocked[max(0, y - bh // 2):y + bh + bh // 2, max(0, x - bw // 2):x + bw + bw // 2] = True
        for y in range(0, h - PATCH + 1, PATCH):
            for x in range(0, w - PATCH + 1, PATCH):
                if not blocked[y:y + PATCH, x:x + PATCH].any():
                    patches.append(image[y:y + PATCH, x:x + PATCH])
    out = []
    for n in (2, 3, 4):
        for _ in range(len(patches) // (n * n)):
            pick = rng.choice(len(patches), n * n, replace=False)
            tiles = [patches[i][:, ::-1] if rng.random() < 0.5 else patches[i] for i in pick]
            out.append(np.vstack([np.hstack(tiles[r * n:(r + 1) * n]) for r in range(n)]))
    import cv2

    out += [cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in out if im.shape[0] == 2 * PATCH
            for side in (PATCH, 3 * PATCH // 2)]
    return out


def upscale_ablation(val: Path, face_free: list[np.ndarray], rec) -> dict:
    """What the retry would find on a 2x copy of a thumbnail (under 100 px; faces down to min_face_size / 2) against
    what it finds: demo val photos shrunk until the default misses their face, and the face-free thumbnails."""
    import cv2

    from mien.pipeline.images import load_image

    d, t = rec.detector, rec.options.retry_threshold
    tiny = []
    for p in sorted(val.rglob("*.jpg")):
        image = load_image(p)
        for s in (0.4, 0.3, 0.25, 0.2, 0.15):
            small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            if not d.detect(small):
                tiny.append(small)
                break
    thumbs = [im for im in face_free if min(im.shape[:2]) < 100 and not d.detect(im)]

    def doubled(im: np.ndarray) -> list:  # faces down to min_face_size / 2 of the thumbnail
        return d.detect_relaxed(cv2.resize(im, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR), t)

    return {"tiny_demo_faces": len(tiny), "found_by_retry": sum(bool(d.detect_relaxed(x, t)) for x in tiny),
            "found_by_retry_on_2x_copy": sum(bool(doubled(x)) for x in tiny),
            "face_free_thumbnails": len(thumbs), "false_faces_by_retry": sum(len(d.detect_relaxed(x, t)) for x in thumbs),
            "false_faces_by_retry_on_2x_copy": sum(len(doubled(x)) for x in thumbs)}


def false_faces(images: list[np.ndarray], rec) -> dict:
    """Faces found on images: by recognize (the detection thresholds) and by a one-subject task (with the retry)."""
    default = [len(rec.detect(im)) for im in images]
    one_subject = [len(rec.detect_one_subject(im)) for im in images]
    return {"images": len(images), "recognize_faces": int(sum(default)),
            "one_subject_faces": int(sum(one_subject)),
            "images_with_a_face_on_retry": int(sum(d == 0 and o > 0 for d, o in zip(default, one_subject)))}


def lfw_faces(paths: list[str], rec, cache: Path) -> dict:
    """Per image: every face at the detection thresholds (or, when none, on the retry) with its embedding."""
    from mien.pipeline.images import load_image

    from mien.pipeline.subject import SUBJECT_RULE

    key = cache / (f"lfw-{rec.detector.signature}-{SUBJECT_RULE}-retry{rec.options.retry_threshold}-"
                   f"{rec.embedder.version[:16]}.npz")
    if key.exists():
        return json.loads(key.with_suffix(".json").read_text()) | {"vectors": np.load(key)["vectors"]}
    faces, crops = {}, []
    for p in paths:
        image = load_image(p)
        found = rec.detect_one_subject(image)
        faces[p] = [{"bbox": list(f.bbox), "confidence": f.confidence, "retry": f.detected_on_retry,
                     "row": len(crops) + i} for i, f in enumerate(found)]
        crops += [rec.identity_crop(image, f) for f in found]
    vectors = np.concatenate([rec.embed_crops(crops[i:i + 32]) for i in range(0, len(crops), 32)])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(key, vectors=vectors)
    key.with_suffix(".json").write_text(json.dumps({"faces": faces}))
    return {"faces": faces, "vectors": vectors}


def lfw_before_after(pairs_file: Path, root: Path, rec, cache: Path) -> dict:
    """lfw-dev scored with the largest face at the detection thresholds (before) and with the subject (after)."""
    from mien.identity.classifier import SAME_PERSON_DISTANCE
    from mien.pipeline import verification as v
    from mien.pipeline.detection import Face
    from mien.pipeline.subject import choose_subject

    pairs = v.read_lfw_pairs(pairs_file, root)
    t = time.perf_counter()
    found = lfw_faces(pairs.images, rec, cache)
    seconds = time.perf_counter() - t
    vectors, before, after, retried, by_rule = found["vectors"], {}, {}, [], []
    ratios = {r: {} for r in RATIOS}
    for p, fs in found["faces"].items():
        faces = [Face(tuple(f["bbox"]), f["confidence"], detected_on_retry=f["retry"]) for f in fs]
        rows = {id(face): f["row"] for face, f in zip(faces, fs)}
        if faces and not faces[0].detected_on_retry:
            before[p] = vectors[rows[id(max(faces, key=lambda f: f.area))]]
        subject = choose_subject(faces, 250, 250)
        after[p] = vectors[rows[id(subject.face)]] if subject else None
        if subject and subject.face.detected_on_retry:
            retried.append(p)
        if subject and subject.decided_by_rule:
            by_rule.append(p)
        for ratio, emb in ratios.items():
            s = choose_subject(faces, 250, 250, ratio)
            emb[p] = vectors[rows[id(s.face)]] if s else None
    out = {"detect_and_embed_s": round(seconds, 1)}
    for name, emb in (("before", before), ("after", after)):
        r = v.score_pairs(v.pair_distances(pairs, emb), pairs.same, pairs.fold, SAME_PERSON_DISTANCE)
        out[name] = {"images_without_face": sum(emb.get(p) is None for p in pairs.images),
                     "kfold_accuracy": round(r["kfold_accuracy"], 4), "kfold_std": round(r["kfold_std"], 4),
                     "auc": round(r["auc"], 4), "tar_at_far_1e-3": round(r["tar_at_far"]["0.001"]["tar"], 4),
                     "accuracy_at_verify_threshold": round(r["accuracy_at_verify_threshold"], 4)}
    out["after_by_dominant_area_ratio"] = {
        str(ratio): round(v.score_pairs(v.pair_distances(pairs, emb), pairs.same, pairs.fold,
                                        SAME_PERSON_DISTANCE)["kfold_accuracy"], 4) for ratio, emb in ratios.items()}
    touched = set(retried) | set(by_rule)
    out.update(images=len(pairs.images), images_found_on_retry=retried, images_subject_not_largest=by_rule,
               images_with_several_faces=sum(len(fs) > 1 for fs in found["faces"].values()),
               pairs_changed=int(sum(a in touched or b in touched for a, b in zip(pairs.first, pairs.second))))
    return out


def demo_enrollment(train: Path, rec) -> dict:
    """Enrollment photos skipped before (no face at the detection thresholds, or several faces, none 2x the next)
    and after (no face even on the retry), and the photos whose subject is not the largest face."""
    from mien.pipeline.images import load_image
    from mien.pipeline.subject import choose_subject

    before, after, by_rule, by_ratio = [], [], [], {str(r): [] for r in RATIOS}
    for p in sorted(train.rglob("*.jpg")):
        image = load_image(p)
        faces = rec.detect(image)
        if not faces or (len(faces) > 1 and faces[0].area < 2.0 * faces[1].area):
            before.append(str(p.relative_to(train)))
        subject = rec.subject(image)
        for ratio in RATIOS:
            s = choose_subject(rec.detect_one_subject(image), *image.shape[:2], ratio)
            if s is not None and s.decided_by_rule:
                by_ratio[str(ratio)].append(str(p.relative_to(train)))
        if subject is None:
            after.append(str(p.relative_to(train)))
        elif subject.decided_by_rule:
            by_rule.append(str(p.relative_to(train)))
    return {"skipped_before": before, "skipped_after": after, "subject_not_largest": by_rule,
            "subject_not_largest_by_dominant_area_ratio": by_ratio}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, default=DATA / "pairs.txt")
    ap.add_argument("--root", type=Path, default=DATA)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/mien-subject-bench"),
                    help="lfw-dev faces and embeddings from an earlier run")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args(argv)

    from workspace import demo_workspace, finish

    work, train, val = demo_workspace("mien-subject-")
    from mien.pipeline import Recognizer
    from mien.pipeline.evaluate import evaluate_identity
    from mien.pipeline.options import Options

    rec = Recognizer(identity=False, emotion=False)
    r = {"retry_threshold": Options.retry_threshold, "lfw_dev": lfw_before_after(args.pairs, args.root, rec, args.cache)}
    photos = sorted(train.rglob("*.jpg")) + sorted(val.rglob("*.jpg"))
    from mien.pipeline.images import load_image

    r["demo_photos"] = false_faces([load_image(p) for p in photos], rec)
    face_free = face_free_set(photos, rec.detector)
    r["face_free"] = false_faces(face_free, rec)
    r["upscale_ablation"] = upscale_ablation(val, face_free, rec)
    r["demo_enrollment"] = demo_enrollment(train, rec)
    ident = evaluate_identity(train, val, rec)
    lopo = ident["leave_one_person_out"]["per_person"].values()
    r["demo_identity"] = {"top1": f"{round(ident['top1_accuracy'] * ident['test_photos'])}/{ident['test_photos']}",
                          "strangers_named": f"{sum(p['false_accepts'] for p in lopo)}/{sum(p['strangers'] for p in lopo)}",
                          "enrolled_photos": ident["enrolled_photos"]}
    finish(work, r, args.json)
    lfw = r["lfw_dev"]
    for k in ("before", "after"):
        b = lfw[k]
        print(f"lfw-dev {k}: {b['images_without_face']} images without a face; 3-fold accuracy "
              f"{100 * b['kfold_accuracy']:.2f} % +- {100 * b['kfold_std']:.2f}; AUC {b['auc']:.4f}; TAR "
              f"{100 * b['tar_at_far_1e-3']:.2f} % at FAR 1e-3")
    print(f"lfw-dev: {len(lfw['images_found_on_retry'])} image(s) found on the retry, "
          f"{len(lfw['images_subject_not_largest'])} whose subject is not the largest face (of "
          f"{lfw['images_with_several_faces']} with several faces); {lfw['pairs_changed']} pairs changed")
    print("lfw-dev 3-fold accuracy by DOMINANT_AREA_RATIO: " + ", ".join(
        f"{k}: {100 * a:.2f} %" for k, a in lfw["after_by_dominant_area_ratio"].items()))
    for k in ("demo_photos", "face_free"):
        f = r[k]
        print(f"{k}: {f['images']} images, faces found by recognize {f['recognize_faces']}, by a one-subject task "
              f"{f['one_subject_faces']} ({f['images_with_a_face_on_retry']} images with a face only on the retry)")
    u = r["upscale_ablation"]
    print(f"retry on thumbnails: {u['found_by_retry']} of {u['tiny_demo_faces']} shrunk demo faces, "
          f"{u['false_faces_by_retry']} false faces on {u['face_free_thumbnails']} face-free thumbnails; on a 2x copy "
          f"{u['found_by_retry_on_2x_copy']} and {u['false_faces_by_retry_on_2x_copy']}")
    e = r["demo_enrollment"]
    print(f"demo enrollment: skipped before {e['skipped_before']}, after {e['skipped_after']}; subject not the "
          f"largest: {e['subject_not_largest']}")
    print("demo enrollment photos whose subject is not the largest, by DOMINANT_AREA_RATIO: " + ", ".join(
        f"{k}: {len(v)}" for k, v in e["subject_not_largest_by_dominant_area_ratio"].items()))
    d = r["demo_identity"]
    print(f"demo: top-1 {d['top1']}, strangers named {d['strangers_named']}, {d['enrolled_photos']} photos enrolled")
    return r


if __name__ == "__main__":
    main()
