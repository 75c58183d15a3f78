"""The fitted calibrated linear SVM's ``predict_proba`` as a few NumPy operations.

scikit-learn checks its input on every call (dataframe detection included), ~0.8 ms per recognized photo, several
times the arithmetic of a 128-d linear SVM over a gallery's people. ``fast_predict_proba`` rebuilds the same
computation from the fitted model (the one-vs-one decision values, scikit-learn's one-vs-rest vote with its
confidence tie-break, each class's sigmoid calibration, the normalisation) and is used only when it reproduces the
model's own probabilities on the gallery's embeddings; otherwise the caller keeps scikit-learn's.
"""
from __future__ import annotations

import numpy as np


def _ovr(decision: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest scores from one-vs-one decision values: votes, plus the summed confidences squashed into
    (-1/3, 1/3) so that they only break ties (scikit-learn's ``decision_function_shape='ovr'``)."""
    votes = np.zeros((len(decision), n_classes))
    confidence = np.zeros((len(decision), n_classes))
    k = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            confidence[:, i] += decision[:, k]
            confidence[:, j] -= decision[:, k]
            votes[:, i] += decision[:, k] > 0
            votes[:, j] += decision[:, k] <= 0
            k += 1
    return votes + confidence / (3 * (np.abs(confidence) + 1))


class LinearSVMProba:
    """The probabilities of a calibrated linear SVM from its arrays (picklable, like the model it stands for)."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, a: np.ndarray, b: np.ndarray, n_classes: int,
                 classes: list[str] | tuple[str, ...] = ()):
        self.coef, self.intercept, self.a, self.b, self.n_classes = coef, intercept, a, b, n_classes
        self.classes = list(classes)  # the people, in the order of the probabilities' columns

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything it is, as arrays (``np.savez``); ``from_arrays`` makes it again."""
        return {"coef": self.coef, "intercept": self.intercept, "a": self.a, "b": self.b,
                "classes": np.array(self.classes, dtype=str)}

    @classmethod
    def from_arrays(cls, arrays) -> "LinearSVMProba":
        classes = [str(c) for c in arrays["classes"]]
        return cls(*(np.asarray(arrays[k], np.float64) for k in ("coef", "intercept", "a", "b")), len(classes),
                   classes)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        decision = np.asarray(x, np.float64) @ self.coef.T + self.intercept
        scores = decision if self.n_classes == 2 else _ovr(decision, self.n_classes)
        p = 1.0 / (1.0 + np.exp(self.a * scores + self.b))  # each class's sigmoid calibration
        if self.n_classes == 2:
            return np.column_stack([1.0 - p[:, 0], p[:, 0]])
        total = p.sum(axis=1, keepdims=True)
        return np.clip(np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / self.n_classes), 0.0, 1.0)


def fast_predict_proba(model, check: np.ndarray) -> LinearSVMProba | None:
    """``model.predict_proba`` (a fitted ``CalibratedClassifierCV`` over a linear ``SVC``, sigmoid method, one
    calibrated classifier) in NumPy, or None when the model is not that or the result differs from scikit-learn's
    on ``check`` (the training embeddings) by more than 1e-6."""
    try:
        (calibrated,) = model.calibrated_classifiers_
        svc = getattr(calibrated.estimator, "estimator", calibrated.estimator)  # a FrozenEstimator wraps it
        if calibrated.method != "sigmoid" or svc.kernel != "linear" or list(svc.classes_) != list(model.classes_):
            return None
        proba = LinearSVMProba(np.asarray(svc.coef_, np.float64), np.asarray(svc.intercept_, np.float64),
                               np.array([c.a_ for c in calibrated.calibrators], np.float64),
                               np.array([c.b_ for c in calibrated.calibrators], np.float64), len(svc.classes_),
                               [str(c) for c in svc.classes_])
        same = np.allclose(proba(check), model.predict_proba(check), rtol=0, atol=1e-6)
    except (AttributeError, TypeError, ValueError, FloatingPointError):
        return None
    return proba if same else None
