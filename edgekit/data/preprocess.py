"""The tf implementation of ``PreprocessSpec``: uint8 pixels to model input.

Steps, in this order (the numpy implementation in ``edgekit.runtime`` must do the same; the
tests compare the two):

1. cast to float32;
2. resize to ``spec.size`` with ``tf.image.resize`` (``spec.resize``, antialias off, half-pixel
   centres, the TF2 default); an image already at that size passes through unchanged;
3. channels: 1 -> 3 repeats the grey channel; 3 -> 1 is ``x @ GRAY_WEIGHTS`` on the float
   image (the weights of ``tf.image.rgb_to_grayscale``, ITU-R 601, as
   ``edgekit.runtime.preprocess`` uses); an alpha channel is dropped;
4. ``(x - mean) / std`` per channel, in float32.

Steps 1-3 give "pixels" (float32, 0..255, model size and channels), where augmentation works;
step 4 is ``normalize_tf``.
"""

from __future__ import annotations

import tensorflow as tf

from edgekit.runtime.spec import PreprocessSpec

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale; == runtime


def _to_channels(x: tf.Tensor, channels: int) -> tf.Tensor:
    """Convert float images (..., H, W, C) with C in 1..4 to ``channels`` (1 or 3)."""
    weights = tf.constant(GRAY_WEIGHTS, tf.float32)
    branches = {  # (from grey or grey+alpha, from RGB or RGBA)
        1: (lambda: x[..., :1], lambda: tf.tensordot(x[..., :3], weights, axes=[[-1], [0]])[..., None]),
        3: (lambda: tf.concat([x[..., :1]] * 3, axis=-1), lambda: x[..., :3]),
    }
    from_gray, from_colour = branches[channels]
    static_c = x.shape[-1]
    if static_c is not None:
        out = from_gray() if static_c < 3 else from_colour()
    else:  # decoded files: channel count known only at run time
        out = tf.cond(tf.shape(x)[-1] < 3, from_gray, from_colour)
    return tf.ensure_shape(out, [None] * (x.shape.rank - 1) + [channels])


def to_pixels_tf(images: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """Steps 1-3: uint8 (N)HWC images to float32 pixels of spec.size and spec.channels."""
    x = tf.cast(images, tf.float32)
    x = tf.image.resize(x, spec.size, method=spec.resize, antialias=False)
    return _to_channels(x, spec.channels)


def normalize_tf(pixels: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """Step 4: ``(pixels - mean) / std`` per channel."""
    mean = tf.constant(spec.mean, tf.float32)
    std = tf.constant(spec.std, tf.float32)
    return (tf.cast(pixels, tf.float32) - mean) / std


def preprocess_tf(images_uint8: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """uint8 HxWxC or NxHxWxC images (any size, 1-4 channels) to float32 model input."""
    return normalize_tf(to_pixels_tf(images_uint8, spec), spec)


def decode_image_tf(path: tf.Tensor) -> tf.Tensor:
    """Read and decode a jpg/png/bmp/gif file (first frame) to uint8 HxWxC, C as stored."""
    raw = tf.io.read_file(path)
    return tf.io.decode_image(raw, channels=0, dtype=tf.uint8, expand_animations=False)
