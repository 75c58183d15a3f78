"""``mien batch``: recognize a large photo collection on Ray Data into Parquet (local Ray, or a cluster)."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mien.pipeline.app.cli.common import (add_detection_options, add_emotion_options, add_identity_options, number_in,
                                     new_folder, options_from, positive_int, show_progress)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``batch`` command."""
    b = sub.add_parser("batch", parents=parents, help="recognize a large photo collection on Ray into Parquet",
                       description="Who + emotion for every face of SOURCE (a folder, searched recursively; a text "
                                   "file of paths; or a Parquet/CSV manifest with a 'path' column), written as "
                                   "Parquet shards (one row per face) under OUT/faces/ with OUT/summary.json. "
                                   "Runs on a local Ray by default, or joins a cluster with --address. "
                                   "Needs `pip install 'mien[batch]'`.")
    b.add_argument("source", type=Path, help="folder, text file of paths, or .parquet/.csv manifest")
    b.add_argument("--out", type=new_folder, required=True, help="output folder (Parquet shards + summary.json)")
    b.add_argument("--address", help="join this Ray cluster ('auto' or ray://HOST:10001) instead of starting "
                                     "a local one")
    b.add_argument("--workers", type=positive_int, help="recognize actors (each loads the models once; "
                                                        "default: one per 2 CPUs of the cluster)")
    b.add_argument("--batch-size", type=number_in(int, 1, 4096), default=16, help="photos per batch")
    b.add_argument("--resume", action="store_true", help="continue a job in OUT: photos whose content hash is "
                                                         "already there are skipped")
    add_detection_options(b)
    add_identity_options(b)
    add_emotion_options(b)
    b.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the job and print its summary."""
    from mien.pipeline.batch.job import run_batch

    options = dataclasses.asdict(options_from(args))
    summary = run_batch(args.source, args.out, options=options, matcher=options["matcher"],
                        emotion=not args.no_emotion, address=args.address, workers=args.workers,
                        batch_size=args.batch_size, resume=args.resume, progress=show_progress())
    print(json.dumps(dataclasses.asdict(summary), indent=2))
    print(f"{summary.images_done_now} photos recognized now ({summary.images_skipped_as_done} already done), "
          f"{summary.faces} faces in {args.out / 'faces'}; {summary.images_per_s:.1f} photos/s")
    return 0
