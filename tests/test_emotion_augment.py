"""Augmentation is in-graph, shape-preserving and reproducible from its seed."""

from __future__ import annotations

import numpy as np


def test_augment_deterministic_and_bounded():
    import tensorflow as tf

    from mien.emotion.training.augment import AugmentConfig, augment_batch

    x = tf.constant(np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1)).astype("float32"))
    a = augment_batch(x, tf.constant([3, 7]))
    b = augment_batch(x, tf.constant([3, 7]))
    c = augment_batch(x, tf.constant([3, 8]))
    assert a.shape == x.shape
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())
    assert float(tf.reduce_min(a)) >= 0.0 and float(tf.reduce_max(a)) <= 255.0 + 1e-3
    off = AugmentConfig(flip=False, max_rotation_deg=0, max_shift=0, max_zoom=0, max_log_gamma=0)
    np.testing.assert_allclose(augment_batch(x, tf.constant([1, 2]), off).numpy(), x.numpy(), atol=1e-3)


def test_random_erasing_fills_one_rectangle_of_noise_per_chosen_face():
    import tensorflow as tf

    from mien.emotion.training.augment import random_erase

    x = tf.fill((64, 48, 48, 1), 100.0)
    erased = random_erase(x, tf.constant([5, 9], tf.int64), prob=0.5).numpy()[..., 0]
    changed = erased != 100.0
    touched = changed.reshape(64, -1).any(1)
    assert 20 <= touched.sum() <= 44  # about half the faces
    for mask in changed[touched]:  # one axis-aligned box covering at most a third of the face
        rows, cols = np.where(mask.any(1))[0], np.where(mask.any(0))[0]
        assert mask.sum() <= 0.34 * 48 * 48
        assert rows.max() - rows.min() + 1 == len(rows) and cols.max() - cols.min() + 1 == len(cols)
    np.testing.assert_array_equal(random_erase(x, tf.constant([5, 9], tf.int64), 0.5).numpy()[..., 0], erased)


def test_mixup_blends_faces_targets_and_weights_alike():
    import tensorflow as tf

    from mien.emotion.training.augment import mixup

    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (16, 48, 48, 1)).astype("float32"))
    y = tf.constant(np.eye(7, dtype="float32")[rng.integers(0, 7, 16)])
    w = tf.constant(rng.uniform(0.5, 3.0, 16).astype("float32"))
    xm, ym, wm = (t.numpy() for t in mixup(x, y, w, tf.constant([1, 2]), alpha=0.4))
    np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-5)
    assert (ym.max(1) < 1.0 - 1e-3).any()  # some faces were really mixed
    lam = ym.max(1)  # a mixed face keeps the larger share of its own (or its partner's) label
    assert wm.min() >= w.numpy().min() - 1e-4 and wm.max() <= w.numpy().max() + 1e-4
    assert xm.min() >= 0 and xm.max() <= 255 and lam.min() >= 0.5 - 1e-6
    unchanged = mixup(x, y, w, tf.constant([1, 2]), alpha=0.0)
    assert all(a is b for a, b in zip(unchanged, (x, y, w)))
