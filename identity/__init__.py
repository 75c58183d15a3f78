"""Who is this face: FaceNet embeddings, an embeddings cache, and an open-set linear-SVM classifier.

Members load on first use, so importing ``identity.errors`` (as every command does) does not import scikit-learn.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "UNKNOWN": "identity.match", "IdentityClassifier": "identity.classifier",
    "IdentityMatch": "identity.match", "Thresholds": "identity.classifier",
    "IdentityError": "identity.errors", "ModelFileError": "identity.errors",
    "NotEnrolledError": "identity.errors", "StaleModelError": "identity.errors",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    """Import public API members on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'identity' has no attribute {name!r}")
