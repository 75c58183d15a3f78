"""mien's error roots: the CLI, the API and the web page report these as one line, never a traceback.

Each package owns one root (``identity`` and ``emotion`` know nothing of each other or of ``pipeline``);
``USER_ERRORS`` gathers them for the places that turn an error into a message and an exit code.
"""
from __future__ import annotations

from mien.emotion.errors import EmotionError
from mien.identity.errors import IdentityError


class MienError(RuntimeError):
    """Base class of pipeline errors a user can act on; the message names the file and the fix."""


class UsageError(MienError):
    """Something the user can fix: a bad path, option, device or database; the message says what."""


USER_ERRORS: tuple[type[Exception], ...] = (MienError, IdentityError, EmotionError)
