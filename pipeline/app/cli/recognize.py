"""``mien recognize PATHS``: who + emotion for every face, one table row per face printed as each image finishes."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from mien.pipeline.app.cli.common import (add_detection_options, add_emotion_options, add_identity_options,
                                          annotates_one_file, build_recognizer, existing_path, json_target,
                                          new_file_or_folder, new_file_or_stdout, number_in, show_progress)
from mien.pipeline.errors import UsageError


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``recognize`` command."""
    r = sub.add_parser("recognize", parents=parents, help="who + emotion for every face in images or folders",
                       description="Who + emotion for every face in images or folders (recursively). "
                                   "Exit 0: all read; 1: some images unreadable; 2: usage or setup problem.")
    r.add_argument("paths", nargs="+", type=existing_path, help="image files, folders or http(s) URLs of photos")
    r.add_argument("--json", type=json_target, metavar="FILE|-",
                   help="write all results (with model versions and thresholds) to this file (- for stdout)")
    r.add_argument("--csv", type=new_file_or_stdout, help="write one row per face to this CSV file (- for stdout)")
    r.add_argument("--annotate", type=new_file_or_folder, metavar="FOLDER|FILE.jpg",
                   help="write annotated copies into this folder (or, for one photo, to this .jpg file)")
    r.add_argument("--candidates", type=number_in(int, 0, 20), default=0, metavar="K",
                   help="also list the K nearest enrolled people with their distances per face (in --json)")
    r.add_argument("--cropped", action="store_true", help="each image is one already-cropped face (no detection)")
    r.add_argument("--db", nargs="?", const="default", help="also store results in the SQLite results database "
                   "(default MIEN_HOME/mien.db)")
    add_detection_options(r)
    add_identity_options(r)
    add_emotion_options(r)
    r.set_defaults(run=run)


def find_images(roots: list[Path | str]) -> list[Path | str]:
    """Every image under ``roots`` (URLs as given); files of other types are reported on stderr, none at all is a
    usage error."""
    from mien.pipeline.images import is_url, scan_images

    images, skipped = [], []
    for root in roots:
        if is_url(root):
            images.append(root)
            continue
        found, other = scan_images(root)
        images.extend(found)
        skipped.extend(other)
    if skipped:
        kinds = Counter(p.suffix.lower() or "(no suffix)" for p in skipped)
        print(f"skipped {len(skipped)} files that are not images mien reads: "
              + ", ".join(f"{n} {k}" for k, n in kinds.most_common()), file=sys.stderr)
    if not images:
        raise UsageError(f"no images found in {', '.join(map(str, roots))} "
                         "(mien reads .jpg .jpeg .png .bmp .webp .tif .tiff .gif)")
    return images


def run(args: argparse.Namespace) -> int:
    """Recognize, stream the table, then write the JSON / CSV / annotated copies / database rows asked for. With
    ``--json -`` or ``--csv -`` standard output carries that document alone (the table is left out)."""
    from tqdm import tqdm

    from mien.pipeline.app.outputs import StreamingTable, table_rows, terminal_safe

    if args.json == "-" and args.csv == "-":
        raise UsageError("--json - and --csv - would share standard output; send one of them to a file")
    paths = find_images(args.paths)
    annotate_file = args.annotate is not None and annotates_one_file(args.annotate)
    if annotate_file and len(paths) > 1:
        raise UsageError(f"--annotate {args.annotate}: a file takes one annotated photo, but {len(paths)} photos were "
                         "given; give a folder")
    store = open_db(args.db) if args.db else None  # a bad database path fails before the models load
    rec = build_recognizer(args)
    table = None
    if "-" not in (args.json, args.csv):
        table = StreamingTable.for_answers(rec.matcher.persons if rec.matcher is not None else (),
                                           rec.emotion_model.labels if rec.emotion_model is not None else ())
    csv_out = CsvOutput(args.csv, rec) if args.csv else None
    records, failed = [], 0
    with tqdm(total=len(paths), unit="photo", desc="recognize", leave=False,
              disable=not show_progress()) as bar:
        if table is not None:
            tqdm.write(table.header())
        for record, image in rec.recognize_paths(paths, cropped=args.cropped):
            records.append(record)
            if table is not None:
                for row in table_rows(record):
                    tqdm.write(table.line(row))
            if csv_out is not None:
                csv_out.add(record)
            if record.error:
                failed += 1
                print(f"error: {terminal_safe(record.error)}", file=sys.stderr)
            elif args.annotate:
                from mien.pipeline.app.outputs import write_annotated

                write_annotated(image, record, args.annotate, as_file=annotate_file)
            if store is not None:
                store_record(store, rec, record, "cli")
            bar.update(1)
    if csv_out is not None:
        csv_out.close()
    if args.json:
        from mien.pipeline.app.outputs import write_results_json
        from mien.pipeline.provenance import model_versions, thresholds_used

        write_results_json(args.json, records, model_versions(rec), thresholds_used(rec))
    if failed:
        print(f"{failed} of {len(paths)} images could not be read (rows marked ERROR)", file=sys.stderr)
    return 1 if failed else 0


class CsvOutput:
    """One CSV row per face, streamed to stdout (``-``) or written to a file atomically when the run ends."""

    def __init__(self, target, rec):
        import csv
        import io

        from mien.pipeline.app.outputs import CSV_COLUMNS

        self.target = target
        self.emotions = tuple(rec.emotion_model.labels) if rec.emotion_model is not None else ()
        self.buffer = sys.stdout if target == "-" else io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")
        self.writer.writerow([*CSV_COLUMNS, *(f"p_{e}" for e in self.emotions)])

    def add(self, record) -> None:
        from mien.pipeline.app.outputs import csv_rows

        self.writer.writerows(csv_rows(record, self.emotions))
        if self.target == "-":
            sys.stdout.flush()

    def close(self) -> None:
        if self.target != "-":
            from mien.identity.storage import atomic_path

            with atomic_path(self.target) as tmp:
                tmp.write_text(self.buffer.getvalue(), encoding="utf-8")


def open_db(path: str):
    """The results database (its errors are usage errors, reported by main)."""
    from mien.pipeline.history import ResultsDB

    return ResultsDB(None if path == "default" else path)


def store_record(store, rec, record, source: str) -> None:
    """Add one recognized image to the results database, with its file hash, thresholds and model versions."""
    from mien.identity.storage import content_hash
    from mien.pipeline.provenance import model_versions, thresholds_used

    try:
        digest = content_hash(Path(record.file).read_bytes())
    except OSError:
        digest = None
    store.add(record, image_sha256=digest, thresholds=thresholds_used(rec), models=model_versions(rec), source=source)
