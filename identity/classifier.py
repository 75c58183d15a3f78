"""Who is this face: a linear SVM over enrolled embeddings plus an open-set check for strangers.

A face is named only when (a) the calibrated SVM probability of the predicted person and
(b) the distance to that person's nearest enrolled embedding both pass the thresholds. With a
single enrolled person there is no SVM: distance alone decides. The SVM is never stored: it is
refit in memory from the gallery (identity.gallery), which holds the embeddings.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

# scikit-learn imports pandas (and pandas pyarrow) whenever they are installed, only to recognise DataFrames, which
# mien never gives it: 63 MB of peak memory and 0.45 s of every `mien recognize` (measured on the demo folder,
# 2026-12-05). Unless the process already has pandas, it is hidden while scikit-learn loads (a None entry makes
# `import pandas` fail, and scikit-learn goes on without it), then unhidden for anyone who imports it later.
if "pandas" not in sys.modules:
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC
    finally:
        if sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]
else:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

from mien.identity.errors import NotEnrolledError
from mien.identity.match import UNKNOWN, IdentityMatch  # noqa: F401 (re-exported)
from mien.identity.svm_proba import fast_predict_proba

# Defaults chosen by leave-one-person-out evaluation on the 5-celebrity *train* photos (see README).
DEFAULT_DISTANCE_THRESHOLD = 0.95
DEFAULT_PROBABILITY_THRESHOLD = 0.5
# One-to-one verification ("same person?") is its own decision, calibrated on pairs: on the 3217 different-person
# pairs of the demo *train* photos, 3 (0.09 %) are within 1.10 (none within 1.08); 80.6 % of the 788 same-person
# pairs are. On the held-out val photos: 45 of 50 same-person pairs pass, 0 of 250 different-person pairs.
VERIFY_DISTANCE_THRESHOLD = 1.10


@dataclass(frozen=True)
class Thresholds:
    distance: float = DEFAULT_DISTANCE_THRESHOLD
    probability: float = DEFAULT_PROBABILITY_THRESHOLD


class IdentityClassifier:
    """Linear SVM with calibrated probabilities + nearest-embedding distance, over L2-normalised embeddings."""

    def __init__(self, embeddings: np.ndarray, labels: list[str], embedder_version: str,
                 thresholds: Thresholds = Thresholds()):
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(embeddings) == 0:
            raise NotEnrolledError("no enrolled embeddings: enroll at least one person with `mien enroll`.")
        if len(embeddings) != len(labels):
            raise ValueError("embeddings and labels differ in length")
        self.embeddings = embeddings
        self.labels = np.asarray(labels)
        self.persons = sorted(set(labels))
        self.embedder_version = embedder_version
        self.thresholds = thresholds
        self.svm = self._fit_svm() if len(self.persons) > 1 else None
        # scikit-learn's own predict_proba unless the NumPy form reproduces it (identity.svm_proba: 8x faster a call)
        self._proba = None if self.svm is None else (fast_predict_proba(self.svm, self.embeddings)
                                                       or self.svm.predict_proba)

    def _fit_svm(self) -> CalibratedClassifierCV:
        counts = [int((self.labels == p).sum()) for p in self.persons]
        folds = min(5, min(counts))
        if folds >= 2:
            model = CalibratedClassifierCV(SVC(kernel="linear"), ensemble=False, cv=folds)
        else:  # a person with a single photo: calibrate the SVM fitted on everything on the training set itself
            from sklearn.frozen import FrozenEstimator

            frozen = FrozenEstimator(SVC(kernel="linear").fit(self.embeddings, self.labels))
            everything = np.arange(len(self.labels))
            # one "fold" holding every photo: the frozen SVM is not refitted, and no k-fold split can fail on a
            # gallery smaller than k (3 photos of 2 people crashed the default 5 folds)
            model = CalibratedClassifierCV(frozen, cv=[(everything, everything)])
        return model.fit(self.embeddings, self.labels)
        return model.fit(self.embeddings, self.labels)

    @property
    def counts(self) -> dict[str, int]:
        return {p: int((self.labels == p).sum()) for p in self.persons}

    def predict(self, embeddings: np.ndarray, thresholds: Thresholds | None = None) -> list[IdentityMatch]:
        """One IdentityMatch per embedding row; ``unknown`` unless probability and distance both pass."""
        th = thresholds or self.thresholds
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(embeddings) == 0:
            return []
        dists = np.linalg.norm(embeddings[:, None, :] - self.embeddings[None, :, :], axis=-1)
        if self.svm is not None:
            proba = self._proba(embeddings)
            classes = list(self.svm.classes_)
            best = proba.argmax(axis=1)
            candidates = [classes[i] for i in best]
            confidences = proba[np.arange(len(best)), best]
        else:
            candidates = [self.persons[0]] * len(embeddings)
            confidences = np.ones(len(embeddings))
        out = []
        for i, person in enumerate(candidates):
            distance = float(dists[i, self.labels == person].min())
            conf = float(confidences[i])
            accepted = distance <= th.distance and (self.svm is None or conf >= th.probability)
            out.append(IdentityMatch(person if accepted else UNKNOWN, conf, distance, person))
        return out
