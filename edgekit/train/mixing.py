"""Mixing two images of a batch into one training example: mixup and CutMix.

mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization") trains on
``lam * x_i + (1 - lam) * x_j`` with the label ``lam * y_i + (1 - lam) * y_j``; CutMix (Yun et
al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
Features") pastes a box of ``x_j`` covering ``1 - lam`` of the image into ``x_i`` and mixes the
labels by the box's actual area. ``lam ~ Beta(alpha, alpha)``. As timm's ``Mixup`` (batch mode):
one ``lam`` per batch, image i's partner is image B-1-i (the batch reversed), and with both
on, each batch takes one of the two with probability 1/2.

Mixing happens on the augmented pixels of a batch, after the geometric and colour
augmentation and before normalisation, and its randomness is addressed by (seed, epoch, step)
like the augmentation's, so ``--resume`` rebuilds the same mixed batches. The labels of a
mixed batch are class probabilities (one-hot rows, mixed), so the run trains with categorical
cross-entropy; validation keeps the integer labels and the plain cross-entropy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class MixConfig:
    """Beta(alpha, alpha) concentration of mixup and of CutMix; 0 turns one off."""

    mixup: float = 0.0
    cutmix: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (("mixup", self.mixup), ("cutmix", self.cutmix)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"--{name} got {value!r}; expected a Beta concentration >= 0 (0: off)")

    @property
    def enabled(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def describe(self) -> str:
        """'mixup (alpha 0.2) or cutmix (alpha 1)', or '' when both are off."""
        return " or ".join(f"{name} (alpha {alpha:g})" for name, alpha in (("mixup", self.mixup),
                                                                          ("cutmix", self.cutmix)) if alpha)


def _beta(alpha: float, seeds: tf.Tensor) -> tf.Tensor:
    """One sample of Beta(alpha, alpha) as the ratio of two Gamma(alpha) samples."""
    a = tf.random.stateless_gamma([], seeds[0], alpha=alpha)
    b = tf.random.stateless_gamma([], seeds[1], alpha=alpha)
    return a / tf.maximum(a + b, 1e-12)


def _box_mask(height: int, width: int, lam: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A [H, W, 1] float mask, 1 inside a box of about (1 - lam) of the image (clipped at the
    border), centred at a uniform random pixel (Yun et al. 2019, algorithm A1)."""
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.cast(height, tf.float32) * ratio, tf.int32)
    cut_w = tf.cast(tf.cast(width, tf.float32) * ratio, tf.int32)
    centre = tf.random.stateless_uniform([2], seed, 0.0, 1.0)
    cy = tf.cast(centre[0] * height, tf.int32)
    cx = tf.cast(centre[1] * width, tf.int32)
    y0, y1 = tf.clip_by_value(cy - cut_h // 2, 0, height), tf.clip_by_value(cy + cut_h // 2, 0, height)
    x0, x1 = tf.clip_by_value(cx - cut_w // 2, 0, width), tf.clip_by_value(cx + cut_w // 2, 0, width)
    rows = tf.range(height)
    cols = tf.range(width)
    inside = ((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :]
    return tf.cast(inside, tf.float32)[:, :, None]


def mix_batch_tf(pixels: tf.Tensor, probs: tf.Tensor, config: MixConfig, seed: tf.Tensor
                 ) -> tuple[tf.Tensor, tf.Tensor]:
    """Mix a batch: ``pixels`` [B, H, W, C] float, ``probs`` [B, K] class probabilities;
    ``seed`` an int [2] tensor. Returns the mixed pixels and labels."""
    if not config.enabled:
        return pixels, probs
    x = tf.convert_to_tensor(pixels, tf.float32)
    y = tf.convert_to_tensor(probs, tf.float32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)
    x_r, y_r = tf.reverse(x, axis=[0]), tf.reverse(y, axis=[0])

    def mixup():
        lam = _beta(config.mixup, seeds[0:2])
        return lam * x + (1.0 - lam) * x_r, lam * y + (1.0 - lam) * y_r

    def cutmix():
        lam = _beta(config.cutmix, seeds[2:4])
        mask = _box_mask(x.shape[1], x.shape[2], lam, seeds[4])
        area = 1.0 - tf.reduce_mean(mask)  # the share of the image that stays x's
        return x * (1.0 - mask) + x_r * mask, area * y + (1.0 - area) * y_r

    if config.mixup > 0 and config.cutmix > 0:
        use_cutmix = tf.random.stateless_uniform([], seeds[5]) < 0.5
        return tf.cond(use_cutmix, cutmix, mixup)
    return cutmix() if config.cutmix > 0 else mixup()
