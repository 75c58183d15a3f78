"""Who is this face: a linear SVM over enrolled embeddings plus an open-set check for strangers.

A face is named only when (a) the calibrated SVM probability of the predicted person and
(b) the distance to that person's nearest enrolled embedding both pass the thresholds. With a
single enrolled person there is no SVM: distance alone decides. The SVM is fitted from the gallery
(identity.gallery), which holds the embeddings; its probabilities' arrays may be handed back from an earlier fit
on the same embeddings (``fitted``: identity.upkeep keeps them between runs), which needs no scikit-learn.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from mien.identity.errors import NotEnrolledError
from mien.identity.match import UNKNOWN, Candidate, IdentityMatch  # noqa: F401 (re-exported)
from mien.identity.svm_proba import LinearSVMProba, fast_predict_proba

# "Same person" is one distance for recognition (a face and a person's nearest enrolled photo) and for
# verification (two photos). Measured 2026-12-07 (benchmarks/same_person.py): on the 118 demo photos, leave one
# out, 1.00 names every photo right by its nearest other photo (0.95: 98.3 %) and names none of them as another
# person when their own person is left out of the gallery (1.10: 6.8 %, as a stranger meets ~90 photos, not one);
# of the 5549 different-person demo pairs none is within 1.00. On lfw-dev's 1800 pairs 1.00 scores 99.00 % (1.05:
# 99.11 %; 0.95: 98.11 %). 1.05 measured as well on these sets, but named a small stranger in the background of a
# demo photo elton_john at 1.04: a stranger's face meets every enrolled photo, so recognition keeps the margin.
SAME_PERSON_DISTANCE = 1.00
DEFAULT_PROBABILITY_THRESHOLD = 0.5  # the SVM must also give the person at least this probability to name them


@dataclass(frozen=True)
class MatchThresholds:
    """When a matcher names a face: within ``distance`` of the person's nearest enrolled photo and, for the SVM,
    with at least ``probability``."""

    distance: float = SAME_PERSON_DISTANCE
    probability: float = DEFAULT_PROBABILITY_THRESHOLD


Thresholds = MatchThresholds  # the old name (three classes were called Thresholds), kept for existing imports


def nearest_people(dists: np.ndarray, labels: np.ndarray, persons: list[str], k: int) -> list[tuple[Candidate, ...]]:
    """Per row of ``dists`` (face x enrolled photo), the ``k`` people whose nearest photo is closest, closest first."""
    per_person = np.stack([dists[:, labels == p].min(axis=1) for p in persons], axis=1)
    order = np.argsort(per_person, axis=1, kind="stable")[:, :k]
    return [tuple(Candidate(persons[j], float(row[j])) for j in cols) for row, cols in zip(per_person, order)]


def _sklearn():
    """scikit-learn's calibrated SVC, imported only to fit one (a saved fit needs none of it: ~1 s of a cold start).

    scikit-learn imports pandas (and pandas pyarrow) whenever they are installed, only to recognise DataFrames, which
    mien never gives it: 63 MB of peak memory and 0.45 s of every `mien recognize` (measured on the demo folder,
    2026-12-05). Unless the process already has pandas, it is hidden while scikit-learn loads (a None entry makes
    `import pandas` fail, and scikit-learn goes on without it), then unhidden for anyone who imports it later."""
    hide = "pandas" not in sys.modules
    if hide:
        sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC
    finally:
        if hide and sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]
    return CalibratedClassifierCV, SVC


class IdentityClassifier:
    """Linear SVM with calibrated probabilities + nearest-embedding distance, over L2-normalised embeddings."""

    def __init__(self, embeddings: np.ndarray, labels: list[str], embedder_version: str,
                 thresholds: MatchThresholds = MatchThresholds(), fitted: LinearSVMProba | None = None):
        """``fitted``: the SVM's probabilities saved from an earlier fit on these same embeddings (``fitted_svm``);
        without it the SVM is fitted now (scikit-learn)."""
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
        self.svm = None  # scikit-learn's fitted model, when fitted in this process
        if len(self.persons) < 2:
            self._proba, self.classes = None, self.persons
        elif fitted is not None and list(fitted.classes) == self.persons:
            self._proba, self.classes = fitted, list(fitted.classes)
        else:
            self.svm = self._fit_svm()
            self.classes = list(self.svm.classes_)
            # scikit-learn's own predict_proba unless the NumPy form reproduces it (identity.svm_proba: 8x faster)
            self._proba = fast_predict_proba(self.svm, self.embeddings) or self.svm.predict_proba

    @property
    def fitted_svm(self) -> LinearSVMProba | None:
        """The SVM's probabilities as arrays that can be saved and handed back (None without an SVM, or where only
        scikit-learn's own predict_proba reproduces the fit)."""
        return self._proba if isinstance(self._proba, LinearSVMProba) else None

    def _fit_svm(self):
        CalibratedClassifierCV, SVC = _sklearn()
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

    @property
    def counts(self) -> dict[str, int]:
        return {p: int((self.labels == p).sum()) for p in self.persons}

    def predict(self, embeddings: np.ndarray, thresholds: MatchThresholds | None = None,
                candidates: int = 0) -> list[IdentityMatch]:
        """One IdentityMatch per embedding row; ``unknown`` unless probability and distance both pass, and then the
        closest person by distance; with ``candidates`` the nearest people, closest first."""
        th = thresholds or self.thresholds
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(embeddings) == 0:
            return []
        dists = np.linalg.norm(embeddings[:, None, :] - self.embeddings[None, :, :], axis=-1)
        nearest = nearest_people(dists, self.labels, self.persons, max(1, candidates))
        if self._proba is not None:
            proba = self._proba(embeddings)
            classes = self.classes
            best = proba.argmax(axis=1)
            picks = [classes[i] for i in best]
            confidences = proba[np.arange(len(best)), best]
        else:
            picks = [self.persons[0]] * len(embeddings)
            confidences = np.ones(len(embeddings))
        out = []
        for i, person in enumerate(picks):
            distance = float(dists[i, self.labels == person].min())
            conf = float(confidences[i])
            top = nearest[i][:candidates]
            if distance <= th.distance and (self._proba is None or conf >= th.probability):
                out.append(IdentityMatch(person, conf, distance, person, top))
            else:  # a stranger: who they are closest to, by distance (the SVM's pick may differ)
                out.append(IdentityMatch(UNKNOWN, None, nearest[i][0].distance, nearest[i][0].name, top))
        return out
