"""The one root of mien's errors: everything a user can act on is a ``MienError`` whose message names the file,
person or option and the fix. Each package derives its own from it (``identity.errors.IdentityError``,
``emotion.errors.EmotionError``, ``pipeline.errors.UsageError``), so the CLI, the API and the web page report any of
them as one line (CLI exit code 2, an HTTP 4xx), never as a traceback.
"""
from __future__ import annotations


class MienError(RuntimeError):
    """Base class of every error a user can act on; the message says what happened and what to do."""
