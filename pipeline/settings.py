"""Every environment variable mien reads, in one place: its name, meaning, default and check.

Code elsewhere asks these functions, never ``os.environ`` for a ``MIEN_*`` name (tests/test_layout.py checks), so
`docs/commands.md` can list them all from here and a bad value is one clear error naming the variable.
"""
from __future__ import annotations

import os
from pathlib import Path

from mien.pipeline.errors import UsageError

HOME = "MIEN_HOME"  # where mien writes: fetched weights, the gallery, caches, the results database
GALLERY_URL = "MIEN_GALLERY_URL"  # the gallery elsewhere: a SQLite path or postgresql://user@host/db
API_TOKEN = "MIEN_API_TOKEN"  # the bearer token `mien serve` requires for changing enrolled people
MAX_IMAGE_PIXELS = "MIEN_MAX_IMAGE_PIXELS"  # the largest image decoded, in pixels (default 50 million)
THREADS = "MIEN_THREADS"  # threads per inference (default: the CPUs this process may use, at most 4)
EMOTION_WEIGHTS = "MIEN_EMOTION_WEIGHTS"  # another emotion weights file (its model.json beside it)
QUIET = "MIEN_QUIET"  # set to 1 by `-q`: no progress bars
BATCH_TRACE = "MIEN_BATCH_TRACE"  # benchmarks/batch.py: a file where batch workers list the photos they did

ALL = (HOME, GALLERY_URL, API_TOKEN, MAX_IMAGE_PIXELS, THREADS, EMOTION_WEIGHTS, QUIET, BATCH_TRACE)
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000


class SettingError(UsageError):
    """An environment variable of mien holds a value it cannot use; the message names the variable."""


def _text(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _positive_int(name: str) -> int | None:
    text = _text(name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingError(f"{name}={text!r}: expected a whole number of at least 1 (or unset it).")
    return value


def home() -> Path | None:
    """``$MIEN_HOME`` as a path, or None when unset (see ``pipeline.home.mien_home`` for the default)."""
    text = _text(HOME)
    return Path(text).expanduser() if text else None


def gallery_url() -> str | None:
    """``$MIEN_GALLERY_URL``, or None: the gallery in MIEN_HOME."""
    return _text(GALLERY_URL)


def api_token() -> str | None:
    """``$MIEN_API_TOKEN`` without surrounding whitespace (a token copied with its newline is the same token)."""
    return _text(API_TOKEN)


def max_image_pixels() -> int:
    """``$MIEN_MAX_IMAGE_PIXELS``, else 50 million (larger than any camera photo)."""
    return _positive_int(MAX_IMAGE_PIXELS) or DEFAULT_MAX_IMAGE_PIXELS


def threads() -> int | None:
    """``$MIEN_THREADS``, or None: as many as the CPUs allow (at most 4)."""
    return _positive_int(THREADS)


def set_threads(n: int) -> None:
    """Give this process (a batch worker sharing the machine with others) ``n`` threads per inference."""
    os.environ[THREADS] = str(n)


def emotion_weights() -> Path | None:
    """``$MIEN_EMOTION_WEIGHTS`` as a path, or None: the shipped model."""
    text = _text(EMOTION_WEIGHTS)
    return Path(text).expanduser() if text else None


def quiet() -> bool:
    """Whether ``-q`` was given (progress bars off)."""
    return os.environ.get(QUIET) == "1"


def set_quiet() -> None:
    os.environ[QUIET] = "1"


def batch_trace() -> str | None:
    """``$MIEN_BATCH_TRACE``: benchmarks/batch.py's trace file, or None."""
    return _text(BATCH_TRACE)
