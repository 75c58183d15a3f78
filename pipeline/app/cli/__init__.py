"""The ``mien`` command line: one module per command, each owning its arguments and its run function.

Nothing heavy is imported to build the parser: TensorFlow and the models load only inside the run functions
of the commands that need them, after every path and value has been validated.
Exit codes: 0 ran; 1 some inputs were unreadable; 2 a usage or setup problem (message on stderr).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib import import_module
from typing import Sequence

from mien.pipeline.app.cli.common import HelpFormatter, verbosity_parent

# Modules under pipeline.app.cli, in the order their commands are listed by `mien --help`.
COMMAND_MODULES = ("models", "enroll", "people", "recognize", "batch", "history", "serve", "video", "faces", "evaluate",
                   "train")


def version() -> str:
    """The installed mien version."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("mien")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The full parser; every subcommand takes -v/-q and shows its defaults in --help."""
    ap = argparse.ArgumentParser(prog="mien", formatter_class=HelpFormatter,
                                 description="Face identity + emotion recognition: who is in a photo, and how they feel.",
                                 epilog="Run `mien COMMAND --help` for a command's options.")
    ap.add_argument("--version", action="version", version=f"mien {version()}")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    ap.add_argument("-q", "--quiet", action="store_true", help="errors only: no warnings, no progress bars")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub._parser_class = _subparser_class()
    parents = [verbosity_parent()]
    for name in COMMAND_MODULES:
        import_module(f"mien.pipeline.app.cli.{name}").register(sub, parents)
    return ap


def _subparser_class():
    """argparse.ArgumentParser with mien's help formatter (so every subcommand shows its defaults)."""

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("formatter_class", HelpFormatter)
            super().__init__(*args, **kwargs)

        def add_subparsers(self, **kwargs):
            action = super().add_subparsers(**kwargs)
            action._parser_class = Parser
            return action

    return Parser


def configure_logging(verbose: int, quiet: bool) -> None:
    """Warnings by default, -v info, -vv debug, -q errors only (also silences progress bars)."""
    level = logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    if quiet:
        os.environ["MIEN_QUIET"] = "1"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run the command, and turn user errors into one line on stderr and exit code 2."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (2, message already printed), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    configure_logging(args.verbose, args.quiet)
    from mien.pipeline.errors import USER_ERRORS

    try:
        return args.run(args)
    except USER_ERRORS as exc:
        from mien.pipeline.app.outputs import terminal_safe

        print(f"mien: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
