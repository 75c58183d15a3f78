"""The single input-normalisation + forward path shared by training-time evaluation and EmotionClassifier.

A forward here is a NumPy function (float32 faces [N,S,S,1] in 0..255 -> probabilities [N,7]): TensorFlow's
(``make_forward``) or one compiled by another inference runtime from ``make_tf_forward``'s graph.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mien.emotion.labels import NUM_CLASSES
from mien.emotion.views import MIRROR, TestTimeViews

MAX_CHUNK = 1024  # faces per forward call by default (training-time evaluation); bounds memory
# Face views per network call in EmotionClassifier.predict: TensorFlow runs 24 faces x 10 views per call within
# 4 % of 204 faces, and 6 faces 32 % slower (2-core CPU); a runtime may pass fewer (memory).
VIEWS_PER_CALL = 256


def chunk_for(views: TestTimeViews, views_per_call: int = VIEWS_PER_CALL) -> int:
    """Faces per forward call so that one call runs at most ``views_per_call`` views through the network."""
    return max(1, views_per_call // views.passes)


def as_face_batch(faces: np.ndarray, size: int = 48) -> np.ndarray:
    """Validate faces ([N,S,S] or [N,S,S,1]; uint8, float 0..255 or float 0..1) -> float32 [N,S,S,1] in 0..255."""
    arr = np.asarray(faces)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2 and arr.shape == (size, size):
        raise ValueError(f"expected a batch [N,{size},{size}]; got a single face {arr.shape} (use faces[None])")
    if arr.ndim != 3 or arr.shape[1:] != (size, size):
        raise ValueError(f"expected grayscale faces [N,{size},{size}] or [N,{size},{size},1], got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"faces must be numeric, got dtype {arr.dtype}")
    x = arr.astype(np.float32, copy=False)
    if np.issubdtype(arr.dtype, np.floating) and x.size and float(x.max()) <= 1.0:
        x = x * 255.0  # floats in 0..1 -> the 0..255 scale used in training
    return x[..., None]


def make_tf_forward(model, views: TestTimeViews = MIRROR):
    """A shape-polymorphic ``tf.function``: probabilities [N,7] averaged over ``views`` of each face, all views
    in one network call (shift first, then mirror, edges replicated as cv2.BORDER_REPLICATE does)."""
    import tensorflow as tf

    size = model.input_shape[1]

    def shifted(x, dx: int, dy: int):
        if dx:
            x = tf.gather(x, tf.clip_by_value(tf.range(size) - dx, 0, size - 1), axis=2)
        if dy:
            x = tf.gather(x, tf.clip_by_value(tf.range(size) - dy, 0, size - 1), axis=1)
        return x

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 1], tf.float32)], reduce_retracing=True)
    def forward(x):
        batch = [shifted(x, dx, dy) for dx, dy in views.shifts]
        if views.mirror:
            batch += [tf.reverse(v, axis=[2]) for v in batch]
        if len(batch) == 1:
            return tf.cast(model(batch[0], training=False), tf.float32)
        n = tf.shape(x)[0]
        probs = tf.cast(model(tf.concat(batch, axis=0), training=False), tf.float32)
        return tf.reduce_mean(tf.reshape(probs, [len(batch), n, -1]), axis=0)

    return forward


def make_forward(model, views: TestTimeViews = MIRROR) -> Callable[[np.ndarray], np.ndarray]:
    """``make_tf_forward`` run by TensorFlow, as a NumPy function."""
    import tensorflow as tf

    forward = make_tf_forward(model, views)
    return lambda x: forward(tf.constant(x)).numpy()


def predict_proba(forward: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, size: int = 48,
                  chunk: int = MAX_CHUNK, classes: int = NUM_CLASSES) -> np.ndarray:
    """Run a NumPy ``forward`` on faces: one call when N <= chunk; float32 [N, classes] (FER2013's 7 unless the
    model says otherwise: FER+'s 8), also for no faces at all."""
    x = as_face_batch(faces, size)
    if len(x) == 0:
        return np.zeros((0, classes), np.float32)
    outs = [forward(np.ascontiguousarray(x[i:i + chunk])) for i in range(0, len(x), chunk)]
    return np.concatenate(outs, axis=0).astype(np.float32)
