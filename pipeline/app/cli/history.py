"""``mien history``: query the results database (no model is loaded)."""
from __future__ import annotations

import argparse

from mien.pipeline.app.cli.common import add_json_option, positive_int


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``history`` command."""
    h = sub.add_parser("history", parents=parents, help="query the results database",
                       description="Past recognitions stored with --db, newest first.")
    h.add_argument("--person", help="only recognitions where this person was seen")
    h.add_argument("--emotion", help="only recognitions where a face showed this emotion (with --person: theirs)")
    h.add_argument("--since", type=since_timestamp, help="only recognitions at or after this date/time "
                   "(ISO 8601, e.g. 2024-05-31)")
    h.add_argument("--limit", type=positive_int, help="at most N recognitions")
    add_json_option(h, "the recognitions (instead of a table)")
    h.add_argument("--db", default="default", help="results database (default: MIEN_HOME/mien.db)")
    h.set_defaults(run=run)


def since_timestamp(text: str) -> float:
    """--since as a Unix timestamp; a malformed date is a usage error."""
    from mien.pipeline.history import DatabaseError, parse_since

    try:
        return parse_since(text)
    except DatabaseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Print the matching recognitions."""
    import sys

    from mien.pipeline.history import ResultsDB, default_db_path, history_rows
    from mien.pipeline.app.outputs import format_table, terminal_safe

    path = default_db_path() if args.db == "default" else args.db
    if args.db == "default" and not default_db_path().is_file():
        print(f"no recognitions stored yet ({path}); `mien recognize ... --db` stores them", file=sys.stderr)
        return 0
    store = ResultsDB(path, create=False)
    try:
        damage = store.quick_check()
        if damage:
            print(f"warning: {path} is damaged ({'; '.join(damage[:3])}); recognitions may be missing. Recover "
                  f"what is left with `sqlite3 {path} .recover | sqlite3 recovered.db`.", file=sys.stderr)
        found = store.query(person=args.person, since=args.since, limit=args.limit, emotion=args.emotion)
        for problem in store.unreadable:
            print(f"warning: skipped an unreadable row: {terminal_safe(problem)}", file=sys.stderr)
    finally:
        store.close()
    if args.json:
        from mien.pipeline.app.outputs import write_json

        write_json(args.json, found)
    else:
        print(format_table(history_rows(found), header=("time", "source", "file", "face", "who", "emotion")))
    return 0
