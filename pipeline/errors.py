"""Errors of the serve/video/history commands that the CLI reports as one line (exit 2), never a traceback."""
from __future__ import annotations


class UsageError(RuntimeError):
    """Something the user can fix: a bad path, option, device or database; the message says what."""
