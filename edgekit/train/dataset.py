"""Epoch-addressed input pipelines: epoch e's order and augmentation depend on (seed, e) only.

That is what makes ``--resume`` give the same result as an uninterrupted run: a resumed
run rebuilds epoch e's batches exactly, instead of replaying a stateful shuffle. Decoding
and augmentation run on tf.data's parallel threads and batches are prefetched, so the
accelerator is not left waiting on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edgekit.data import AugmentConfig, ColourPCA, LabeledImages, augment_pixels_tf, normalize_tf, to_pixels_tf
from edgekit.data.preprocess import decode_image_tf
from edgekit.runtime.spec import PreprocessSpec

from .mixing import MixConfig, mix_batch_tf

AUTOTUNE = tf.data.AUTOTUNE
PRECOMPUTE_BUDGET = 1 << 30  # resized float pixels kept in memory up to this many bytes
CALIBRATION_EPOCH = -1  # the order and augmentation of calibration(): an epoch no run trains


class EpochData:
    """Training or evaluation batches of one LabeledImages for any epoch."""

    def __init__(self, data: LabeledImages, spec: PreprocessSpec, batch_size: int,
                 augment: AugmentConfig | None = None, pca: ColourPCA | None = None, seed: int = 0,
                 mix: MixConfig | None = None):
        self.data, self.spec, self.batch_size = data, spec, batch_size
        self.augment = augment if augment is not None and augment.enabled else None
        # Shuffled (training) batches are mixed and carry class probabilities; once() does not.
        self.mix = mix if mix is not None and mix.enabled else None
        self.pca, self.seed = pca, int(seed)
        self.labels = tf.constant(data.labels)
        h, w = spec.size
        self.pixels = None
        if data.in_memory and len(data) * h * w * spec.channels * 4 <= PRECOMPUTE_BUDGET:
            self.pixels = self._precompute()

    def _precompute(self) -> tf.Tensor:
        chunks = [to_pixels_tf(self.data.images[i:i + 4096], self.spec)
                  for i in range(0, len(self.data), 4096)]
        return tf.concat(chunks, axis=0)

    @property
    def steps(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def _load_batch(self, idx: tf.Tensor):
        if self.pixels is not None:
            return tf.gather(self.pixels, idx), tf.gather(self.labels, idx)
        raise RuntimeError("per-element loading is handled by _element_dataset")

    def _element_dataset(self, order: tf.data.Dataset) -> tf.data.Dataset:
        if self.data.in_memory:
            images = tf.constant(self.data.images)
            load = lambda i: images[i]  # noqa: E731
        else:
            paths = tf.constant(self.data.images)
            load = lambda i: decode_image_tf(paths[i])  # noqa: E731
        return order.map(lambda i: (to_pixels_tf(load(i), self.spec), self.labels[i]),
                         num_parallel_calls=AUTOTUNE, deterministic=True)

    def batches(self, epoch: tf.Tensor | int, shuffle: bool) -> tf.data.Dataset:
        """Normalised (x, y) batches of epoch ``epoch``; augmented when an AugmentConfig is set."""
        n = len(self.data)
        epoch = tf.cast(epoch, tf.int64)
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.constant(self.seed, tf.int64), epoch]))
        if self.pixels is not None:
            ds = tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size)
            ds = ds.map(self._load_batch, num_parallel_calls=AUTOTUNE, deterministic=True)
        else:
            ds = self._element_dataset(tf.data.Dataset.from_tensor_slices(order)).batch(self.batch_size)
        if self.augment is not None:
            config, pca = self.augment, self.pca
            ds = self._per_batch(ds, lambda b, s: (augment_pixels_tf(b[0], config, self._key(epoch, s), pca), b[1]))
        if self.mix is not None and shuffle:
            # A stream of its own for each batch: the augmentation's key at step -1 - s.
            config, classes = self.mix, len(self.data.class_names)
            ds = self._per_batch(ds, lambda b, s: mix_batch_tf(b[0], tf.one_hot(b[1], classes), config,
                                                               self._key(epoch, -1 - s)))
        spec = self.spec
        return ds.map(lambda x, y: (normalize_tf(x, spec), y), num_parallel_calls=AUTOTUNE,
                      deterministic=True)

    @property
    def mixed(self) -> bool:
        """Whether training batches carry mixed class probabilities instead of integer labels."""
        return self.mix is not None

    def _key(self, epoch: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
        """The stateless random key of one batch's draws: (seed + 7919 * epoch, step)."""
        return tf.stack([self.seed + 7919 * epoch, step])

    def _per_batch(self, ds: tf.data.Dataset, fn) -> tf.data.Dataset:
        """``ds`` mapped by ``fn(batch, step)``, step = the batch's index in its epoch."""
        steps = tf.data.Dataset.range(self.steps)
        return tf.data.Dataset.zip((ds, steps)).map(fn, num_parallel_calls=AUTOTUNE, deterministic=True)

    def epochs(self, first: int, last: int) -> tf.data.Dataset:
        """Epochs first..last-1 back to back (for one ``fit`` call with steps_per_epoch)."""
        return (tf.data.Dataset.range(first, last)
                .flat_map(lambda e: self.batches(e, shuffle=True))
                .prefetch(AUTOTUNE))

    def calibration(self, images: int) -> tf.data.Dataset:
        """About ``images`` training images (at most one epoch's) in batches as training sees
        them (shuffled, augmented, mixed), the same batches at every call: what precise BN
        computes its statistics from (precise_bn.py)."""
        take = math.ceil(max(1, images) / self.batch_size)
        return self.batches(CALIBRATION_EPOCH, shuffle=True).take(take).prefetch(AUTOTUNE)

    def once(self) -> tf.data.Dataset:
        """Every image once, in order, unaugmented (validation, evaluation)."""
        return self.batches(0, shuffle=False).prefetch(AUTOTUNE)


def images_are_grayscale(data: LabeledImages) -> bool:
    return bool(data.in_memory and data.images.shape[-1] == 1)


def label_counts(data: LabeledImages) -> list[int]:
    return np.bincount(data.labels, minlength=len(data.class_names)).tolist()
