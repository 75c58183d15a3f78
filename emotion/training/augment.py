"""In-graph, seed-deterministic face augmentation (flip, shift/rotate/zoom, gamma, random erasing, mixup) for
tf.data batches."""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; moderate by default because FER2013 crops are already tight."""

    flip: bool = True
    max_rotation_deg: float = 10.0
    max_shift: float = 0.1   # fraction of the image side
    max_zoom: float = 0.1    # scale in [1 - z, 1 + z]
    max_log_gamma: float = 0.3  # gamma in [e^-g, e^g]; brightness/contrast shifts are undone by standardisation
    # random erasing (Zhong et al. 2017): with this probability a rectangle of 2-33 % of the face, aspect 0.3-3.3,
    # is filled with uniform noise, so the network cannot lean on one region (a mouth, an eye) alone
    erase_prob: float = 0.0


def augment_batch(images: tf.Tensor, seed: tf.Tensor, cfg: AugmentConfig = AugmentConfig()) -> tf.Tensor:
    """Augment a float32 [B,H,W,1] batch in 0..255; ``seed`` is an int32/int64 [2] stateless seed."""
    b = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)

    def u(i: int, lo: float, hi: float) -> tf.Tensor:
        return tf.random.stateless_uniform([b], seeds[i], lo, hi)

    x = images
    if cfg.flip:
        flip = u(0, 0.0, 1.0) < 0.5
        x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)

    theta = u(1, -1.0, 1.0) * (cfg.max_rotation_deg * math.pi / 180.0)
    scale = 1.0 + u(2, -cfg.max_zoom, cfg.max_zoom)
    tx = u(3, -cfg.max_shift, cfg.max_shift) * w
    ty = u(4, -cfg.max_shift, cfg.max_shift) * h
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    # Output pixel -> input pixel: rotate/scale about the centre, then shift.
    a0 = tf.cos(theta) / scale
    a1 = -tf.sin(theta) / scale
    b0 = tf.sin(theta) / scale
    b1 = tf.cos(theta) / scale
    a2 = cx - a0 * cx - a1 * cy + tx
    b2 = cy - b0 * cx - b1 * cy + ty
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")

    if cfg.max_log_gamma > 0:
        gamma = tf.exp(u(5, -cfg.max_log_gamma, cfg.max_log_gamma))
        x = 255.0 * tf.pow(tf.clip_by_value(x / 255.0, 0.0, 1.0), gamma[:, None, None, None])
    if cfg.erase_prob > 0:
        x = random_erase(x, seeds[6], cfg.erase_prob)
    return x


def random_erase(images: tf.Tensor, seed: tf.Tensor, prob: float) -> tf.Tensor:
    """Fill one random rectangle (2-33 % of the area, aspect 0.3-3.3) of each face with probability ``prob``
    with uniform noise in 0..255; [B,H,W,1] float32 in and out."""
    b = tf.shape(images)[0]
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    s = tf.random.experimental.stateless_split(seed, num=6)
    area = tf.random.stateless_uniform([b], s[0], 0.02, 0.33) * h * w
    log_aspect = tf.random.stateless_uniform([b], s[1], math.log(0.3), math.log(1 / 0.3))
    eh = tf.minimum(tf.sqrt(area * tf.exp(log_aspect)), h)
    ew = tf.minimum(tf.sqrt(area / tf.exp(log_aspect)), w)
    y0 = tf.random.stateless_uniform([b], s[2], 0.0, 1.0) * (h - eh)
    x0 = tf.random.stateless_uniform([b], s[3], 0.0, 1.0) * (w - ew)
    on = tf.random.stateless_uniform([b], s[4], 0.0, 1.0) < prob
    rows = tf.range(h)[None, :, None]
    cols = tf.range(w)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]) & on[:, None, None])
    noise = tf.random.stateless_uniform(tf.shape(images), s[5], 0.0, 255.0)
    return tf.where(inside[..., None], noise, images)


def mixup(images: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, seed: tf.Tensor,
          alpha: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mixup (Zhang et al. 2018): each face blended with another of the batch by lambda ~ Beta(alpha, alpha),
    its target and loss weight blended alike; ``alpha`` 0 returns the batch unchanged."""
    if alpha <= 0:
        return images, targets, weights
    b = tf.shape(images)[0]
    s = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    g1 = tf.random.stateless_gamma([b], s[0], alpha)
    g2 = tf.random.stateless_gamma([b], s[1], alpha)
    lam = g1 / (g1 + g2)
    partner = tf.argsort(tf.random.stateless_uniform([b], s[2]))
    mix = lambda t, l: l * t + (1.0 - l) * tf.gather(t, partner)  # noqa: E731
    return (mix(images, lam[:, None, None, None]), mix(targets, lam[:, None]), mix(weights, lam))
