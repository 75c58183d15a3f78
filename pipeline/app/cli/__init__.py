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
    ap = Parser(prog="mien",
                                 description="Face identity + emotion recognition: who is in a photo, and how they feel.",
                                 epilog="Run `mien COMMAND --help` for a command's options.")
    ap.add_argument("--version", action="version", version=f"mien {version()}")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    ap.add_argument("-q", "--quiet", action="store_true", help="errors only: no warnings, no progress bars")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = [verbosity_parent()]
    for name in COMMAND_MODULES:
        import_module(f"mien.pipeline.app.cli.{name}").register(sub, parents)
    return ap


class Parser(argparse.ArgumentParser):
    """argparse with mien's help formatter (every command shows its defaults), usage errors as one line plus a
    hint instead of the whole usage block, and "did you mean" for a mistyped command, choice or option."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs):
        action = super().add_subparsers(**kwargs)
        action._parser_class = Parser
        return action

    def error(self, message: str):
        from mien.pipeline.app.outputs import terminal_safe

        if message.startswith("the following arguments are required: ") and message.split(": ", 1)[1] in (
                "COMMAND", "VERB"):  # a bare `mien` or `mien people`: the list of what it can do
            self.print_help()
            raise SystemExit(0)

        hint = _did_you_mean(self, message)
        print(f"{self.prog}: error: {terminal_safe(message)}{hint}\nRun `{self.prog} --help` for its options.",
              file=sys.stderr)
        raise SystemExit(2)


def _did_you_mean(parser: argparse.ArgumentParser, message: str) -> str:
    """A close match for the bad command, choice or option named in an argparse error message, as a hint."""
    import difflib
    import re

    if m := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message):
        word, options = m.group(1), re.findall(r"'([^']*)'", m.group(2)) or m.group(2).split(", ")
    elif m := re.search(r"unrecognized arguments: (\S+)", message):
        word = m.group(1).split("=")[0]
        options = sorted(_all_options(parser))  # argparse reports a subcommand's stray option from the top parser
    else:
        return ""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands, at any depth."""
    found = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _all_options(sub)
    return found


def configure_logging(verbose: int, quiet: bool) -> None:
    """Warnings by default, -v info, -vv debug, -q errors only (also silences progress bars). Python warnings of
    the libraries go through the same logging (so -q silences them), and OpenCV's own log (a missing webcam's
    two backend warnings before mien's one-line error) shows only with -v."""
    level = logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    logging.captureWarnings(True)
    os.environ["OPENCV_LOG_LEVEL"] = "ERROR" if quiet or not verbose else ("WARNING" if verbose == 1 else "DEBUG")
    if "cv2" in sys.modules:  # read at import: an embedding program may have imported OpenCV already
        import cv2

        cv2.utils.logging.setLogLevel(getattr(cv2.utils.logging, f"LOG_LEVEL_{os.environ['OPENCV_LOG_LEVEL']}"))
    if quiet:
        from mien.pipeline import settings

        settings.set_quiet()


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
        return _report(str(exc))
    except BrokenPipeError:  # `mien ... | head`: the reader left; no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 141
    except OSError as exc:
        import errno

        if exc.errno == errno.ENOSPC:
            where = f" writing {exc.filename}" if exc.filename else ""
            return _report(f"the disk is full{where}; free some space and run the command again (files mien "
                           "writes appear whole or not at all, and the gallery is unchanged).")
        raise
    except KeyboardInterrupt:
        return 130


def _report(message: str) -> int:
    """A user error as one line on stderr (terminal escapes neutralised); exit code 2."""
    from mien.pipeline.app.outputs import terminal_safe

    print(f"mien: error: {terminal_safe(message)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
