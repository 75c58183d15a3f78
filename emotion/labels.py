"""Emotion label sets shared by data loaders, training and inference.

``fer2013``: FER2013's 7 emotions in its label order. ``ferplus``: the FER+ relabelling's 8 (contempt added), the 7
in the same order so that a 7-class model's scores line up with the first 7 of an 8-class one."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES: int = len(EMOTIONS)
FERPLUS_EMOTIONS: tuple[str, ...] = EMOTIONS + ("contempt",)
LABEL_SETS: dict[str, tuple[str, ...]] = {"fer2013": EMOTIONS, "ferplus": FERPLUS_EMOTIONS}


def label_set_name(labels: tuple[str, ...] | list[str]) -> str:
    """The name of a model's label set (``LABEL_SETS``); ValueError for any other list."""
    for name, known in LABEL_SETS.items():
        if tuple(labels) == known:
            return name
    raise ValueError(f"labels {list(labels)} are neither FER2013's 7 nor FER+'s 8 emotions")
