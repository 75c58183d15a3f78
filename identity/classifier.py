"""Who is this face: a linear SVM over enrolled embeddings plus an open-set check for strangers.

A face is named only when (a) the calibrated SVM probability of the predicted person and
(b) the distance to that person's nearest enrolled embedding both pass thresholds stored
with the model. With a single enrolled person there is no SVM: distance alone decides.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from identity.errors import ModelFileError, NotEnrolledError, StaleModelError
from identity.match import UNKNOWN, IdentityMatch  # noqa: F401 (re-exported)
from identity.storage import atomic_path, write_json_atomic

FORMAT_VERSION = 1
# Defaults chosen by leave-one-person-out evaluation on the 5-celebrity *train* photos (see README).
DEFAULT_DISTANCE_THRESHOLD = 0.95
DEFAULT_PROBABILITY_THRESHOLD = 0.5


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

    def _fit_svm(self) -> CalibratedClassifierCV:
        counts = [int((self.labels == p).sum()) for p in self.persons]
        folds = min(5, min(counts))
        if folds >= 2:
            model = CalibratedClassifierCV(SVC(kernel="linear"), ensemble=False, cv=folds)
        else:  # a person with a single photo: calibrate on the training set itself
            from sklearn.frozen import FrozenEstimator

            model = CalibratedClassifierCV(FrozenEstimator(SVC(kernel="linear").fit(self.embeddings, self.labels)))
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
            proba = self.svm.predict_proba(embeddings)
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

    # ---- persistence -------------------------------------------------------------------------
    def sidecar(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "embedder_version": self.embedder_version,
            "persons": self.counts,
            "thresholds": {"distance": self.thresholds.distance, "probability": self.thresholds.probability},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__,
                         "joblib": joblib.__version__, "python": platform.python_version()},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write ``path`` (joblib) and ``path.json`` (readable sidecar) atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            joblib.dump({"format_version": FORMAT_VERSION, "classifier": self}, tmp)
        write_json_atomic(path.with_suffix(path.suffix + ".json"), self.sidecar())

    @classmethod
    def load(cls, path: str | os.PathLike, expected_embedder_version: str | None = None) -> "IdentityClassifier":
        """Load a saved classifier; refuse one built with other embedding weights or a newer format."""
        path = Path(path)
        if not path.is_file():
            raise NotEnrolledError(f"{path}: no classifier yet; enroll people with `mien enroll DIR`.")
        try:
            blob = joblib.load(path)
            model = blob["classifier"]
            if blob.get("format_version") != FORMAT_VERSION or not isinstance(model, cls):
                raise TypeError("unexpected content")
        except Exception as exc:  # joblib raises many types on foreign or corrupt files
            raise ModelFileError(
                f"{path}: not a mien identity classifier ({exc}); rebuild it with `mien train-svm`."
            ) from exc
        if expected_embedder_version and model.embedder_version != expected_embedder_version:
            raise StaleModelError(
                f"{path} was built with embedding model {model.embedder_version}, but {expected_embedder_version} "
                "is loaded; rebuild it with `mien train-svm` (cached photos are re-embedded automatically)."
            )
        return model


def read_sidecar(path: str | os.PathLike) -> dict:
    """The JSON sidecar of a saved classifier (persons, counts, thresholds, versions)."""
    return json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
