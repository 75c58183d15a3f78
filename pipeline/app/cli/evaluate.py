"""``mien evaluate identity|emotion``: measure accuracy (emotion shares its options with emotion.training)."""
from __future__ import annotations

import argparse

from mien.pipeline.app.cli.common import (DEFAULTS, add_detection_options, add_identity_options, build_recognizer, existing_dir,
                                     existing_file, new_file, number_in, progress, quiet_tensorflow, thresholds_from)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``evaluate identity`` and ``evaluate emotion``."""
    from mien.emotion.training.options import add_evaluate_arguments

    ev = sub.add_parser("evaluate", parents=parents, help="measure accuracy",
                        description="Measure identity or emotion accuracy.").add_subparsers(dest="what", required=True)
    ei = ev.add_parser("identity", parents=parents, help="top-1 accuracy and leave-one-person-out open-set rejection",
                       description="Enroll --enroll, recognize --test; then leave each person out as a stranger.")
    ei.add_argument("--enroll", type=existing_dir, required=True, help="DIR/<person>/*.jpg to enroll")
    ei.add_argument("--test", type=existing_dir, required=True, help="DIR/<person>/*.jpg to recognize")
    ei.add_argument("--json", type=new_file, help="write the full result here")
    add_crop_options(ei)
    ei.add_argument("--fpir", type=number_in(float, 0.0, 1.0),
                    help="choose the distance threshold that lets this share of strangers be named (e.g. 0.01), "
                         "instead of a raw --distance-threshold")
    add_detection_options(ei, one_subject=True)
    add_identity_options(ei)
    ei.set_defaults(run=run_identity)

    ep = ev.add_parser("pairs", parents=parents, help="face verification on pairs (LFW protocol): k-fold accuracy, AUC",
                       description="Verification accuracy on image pairs: each image embedded once (its subject: the relaxed "
                                   "retry when no face is found, the subject rule when several are), "
                                   "k-fold accuracy with the threshold chosen on the other folds, accuracy at `mien "
                                   "verify`'s threshold, ROC AUC and TAR at FAR 1e-2 / 1e-3. A pair with an image "
                                   "without a face counts as wrong.")
    source = ep.add_mutually_exclusive_group(required=True)
    source.add_argument("--lfw-pairs", type=existing_file, help="an LFW pairs.txt (folds from its header); needs --root")
    source.add_argument("--pairs", type=existing_file, help="a CSV with columns img1,img2,same (paths relative to it)")
    ep.add_argument("--root", type=existing_dir, help="with --lfw-pairs: the folder of <name>/<name>_<nnnn>.jpg")
    ep.add_argument("--folds", type=number_in(int, 2, 100), default=10, help="with --pairs: folds to deal pairs into")
    add_crop_options(ep)
    ep.add_argument("--json", type=new_file, help="write the full result here")
    ep.add_argument("--plot", type=new_file, help="write the ROC curve here (PNG)")
    add_detection_options(ep, one_subject=True)
    ep.set_defaults(run=run_pairs)

    ee = ev.add_parser("emotion", parents=parents, help="accuracy of the emotion model on a FER2013 split",
                       description="Accuracy, per-class accuracy and confusion matrix of the shipped emotion model.")
    add_evaluate_arguments(ee)
    from mien.emotion.labels import LABEL_SETS
    from mien.pipeline.runtime import PRECISIONS

    ee.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                    help="OpenVINO's arithmetic, as for recognition (auto: the emotion networks in bf16 where the CPU "
                         "has it)")
    ee.add_argument("--emotion-model", choices=tuple(LABEL_SETS), default=DEFAULTS.emotion_model,
                    help="which shipped model, without --weights: fer2013 (7 emotions) or ferplus (8, scored with "
                         "--labels ferplus)")
    ee.set_defaults(run=run_emotion)


def add_crop_options(p: argparse.ArgumentParser) -> None:
    """How faces become FaceNet's input, to compare against the product's default (the levers of issue 23)."""
    from mien.pipeline.faceprep import IdentityCrop

    default = IdentityCrop()
    p.add_argument("--align", choices=["crop", "align"], default=default.method,
                   help="align: 5-point similarity to the canonical landmarks; crop: the detection box plus a margin")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=default.flip,
                   help="embed each face as the mean of it and its mirror image (twice the FaceNet passes)")


def crop_from(args: argparse.Namespace):
    """The IdentityCrop the evaluation options ask for."""
    from mien.pipeline.faceprep import IdentityCrop

    return IdentityCrop(method=args.align, flip=args.flip)


def run_identity(args: argparse.Namespace) -> int:
    """Evaluate identity and print the summary."""
    from mien.identity.classifier import MatchThresholds
    from mien.identity.storage import write_json_atomic
    from mien.pipeline.evaluate import evaluate_identity

    rec = build_recognizer(args, emotion=False, identity=False)
    rec.identity_crop = crop_from(args)
    result = evaluate_identity(args.enroll, args.test, rec, MatchThresholds(**thresholds_from(args)),
                               matcher=args.matcher, fpir=args.fpir, progress=lambda items: progress(items, "evaluate"))
    lopo = result["leave_one_person_out"]
    print(f"alignment {result['alignment']}, thresholds {result['thresholds']}")
    print(f"top-1 accuracy: {result['top1_accuracy']:.3f} on {result['test_photos']} photos "
          f"(open-set accuracy {result['open_set_accuracy']:.3f})")
    for p, r in result["per_person"].items():
        print(f"  {p}: {r['top1']}/{r['photos']}")
    print(f"leave-one-person-out: strangers rejected {lopo['stranger_rejection_rate']:.3f}, "
          f"enrolled wrongly rejected {lopo['false_reject_rate']:.3f}")
    curve = result["fnir_at_fpir"]
    for f, r in curve.items():
        if isinstance(r, dict):
            print(f"FNIR {r['fnir']:.3f} at FPIR {r['fpir']} (target {f}, distance threshold {r['distance_threshold']}; "
                  f"{curve['mated_searches']} mated, {curve['nonmated_searches']} non-mated searches)")
    if args.json:
        write_json_atomic(args.json, result)
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    """Embed every image of the pairs once, score them, print the summary (and write JSON / the ROC plot)."""
    import time

    from mien.identity.classifier import SAME_PERSON_DISTANCE
    from mien.identity.storage import write_json_atomic
    from mien.pipeline.errors import UsageError
    from mien.pipeline import verification as v

    if args.lfw_pairs and not args.root:
        raise UsageError("--lfw-pairs needs --root, the folder holding <name>/<name>_<nnnn>.jpg")
    pairs = v.read_lfw_pairs(args.lfw_pairs, args.root) if args.lfw_pairs else v.read_csv_pairs(args.pairs, args.folds)
    rec = build_recognizer(args, emotion=False, identity=False)
    rec.identity_crop = crop_from(args)
    start = time.perf_counter()
    subjects: dict = {}
    embeddings = v.embed_subjects(pairs.images, rec, progress=lambda items: progress(items, "embed"), subjects=subjects)
    seconds = time.perf_counter() - start
    dist = v.pair_distances(pairs, embeddings)
    result = v.score_pairs(dist, pairs.same, pairs.fold, SAME_PERSON_DISTANCE)
    missing = sorted(p for p, e in embeddings.items() if e is None)
    result.update(images=len(embeddings), images_without_face=missing, embedder=rec.embedder.version,
                  identity_crop=rec.identity_crop.signature,
                  ms_per_image=round(1000 * seconds / max(len(embeddings), 1), 1), **v.subject_counts(pairs, subjects))
    print(f"{result['pairs']} pairs ({result['same_pairs']} same person), {result['images']} images, "
          f"{len(missing)} without a face; {result['ms_per_image']} ms/image")
    print(f"found on the relaxed retry: {len(result['images_found_on_retry'])} images ({result['pairs_with_retry_image']} "
          f"pairs); subject not the largest face: {len(result['images_subject_not_largest'])} images of "
          f"{result['images_with_several_faces']} with several faces ({result['pairs_decided_by_subject_rule']} pairs "
          "decided by the subject rule)")
    print(f"{result['folds']}-fold accuracy {100 * result['kfold_accuracy']:.2f} % +- {100 * result['kfold_std']:.2f} "
          f"(thresholds {', '.join(f'{t:.3f}' for t in result['fold_thresholds'])})")
    print(f"accuracy at mien verify's threshold {result['verify_threshold']:.2f}: "
          f"{100 * result['accuracy_at_verify_threshold']:.2f} %; AUC {result['auc']:.4f}; " + "; ".join(
              f"TAR {100 * r['tar']:.2f} % at FAR {far}" for far, r in result["tar_at_far"].items()))
    if args.json:
        write_json_atomic(args.json, result)
    if args.plot:
        v.plot_roc(dist, pairs.same, args.plot, f"{result['folds']}-fold accuracy {100 * result['kfold_accuracy']:.2f} %, "
                   f"AUC {result['auc']:.4f} ({rec.embedder.version[:24]})")
    return 0


def run_emotion(args: argparse.Namespace) -> int:
    """Evaluate the shipped (or --weights) emotion model, through the product's own loader."""
    quiet_tensorflow(getattr(args, "verbose", 0))
    from mien.emotion.training.evaluate import evaluate_dataset, format_report
    from mien.pipeline.models import load_emotion_model

    from mien.pipeline.errors import UsageError

    if args.labels == "ferplus" and not args.ferplus:
        raise UsageError("--labels ferplus needs --ferplus fer2013new.csv (the FER+ votes)")
    from mien.pipeline.runtime import network_precision

    model = load_emotion_model(args.weights, required=True, precision=args.precision, label_set=args.emotion_model)
    if model.label_set == "ferplus" and args.labels != "ferplus":
        raise UsageError(f"{model.version} knows FER+'s 8 emotions: score it on FER+'s labels with --labels ferplus "
                         "--ferplus fer2013new.csv")
    result = evaluate_dataset(model, args.data, args.split, args.json, args.confusion, args.limit,
                              progress=lambda batches: progress(batches, "evaluate", unit="batch"),
                              ferplus=args.ferplus if args.labels == "ferplus" else None,
                              about={"precision": network_precision(args.precision, "emotion")})
    print(format_report(result))
    if args.confusion:
        print(f"confusion matrix: {args.confusion}")
    return 0
