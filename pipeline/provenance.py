"""What produced a result: model versions and thresholds, stored with every output mien writes."""
from __future__ import annotations

import hashlib

import numpy as np


def classifier_fingerprint(classifier) -> str | None:
    """Short hash of a matcher's enrolled faces and labels (changes on every enrollment)."""
    if classifier is None:
        return None
    if getattr(classifier, "fingerprint", None):
        return classifier.fingerprint
    h = hashlib.sha256(np.ascontiguousarray(classifier.embeddings, dtype=np.float32).tobytes())
    h.update("\0".join(map(str, classifier.labels)).encode())
    return h.hexdigest()[:16]


def model_versions(recognizer) -> dict[str, str | None]:
    """Versions of the detector, embedder, identity classifier and emotion model of a Recognizer."""
    return {
        "detector": getattr(recognizer.detector, "signature", recognizer.detector.name),
        "embedder": recognizer.embedder.version,
        "classifier": classifier_fingerprint(recognizer.matcher),
        "emotion": recognizer.emotion_model.version if recognizer.emotion_model else None,
        "emotion_labels": recognizer.emotion_model.label_set if recognizer.emotion_model else None,
        "precision": recognizer.precision,
    }


def thresholds_used(recognizer) -> dict:
    """The identity and emotion thresholds a Recognizer applies now."""
    th = recognizer.thresholds()
    return {"identity": {"distance": th.distance, "probability": th.probability} if th else None,
            "emotion": recognizer.options.emotion_threshold}
