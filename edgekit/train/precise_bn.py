"""Precise batch-norm statistics (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", sec. 3).

Why edgekit needs it: a BatchNormalization layer normalises with the current batch while
training, but with exponential moving averages at inference. Those averages mix statistics
computed with older weights (momentum 0.999 in keras.applications' MobileNetV2 looks back
~1000 steps; 0.99 ~100). While weights still move fast - training from scratch, the first
epochs, short runs - the averages describe a network that no longer exists; the error
compounds through MobileNetV2's 52 BN layers and the model scores chance (10% on
Fashion-MNIST) at inference while its training accuracy looks fine. Recomputing the
statistics with the final weights on a few hundred training images removes the gap.

Which images: training images as training sees them (EpochData.calibration: augmented, and
mixed under --mixup/--cutmix), as Wu & Johnson compute population statistics on the training
distribution. Each BN layer learned to work with the statistics of augmented batches (zero-padded
shifts and zooms change how much of an image is background); statistics of clean images
normalise differently from what the layers after it learned. Measured by recomputing the
statistics of finished runs both ways (benchmarks/bn_statistics.py; MobileNetV2 0.35 at 32x32,
--ema auto; test accuracy): on a 3,000-image MNIST sample all eight runs gained, 0.15-1.1 pp
(97.00 -> 97.70, 97.15 -> 97.65, 97.10 -> 97.60, 97.85 -> 98.25, 97.35 -> 98.45, with dropout
97.75 -> 97.90, mixup 97.30 -> 98.00, CutMix 91.45 -> 92.10); sklearn's digits 99.44 / 99.44 /
99.26 -> 99.44 / 99.26 / 99.26; 3,000 Fashion-MNIST images 84.35 -> 84.17; Fashion-MNIST's
54,000 92.02 -> 92.00.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def batchnorm_layers(model: keras.Model) -> list:
    return [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)
            and l.trainable]


def recompute_batchnorm(model: keras.Model, batches, forward=None) -> int:
    """Set every trainable BN layer's moving mean/variance to the average over ``batches``
    (an iterable of input arrays) computed with the model's current weights; return the
    number of batches used. Weights other than the BN statistics do not change.
    ``forward`` (default: the model called eagerly in training mode) runs one batch; a
    compiled one (``compiled_forward``) is several times faster."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [l.momentum for l in layers]
    means = [np.zeros(l.moving_mean.shape, np.float64) for l in layers]
    variances = [np.zeros(l.moving_variance.shape, np.float64) for l in layers]
    n = 0
    try:
        for l in layers:  # momentum 0: each call leaves exactly that batch's statistics
            l.momentum = 0.0
        for x in batches:
            (forward or (lambda b: model(b, training=True)))(x)
            for i, l in enumerate(layers):
                means[i] += l.moving_mean.numpy()
                variances[i] += l.moving_variance.numpy()
            n += 1
    finally:
        for l, m in zip(layers, saved):
            l.momentum = m
    if n:
        for i, l in enumerate(layers):
            l.moving_mean.assign((means[i] / n).astype("float32"))
            l.moving_variance.assign((variances[i] / n).astype("float32"))
    return n


class PreciseBNValidation(keras.callbacks.Callback):
    """At each epoch end: precise BN statistics from ``calib`` batches, then validation
    metrics (val_loss, val_accuracy) measured with them, written into the epoch's logs
    before the CSV logger, early stopping and the checkpoint see them; ``correct`` keeps which
    validation images (in order) the epoch got right, for early stopping's McNemar test."""

    def __init__(self, calib_batches, val_ds=None):
        super().__init__()
        self.calib, self.val = calib_batches, val_ds
        self._forward = None
        self.correct: np.ndarray | None = None

    def _compiled_forward(self):
        """The model in training mode as one tf.function: the eager call costs ~10x more, which
        on a small dataset made precise BN most of an epoch's time. It is traced (and, for a
        new batch shape, retraced) only inside recompute_batchnorm, while every BN momentum is
        0, so the graph keeps momentum 0. Eager under a distribution strategy, as before."""
        if tf.distribute.has_strategy():
            return None
        if self._forward is None:
            self._forward = tf.function(lambda x: self.model(x, training=True), reduce_retracing=True)
        return self._forward

    def on_epoch_end(self, epoch, logs=None):
        recompute_batchnorm(self.model, (x for x, _ in self.calib), self._compiled_forward())
        if self.val is not None and logs is not None:
            # The loss function, not a Loss object: under a tf.distribute strategy's scope a
            # Loss object divides by the number of replicas (it expects per-replica sums).
            right, loss_sum = [], 0.0
            for x, y in self.val:
                p = self.model(x, training=False)
                y = np.asarray(y)
                loss_sum += float(np.sum(keras.losses.sparse_categorical_crossentropy(y, p)))
                right.append(np.asarray(p).argmax(axis=1) == y)
            self.correct = np.concatenate(right) if right else None
            total = len(self.correct) if right else 0
            logs["val_loss"] = loss_sum / total
            logs["val_accuracy"] = float(self.correct.sum()) / total
