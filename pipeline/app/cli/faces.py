"""``mien embed`` and ``mien verify``: FaceNet embeddings per face, and same-person checks of two photos."""
from __future__ import annotations

import argparse
import sys

from mien.pipeline.app.cli.common import (add_detection_options, add_json_option, build_recognizer,
                                          existing_file_or_url, existing_path, new_file, positive_float)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``embed`` and ``verify`` commands."""
    em = sub.add_parser("embed", parents=parents, help="a 128-d FaceNet embedding per face (.npz or JSON)",
                        description="Files, boxes and L2-normalised 128-d embeddings of every face, each saying whether "
                                    "it is its photo's subject and whether only the relaxed retry found it: to an .npz with "
                                    "--out, as JSON with --json; without either, JSON on standard output.")
    em.add_argument("paths", nargs="+", type=existing_path, help="image files, folders or http(s) URLs of photos")
    em.add_argument("--out", type=new_file, help="the .npz to write")
    add_json_option(em, "the faces and their embeddings")
    add_detection_options(em, one_subject=True)
    em.set_defaults(run=run_embed)

    v = sub.add_parser("verify", parents=parents, help="are the subjects of two photos the same person?",
                       description="FaceNet distance between the subject of each photo (its only face; the largest, "
                                   "or the most central when faces are of similar size) (or of a photo and the "
                                   "nearest enrolled photo of --person), against the same-person threshold that "
                                   "recognition uses. Exit 0: same person; 1: different people; 2: usage problem, "
                                   "unreadable photo or no face.")
    v.add_argument("a", type=existing_file_or_url, help="first photo (a file or an http(s) URL)")
    v.add_argument("b", type=existing_file_or_url, nargs="?", help="second photo (or --person)")
    v.add_argument("--person", help="compare with this enrolled person (the nearest of their enrolled photos)")
    v.add_argument("--distance-threshold", type=positive_float,
                   help="same person at or below this distance (default: SAME_PERSON_DISTANCE, as for recognition)")
    add_json_option(v, "same, distance and threshold")
    add_detection_options(v, one_subject=True)
    v.set_defaults(run=run_verify)


def run_embed(args: argparse.Namespace) -> int:
    """Embed every face of every image; unreadable images are reported and give exit 1."""
    import numpy as np

    from mien.identity.storage import atomic_path
    from mien.pipeline.app.cli.recognize import find_images
    from mien.pipeline.app.outputs import terminal_safe, write_json
    from mien.pipeline.images import ImageError, path_text

    paths = find_images(args.paths)
    rec = build_recognizer(args, emotion=False, identity=False)
    files, faces, failed = [], [], 0
    for p in paths:
        try:
            found = rec.embed(p)
        except ImageError as exc:
            print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
            failed += 1
            continue
        files += [path_text(p)] * len(found)
        faces += found
    if args.out:
        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, files=np.array(files, dtype=str),
                         bboxes=np.array([f.bbox for f in faces], dtype=np.int32).reshape(-1, 4),
                         embeddings=np.array([f.embedding for f in faces], dtype=np.float32).reshape(-1, 128),
                         subject=np.array([f.subject for f in faces], dtype=bool),
                         detected_on_retry=np.array([f.detected_on_retry for f in faces], dtype=bool),
                         model_version=np.array(rec.embedder.version))
    json_target = args.json or (None if args.out else "-")
    if json_target:
        write_json(json_target, {"embedder": rec.embedder.version,
                                 "faces": [{"file": file, **f.to_dict()} for file, f in zip(files, faces)]})
    if json_target != "-":
        print(f"{len(faces)} face embeddings from {len(set(files))} images -> "
              f"{', '.join(str(t) for t in (args.out, args.json) if t)}")
    return 1 if failed else 0


def run_verify(args: argparse.Namespace) -> int:
    """Print the distance and the verdict (or JSON); the exit code is the answer (0 same, 1 different, 2 cannot
    say). Two photos go through ``Recognizer.verify``, as ``mien.verify`` does."""
    import numpy as np

    from mien.pipeline.app.outputs import terminal_safe, write_json
    from mien.pipeline.errors import UsageError
    from mien.pipeline.library import Verification, same_person_distance

    if (args.b is None) == (args.person is None):
        raise UsageError("verify compares two photos, or one photo with --person NAME: give exactly one of them")
    rec = build_recognizer(args, emotion=False, identity=False)
    if args.person:
        enrolled = _enrolled_vectors(args.person, rec)
        dist = float(np.min(np.linalg.norm(enrolled - rec.subject_embedding(args.a), axis=1)))
        threshold = same_person_distance(rec.options)
        result = Verification(dist <= threshold, dist, threshold)
        other = f"{terminal_safe(args.person)} (nearest of {len(enrolled)} enrolled photos)"
    else:
        result = rec.verify(args.a, args.b)
        other = terminal_safe(str(args.b))
    if args.json:
        write_json(args.json, {"a": str(args.a), "b": str(args.b) if args.b else None, "person": args.person,
                               **result.to_dict()})
    if args.json != "-":
        print(f"distance {result.distance:.3f} (threshold {result.threshold:.2f}): "
              f"{'same person' if result.same else 'different people'} [{terminal_safe(str(args.a))} vs {other}]")
    return 0 if result.same else 1


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
