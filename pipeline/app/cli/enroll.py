"""``mien enroll DIR`` (alias ``mien train-svm``): merge DIR/<person>/*.jpg into the gallery."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mien.pipeline.app.cli.common import (add_detection_options, add_identity_options, build_recognizer, existing_dir,
                                     progress, thresholds_from)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``enroll`` command and its ``train-svm`` alias."""
    configure(sub.add_parser("enroll", parents=parents, aliases=["train-svm"],
                             help="enroll people from DIR/<person>/*.jpg into the gallery",
                             description="Embed every photo of DIR/<person>/ (cached by content) and merge the people "
                                         "into the gallery: each person in DIR gets exactly DIR's photos (photos added "
                                         "with `mien people add` or the API are kept); other people are untouched "
                                         "unless --replace."))


def configure(e: argparse.ArgumentParser) -> None:
    """The enroll options and run function (shared by ``enroll``, ``train-svm`` and ``train svm``)."""
    e.add_argument("dir", nargs="?", type=existing_dir, default=Path("enrollment_data"),
                   help="folder with one sub-folder of photos per person")
    e.add_argument("--replace", action="store_true",
                   help="make DIR the whole gallery: people not in DIR are forgotten (and listed)")
    add_detection_options(e, one_subject=True)
    add_identity_options(e, matcher=False)
    e.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Enroll, then print per-person counts, every skipped photo with its reason, and what changed."""
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.enroll import check_enrollment_dir, enroll_folder, is_unreadable

    check_enrollment_dir(args.dir)  # fail fast, before the models load
    rec = build_recognizer(args, emotion=False, identity=False)
    report = enroll_folder(args.dir, rec, replace=args.replace, thresholds=thresholds_from(args),
                           progress=lambda items: progress(items, "enroll"))
    for p in report.persons:
        line = f"{terminal_safe(p.name)}: {p.photos} photos, {p.used} used, {len(p.skipped)} skipped"
        print(line if p.used else line + "  <- NOT ENROLLED (no usable photo)")
        for f, why in p.skipped:
            print(f"    skipped {terminal_safe(f)}: {why}")
    for f, why in report.ignored:
        print(f"ignored {terminal_safe(f)}: {why}")
    for photo, person, others in report.shared:
        print(f"warning: {terminal_safe(photo)} is enrolled for {terminal_safe(person)} and also for "
              f"{', '.join(map(terminal_safe, others))}")
    for name in report.forgotten:
        print(f"forgotten (not in {args.dir}, --replace): {terminal_safe(name)}")
    print(f"embedded {report.embedded} new photos ({report.cached} from cache); {len(report.enrolled)} people from "
          f"{args.dir}: {report.added} faces added, {report.removed} removed -> {report.gallery}")
    unreadable = sum(is_unreadable(why) for p in report.persons for _, why in p.skipped)
    if unreadable or report.ignored:  # the rest is enrolled; exit 1 as recognize does for unreadable inputs
        print(f"{unreadable} photos could not be read and {len(report.ignored)} entries were ignored (listed above)",
              file=sys.stderr)
        return 1
    return 0
