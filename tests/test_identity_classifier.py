"""The open-set SVM on synthetic embeddings: thresholds, one-person mode."""
from __future__ import annotations

import numpy as np
import pytest

from mien.identity.classifier import UNKNOWN, IdentityClassifier, Thresholds
from mien.identity.facenet import l2_normalize


def _clusters(n_people=3, per=6, dim=128, spread=0.15, seed=0):
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(n_people, dim)))
    x = np.concatenate([l2_normalize(c + spread * rng.normal(size=(per, dim)) / np.sqrt(dim) * 4) for c in centres])
    y = [f"person {i}" for i in range(n_people) for _ in range(per)]
    return centres, x.astype(np.float32), y


def test_known_faces_are_named_and_strangers_are_unknown():
    centres, x, y = _clusters()
    clf = IdentityClassifier(x, y, "facenet-test", Thresholds(distance=0.9, probability=0.5))
    near = l2_normalize(centres + 0.02)
    assert [m.name for m in clf.predict(near)] == ["person 0", "person 1", "person 2"]
    stranger = l2_normalize(np.random.default_rng(9).normal(size=(4, 128))).astype(np.float32)
    matches = clf.predict(stranger)
    assert all(m.name == UNKNOWN and m.candidate.startswith("person") for m in matches)
    # thresholds are overridable per call
    assert all(m.name != UNKNOWN for m in clf.predict(stranger, Thresholds(distance=4.0, probability=0.0)))


def test_single_enrolled_person_uses_distance_only():
    centres, x, y = _clusters(n_people=1)
    clf = IdentityClassifier(x, y, "facenet-test")
    assert clf.predict(l2_normalize(centres + 0.01))[0].name == "person 0"
    other = l2_normalize(-centres)
    assert clf.predict(other)[0].name == UNKNOWN


@pytest.mark.parametrize("per_person", [(2, 1), (1, 1), (1, 7)])
def test_a_tiny_gallery_with_a_one_photo_person_is_fitted_and_names_them(per_person):
    """3 photos of 2 people (one of them a single photo) used to crash the calibration's 5 folds."""
    centres, x, y = _clusters(n_people=2, per=8)
    keep = [i for p, n in enumerate(per_person) for i in range(p * 8, p * 8 + n)]
    clf = IdentityClassifier(x[keep], [y[i] for i in keep], "facenet-test", Thresholds(distance=0.9, probability=0.0))
    assert [m.name for m in clf.predict(l2_normalize(centres + 0.02))] == ["person 0", "person 1"]


@pytest.mark.parametrize("n_people, per", [(2, 6), (3, 6), (6, 4)])
def test_the_numpy_probabilities_are_scikit_learns(n_people, per):
    """identity.svm_proba replaces scikit-learn's predict_proba only where it gives the same numbers: two people
    (binary), several (one-vs-one votes), a one-photo person (the frozen SVM), on faces near and far from anyone."""
    _, x, y = _clusters(n_people=n_people, per=per)
    x, y = np.concatenate([x, x[:1]]), y + ["one photo"]
    clf = IdentityClassifier(x, y, "facenet-test")
    from mien.identity.svm_proba import LinearSVMProba

    assert isinstance(clf._proba, LinearSVMProba)  # the NumPy form is the one used
    queries = l2_normalize(np.random.default_rng(3).normal(size=(40, 128))).astype(np.float32)
    for q in (queries, x):
        np.testing.assert_allclose(clf._proba(q), clf.svm.predict_proba(q), rtol=0, atol=1e-9)


def test_a_model_the_numpy_form_does_not_reproduce_keeps_scikit_learns():
    """A calibrator it does not know (isotonic) is not replaced: scikit-learn's predict_proba stays."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    from mien.identity.svm_proba import fast_predict_proba

    _, x, y = _clusters()
    model = CalibratedClassifierCV(SVC(kernel="linear"), method="isotonic", ensemble=False, cv=3).fit(x, y)
    assert fast_predict_proba(model, x) is None
