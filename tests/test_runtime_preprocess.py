"""The numpy preprocessing agrees with TensorFlow's (tf.image.resize, rgb_to_grayscale).

TensorFlow is the reference and is imported outright: the training environment, where this
suite runs, always has it, so a broken import must fail these tests, not skip them.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.runtime import PreprocessSpec, preprocess  # noqa: E402
from edgekit.runtime.preprocess import convert_channels, resize  # noqa: E402

import tensorflow as tf  # noqa: E402 - the reference implementation

SOURCE_SHAPES = [(7, 5), (16, 16), (33, 20), (3, 1), (1, 1), (61, 100)]
TARGET_SIZES = [(16, 16), (5, 9), (1, 1), (31, 17), (96, 96)]




def _image(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def _tf_preprocess(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The TensorFlow ops of the contract, in the contract's order."""
    x = tf.image.resize(image, spec.size, method=spec.resize, antialias=False)
    x = tf.cast(x, tf.float32)
    if x.shape[-1] == 3 and spec.channels == 1:
        x = tf.image.rgb_to_grayscale(x)
    elif x.shape[-1] == 1 and spec.channels == 3:
        x = tf.image.grayscale_to_rgb(x)
    return ((x - np.float32(spec.mean)) / np.float32(spec.std)).numpy()


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("source", SOURCE_SHAPES)
def test_resize_matches_tf_image_resize(source, channels, method):
    image = _image(*source, channels)
    for size in TARGET_SIZES:
        expected = tf.cast(tf.image.resize(image, size, method=method, antialias=False), tf.float32).numpy()
        got = resize(image, size, method)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)  # float32 rounding on 0..255


@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec((16, 16)),
        PreprocessSpec((24, 20), channels=1, mean=(0.0,), std=(255.0,)),
        PreprocessSpec((9, 13), channels=3, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
        PreprocessSpec((8, 8), resize="nearest"),
    ],
    ids=["rgb-127", "gray-unit", "imagenet", "nearest"],
)
@pytest.mark.parametrize("source_channels", [1, 3])
def test_preprocess_matches_tensorflow_pipeline(spec, source_channels):
    image = _image(37, 29, source_channels, seed=3)
    got = preprocess(image, spec)
    assert got.dtype == np.float32 and got.shape == (*spec.size, spec.channels)
    np.testing.assert_allclose(got, _tf_preprocess(image, spec), rtol=0, atol=1e-5)


def test_two_dimensional_gray_image_is_accepted():
    image = _image(10, 12, 1)
    spec = PreprocessSpec((5, 6), channels=3)
    np.testing.assert_array_equal(preprocess(image[..., 0], spec), preprocess(image, spec))


def test_gray_weights_are_tensorflows():
    rgb = np.eye(3, dtype=np.float32)[None]  # pure red, green and blue: each gives its channel's weight
    expected = tf.image.rgb_to_grayscale(rgb).numpy()[0, :, 0]
    np.testing.assert_array_equal(convert_channels(rgb, 1)[0, :, 0], expected)
    image = np.random.default_rng(5).uniform(0, 255, (6, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(convert_channels(image, 1), tf.image.rgb_to_grayscale(image).numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((4, 4, 3), np.float32), "dtype float32; expected uint8"),
        (np.zeros((4, 4, 4), np.uint8), r"shape \(4, 4, 4\)"),
        (np.zeros((4,), np.uint8), r"shape \(4,\)"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\)"),
    ],
)
def test_bad_images_are_refused(image, message):
    with pytest.raises(ValueError, match=message):
        preprocess(image, PreprocessSpec((4, 4)))


def test_non_array_is_refused():
    with pytest.raises(TypeError, match="expected a numpy uint8 array"):
        preprocess([[1, 2], [3, 4]], PreprocessSpec((4, 4)))
