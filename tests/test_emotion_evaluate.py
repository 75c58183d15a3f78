"""Metric helpers: confusion matrix, per-class accuracy, report text."""

from __future__ import annotations

import numpy as np

from mien.emotion.training.evaluate import confusion_matrix, format_report, summarize
from mien.emotion.labels import EMOTIONS


def test_summarize_counts_and_per_class():
    y = np.array([0, 0, 1, 3, 3, 3])
    probs = np.eye(7, dtype=np.float32)[[0, 3, 1, 3, 3, 0]]
    s = summarize(y, probs)
    assert s["accuracy"] == 4 / 6
    assert s["per_class_accuracy"]["angry"] == 0.5 and s["per_class_accuracy"]["happy"] == 2 / 3
    assert s["per_class_accuracy"]["fear"] is None  # no support
    cm = np.asarray(s["confusion_matrix"])
    assert cm.sum() == 6 and cm[0, 3] == 1 and cm[3, 0] == 1
    np.testing.assert_array_equal(cm, confusion_matrix(y, probs.argmax(1)))
    assert s["labels"] == list(EMOTIONS)
    text = format_report({**s, "split": "PublicTest", "ms_per_face_batched": 1.5})
    assert "PublicTest: accuracy 0.6667 on 6 faces" in text and "happy 0.667" in text
