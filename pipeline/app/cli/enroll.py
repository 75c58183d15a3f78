"""``mien enroll DIR`` (alias ``mien train-svm``): embed DIR/<person>/*.jpg and train the identity classifier."""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.app.cli.common import (add_detection_options, add_identity_options, build_recognizer, existing_dir,
                                     progress, thresholds_from)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``enroll`` command and its ``train-svm`` alias."""
    configure(sub.add_parser("enroll", parents=parents, aliases=["train-svm"],
                             help="enroll people from DIR/<person>/*.jpg and train the identity classifier",
                             description="Embed every photo of DIR/<person>/ (cached by content) and retrain the SVM."))


def configure(e: argparse.ArgumentParser) -> None:
    """The enroll options and run function (shared by ``enroll``, ``train-svm`` and ``train svm``)."""
    e.add_argument("dir", nargs="?", type=existing_dir, default=Path("enrollment_data"),
                   help="folder with one sub-folder of photos per person")
    add_detection_options(e)
    add_identity_options(e)
    e.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Enroll, then print per-person counts and every skipped photo with its reason."""
    from pipeline.enroll import check_enrollment_dir, enroll_folder

    check_enrollment_dir(args.dir)  # fail fast, before the models load
    rec = build_recognizer(args, emotion=False, identity=False)
    report = enroll_folder(args.dir, rec, thresholds=thresholds_from(args), progress=lambda items: progress(items, "enroll"))
    for p in report.persons:
        line = f"{p.name}: {p.photos} photos, {p.used} used, {len(p.skipped)} skipped"
        print(line if p.used else line + "  <- NOT ENROLLED (no usable photo)")
        for f, why in p.skipped:
            print(f"    skipped {f}: {why}")
    for f, why in report.ignored:
        print(f"ignored {f}: {why}")
    print(f"embedded {report.embedded} new photos ({report.cached} from cache); "
          f"{len(report.enrolled)} people enrolled -> {report.classifier_path}")
    return 0
