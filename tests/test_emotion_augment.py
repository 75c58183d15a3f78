"""Augmentation is in-graph, shape-preserving and reproducible from its seed."""

from __future__ import annotations

import numpy as np


def test_augment_deterministic_and_bounded():
    import tensorflow as tf

    from emotion.training.augment import AugmentConfig, augment_batch

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
