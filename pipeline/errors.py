"""The pipeline's errors under mien's one root (``mien.errors.MienError``, also the root of identity's and
emotion's): the CLI, the API and the web page report any of them as one line, never a traceback.
"""
from __future__ import annotations

from mien.errors import MienError


class UsageError(MienError):
    """Something the user can fix: a bad path, option, device or database; the message says what."""


USER_ERRORS: tuple[type[Exception], ...] = (MienError,)  # what turns into one line and exit code 2
