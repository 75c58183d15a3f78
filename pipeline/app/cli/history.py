"""``mien history``: query the results database (no model is loaded)."""
from __future__ import annotations

import argparse
import json

from pipeline.app.cli.common import positive_int


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``history`` command."""
    h = sub.add_parser("history", parents=parents, help="query the results database",
                       description="Past recognitions stored with --db, newest first.")
    h.add_argument("--person", help="only recognitions where this person was seen")
    h.add_argument("--since", type=since_timestamp, help="only recognitions at or after this date/time "
                   "(ISO 8601, e.g. 2024-05-31)")
    h.add_argument("--limit", type=positive_int, help="at most N recognitions")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    h.add_argument("--db", default="default", help="results database (default: MIEN_HOME/mien.db)")
    h.set_defaults(run=run)


def since_timestamp(text: str) -> float:
    """--since as a Unix timestamp; a malformed date is a usage error."""
    from pipeline.app.db import DatabaseError, parse_since

    try:
        return parse_since(text)
    except DatabaseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Print the matching recognitions."""
    from pipeline.app.cli.recognize import open_db
    from pipeline.app.db import history_rows
    from pipeline.app.outputs import format_table

    store = open_db(args.db)
    try:
        found = store.query(person=args.person, since=args.since, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        print(format_table(history_rows(found), header=("time", "source", "file", "face", "who", "emotion")))
    return 0
