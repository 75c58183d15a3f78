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
