"""The root of every error the emotion package raises for something a user can fix (a file, a dataset)."""
from __future__ import annotations

from mien.errors import MienError


class EmotionError(MienError):
    """Base class of emotion errors; the message names the file and the fix."""


class TrainingError(EmotionError):
    """A training run or export cannot go on as asked (an existing run, a wrong dataset, a tampered file)."""
