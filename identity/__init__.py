"""Who is this face: FaceNet embeddings, an embeddings cache, and an open-set linear-SVM classifier.

Members load on first use, so importing ``mien.identity.errors`` (as every command does) does not import scikit-learn.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "UNKNOWN": "mien.identity.match", "IdentityClassifier": "mien.identity.classifier",
    "IdentityMatch": "mien.identity.match", "Thresholds": "mien.identity.classifier",
    "MatchThresholds": "mien.identity.classifier",
    "IdentityError": "mien.identity.errors", "ModelFileError": "mien.identity.errors",
    "NotEnrolledError": "mien.identity.errors", "StaleModelError": "mien.identity.errors",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    """Import public API members on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'identity' has no attribute {name!r}")
