"""``mien embed`` and ``mien verify``: FaceNet embeddings per face, and same-person checks of two photos."""
from __future__ import annotations

import argparse
import sys

from mien.pipeline.app.cli.common import (add_detection_options, build_recognizer, existing_file_or_url, existing_path,
                                     new_file, positive_float)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``embed`` and ``verify`` commands."""
    em = sub.add_parser("embed", parents=parents, help="export a 128-d FaceNet embedding per face to an .npz",
                        description="Write files, boxes and L2-normalised 128-d embeddings of every face to an .npz.")
    em.add_argument("paths", nargs="+", type=existing_path, help="image files, folders or http(s) URLs of photos")
    em.add_argument("--out", type=new_file, required=True, help="the .npz to write")
    add_detection_options(em)
    em.set_defaults(run=run_embed)

    v = sub.add_parser("verify", parents=parents, help="are the (largest) faces of two photos the same person?",
                       description="FaceNet distance between the largest face of each photo (or of a photo and the "
                                   "nearest enrolled photo of --person), against a threshold. Exit 0: same person; "
                                   "1: different people; 2: usage problem, unreadable photo or no face.")
    v.add_argument("a", type=existing_file_or_url, help="first photo (a file or an http(s) URL)")
    v.add_argument("b", type=existing_file_or_url, nargs="?", help="second photo (or --person)")
    v.add_argument("--person", help="compare with this enrolled person (the nearest of their enrolled photos)")
    v.add_argument("--distance-threshold", type=positive_float,
                   help="same person at or below this distance (default 1.10, calibrated on pairs: "
                        "0.09 %% of different-person demo pairs pass)")
    add_detection_options(v)
    v.set_defaults(run=run_verify)


def run_embed(args: argparse.Namespace) -> int:
    """Embed every face of every image; unreadable images are reported and give exit 1."""
    import numpy as np

    from mien.identity.storage import atomic_path
    from mien.pipeline.app.cli.recognize import find_images
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.images import ImageError, load_image

    paths = find_images(args.paths)
    rec = build_recognizer(args, emotion=False, identity=False)
    files, boxes, vectors, failed = [], [], [], 0
    for p in paths:
        try:
            image = load_image(p)
        except ImageError as exc:
            print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
            failed += 1
            continue
        faces = rec.detect(image)
        for face, vec in zip(faces, rec.embed_faces(image, faces)):
            files.append(str(p))
            boxes.append(face.bbox)
            vectors.append(vec)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, files=np.array(files, dtype=str), bboxes=np.array(boxes, dtype=np.int32).reshape(-1, 4),
                     embeddings=np.array(vectors, dtype=np.float32).reshape(-1, 128),
                     model_version=np.array(rec.embedder.version))
    print(f"{len(vectors)} face embeddings from {len(set(files))} images -> {args.out}")
    return 1 if failed else 0


def run_verify(args: argparse.Namespace) -> int:
    """Print the distance and the verdict; the exit code is the answer (0 same, 1 different, 2 cannot say)."""
    import numpy as np

    from mien.identity.classifier import VERIFY_DISTANCE_THRESHOLD
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.errors import UsageError
    from mien.pipeline.images import load_image

    if (args.b is None) == (args.person is None):
        raise UsageError("verify compares two photos, or one photo with --person NAME: give exactly one of them")
    rec = build_recognizer(args, emotion=False, identity=False)
    photos = [args.a] if args.person else [args.a, args.b]
    vecs = []
    for p in photos:
        image = load_image(p)
        faces = rec.detect(image)
        if not faces:
            print(f"error: {terminal_safe(str(p))}: no face found", file=sys.stderr)
            return 2
        vecs.append(rec.embed_faces(image, faces[:1])[0])
    if args.person:
        enrolled = _enrolled_vectors(args.person, rec)
        dist = float(np.min(np.linalg.norm(enrolled - vecs[0], axis=1)))
        other = f"{terminal_safe(args.person)} (nearest of {len(enrolled)} enrolled photos)"
    else:
        dist = float(np.linalg.norm(vecs[0] - vecs[1]))
        other = terminal_safe(str(args.b))
    threshold = VERIFY_DISTANCE_THRESHOLD if args.distance_threshold is None else args.distance_threshold
    same = dist <= threshold
    print(f"distance {dist:.3f} (threshold {threshold:.2f}): {'same person' if same else 'different people'} "
          f"[{terminal_safe(str(args.a))} vs {other}]")
    return 0 if same else 1


def _enrolled_vectors(name: str, rec):
    """The enrolled embeddings of one person (up to case), checked to come from the same embedding model."""
    import numpy as np

    from mien.identity.errors import StaleModelError
    from mien.identity.gallery.base import UnknownPersonError, name_key
    from mien.pipeline.gallery import gallery_model, open_default_gallery

    gallery = open_default_gallery()
    try:
        snap = gallery.snapshot()
    finally:
        gallery.close()
    if snap.model is not None and snap.model != gallery_model(rec):
        raise StaleModelError(f"the gallery was enrolled with {snap.model}, not {gallery_model(rec)}; enroll again "
                              "(`mien enroll DIR --replace`) to verify against it.")
    rows = [i for i, label in enumerate(snap.labels) if name_key(label) == name_key(name)]
    if not rows:
        raise UnknownPersonError.of(name)
    return np.asarray(snap.vectors)[rows]
