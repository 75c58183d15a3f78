"""mien's composition layer: detection, alignment, the Recognizer API, CLI, outputs."""
from __future__ import annotations

__all__ = ["Recognizer", "Options"]


def __getattr__(name):  # lazy, so `import pipeline` does not import TensorFlow
    if name in __all__:
        from mien.pipeline import recognizer

        return getattr(recognizer, name)
    raise AttributeError(name)
