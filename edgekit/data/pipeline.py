"""tf.data input pipelines over ``LabeledImages``.

Per image: decode (file sources), resize and convert channels (``to_pixels_tf``), on
``tf.data.AUTOTUNE`` threads with deterministic order; cache those pixels in memory when they
fit in ``CACHE_BUDGET_BYTES``; shuffle with a seed; batch; augment (training only, stateless
seeded draws per batch); normalise; prefetch. Labels are int64 class indices (sparse).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgekit.data.augment import AugmentConfig, ColourPCA, augment_pixels_tf
from edgekit.data.errors import DataError
from edgekit.data.preprocess import decode_image_tf, normalize_tf, to_pixels_tf
from edgekit.data.sources import LabeledImages
from edgekit.runtime.spec import PreprocessSpec

CACHE_BUDGET_BYTES = 1 << 30  # cache resized float32 pixels only when they fit in this
AUTOTUNE = tf.data.AUTOTUNE


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size got {batch_size!r}; expected an integer >= 1")


def _pixel_elements(data: LabeledImages, spec: PreprocessSpec, order: tf.data.Dataset) -> tf.data.Dataset:
    """Map a dataset of indices into ``data`` to (pixels, label) elements."""
    labels = tf.constant(data.labels)
    if data.in_memory:
        images = tf.constant(data.images)
        load = lambda i: images[i]  # noqa: E731
    else:
        paths = tf.constant(data.images)
        load = lambda i: decode_image_tf(paths[i])  # noqa: E731
    return order.map(lambda i: (to_pixels_tf(load(i), spec), labels[i]),
                     num_parallel_calls=AUTOTUNE, deterministic=True)


def pixel_dataset(
    data: LabeledImages, spec: PreprocessSpec, batch_size: int, training: bool = False,
    augment: AugmentConfig | None = None, seed: int = 0, shuffle: bool | None = None,
    pca: ColourPCA | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 at spec size, int64 labels), augmented when training.

    ``shuffle`` defaults to ``training``. ``pca`` is fitted on ``data`` when needed and not given.
    """
    _check_batch_size(batch_size)
    if len(data) == 0:
        raise DataError(f"{data.source} has no images; expected at least 1")
    shuffle = training if shuffle is None else shuffle
    h, w = spec.size
    cache = len(data) * h * w * spec.channels * 4 <= CACHE_BUDGET_BYTES
    order = tf.data.Dataset.range(len(data))
    if shuffle and not cache:  # shuffle cheap indices before decoding
        order = order.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    ds = _pixel_elements(data, spec, order)
    if cache:
        ds = ds.cache()
        if shuffle:
            ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augment is not None and augment.enabled:
        if augment.pca and pca is None:
            pca = fit_colour_pca(data, spec, seed=seed)
        if pca is not None and pca.eigenvalues.shape != (spec.channels,):
            raise DataError(f"ColourPCA has {pca.eigenvalues.shape[0]} channels; expected {spec.channels}")
        # One stateless seed pair per batch; rerandomised each epoch, fixed by ``seed``.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda batch, s: (augment_pixels_tf(batch[0], augment, s, pca), batch[1]),
            num_parallel_calls=AUTOTUNE, deterministic=True,
        )
    return ds


def make_dataset(
    data: LabeledImages, spec: PreprocessSpec, batch_size: int, training: bool,
    augment: AugmentConfig | None = None, seed: int = 0, shuffle: bool | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 model input, int64 labels) ready for ``model.fit``/``evaluate``.

    Augmentation runs only when ``training``; ``shuffle`` defaults to ``training``.
    """
    ds = pixel_dataset(data, spec, batch_size, training, augment, seed, shuffle)
    ds = ds.map(lambda x, y: (normalize_tf(x, spec), y), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE)


def fit_colour_pca(data: LabeledImages, spec: PreprocessSpec, max_images: int = 2000, seed: int = 0) -> ColourPCA:
    """Fancy-PCA statistics from up to ``max_images`` images of ``data`` (a seeded sample)."""
    if len(data) == 0:
        raise DataError(f"{data.source} has no images to fit fancy PCA on")
    batches = pixel_dataset(data.sample(max_images, seed), spec, batch_size=64).as_numpy_iterator()
    return ColourPCA.from_pixel_batches(x for x, _ in batches)
