"""``mien train emotion|svm`` and ``mien export emotion``: the training scripts, with emotion's own options."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``train emotion``, ``train svm`` and ``export emotion``."""
    from mien.emotion.training import options
    from mien.pipeline.app.cli import enroll

    t = sub.add_parser("train", parents=parents, help="train a model",
                       description="Train the emotion network or the identity SVM.").add_subparsers(dest="what",
                                                                                                     required=True)
    te = t.add_parser("emotion", parents=parents, help="train the emotion network on FER2013 (resumable)",
                      description="Train the emotion network on FER2013: resumable, checkpointed, selected on "
                                  "PublicTest. Continue the shipped model's schedule with --init-from models/emotion.")
    options.add_arguments(te)
    te.set_defaults(run=run_train_emotion)
    ts = t.add_parser("svm", parents=parents, help="retrain the identity SVM from DIR (same as `mien enroll`)")
    enroll.configure(ts)

    x = sub.add_parser("export", parents=parents, help="export a trained model for shipping",
                       description="Export a training run.").add_subparsers(dest="what", required=True)
    xe = x.add_parser("emotion", parents=parents, help="float16 export of a run's best epoch, only if it beats "
                      "the shipped model on PublicTest",
                      description="Export a run's best epoch as the shipped float16 model, only if it beats the "
                                  "shipped one on PublicTest (re-evaluated through the product's inference path).")
    options.add_export_arguments(xe)
    xe.set_defaults(run=run_export_emotion)


def run_train_emotion(args: argparse.Namespace) -> int:
    """Train (or resume) the emotion network."""
    from mien.pipeline.app.cli.common import quiet_tensorflow

    quiet_tensorflow(getattr(args, "verbose", 0))
    from mien.emotion.training import options

    args = options.finish_args(args)
    if args.arch == "facenet" and not args.backbone_weights and not args.init_from:
        from mien.pipeline import assets

        args.backbone_weights = str(assets.fetch("facenet"))  # the weights `mien models fetch` keeps
    if args.tune:
        from mien.emotion.training import tune

        tune.tune(args)
    else:
        from mien.emotion.training import train

        train.train(args)
    return 0


def run_export_emotion(args: argparse.Namespace) -> int:
    """Export a run."""
    from mien.pipeline.app.cli.common import quiet_tensorflow

    quiet_tensorflow(getattr(args, "verbose", 0))
    from mien.emotion.training import export

    return export.run(args)
