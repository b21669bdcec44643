"""The numpy implementation of :class:`PreprocessSpec`, identical to the TensorFlow one.

Order of operations (the contract the tf.data pipeline implements with TensorFlow ops):

1. resize the uint8 HxWxC image to ``spec.size`` in float32, as
   ``tf.image.resize(image, size, method, antialias=False)`` does: half-pixel centres, edge
   clamping, and for bilinear the same float32 interpolation order as TensorFlow's
   ResizeBilinear kernel (x first, then y); nearest uses ``floor((i + 0.5) * in / out)``;
2. convert channels on the float image: gray -> RGB repeats the channel; RGB -> gray is
   ``tf.image.rgb_to_grayscale`` on a float image (ITU-R 601 weights 0.2989, 0.5870, 0.1140);
3. ``(x - mean) / std`` per channel.

Results agree with TensorFlow to float32 rounding (the tests check this against TF itself).
This module imports numpy only.
"""

from __future__ import annotations

import numpy as np

from .spec import PreprocessSpec

GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)  # tf.image.rgb_to_grayscale


def preprocess(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HxW or HxWxC (C = 1 or 3) image -> float32 model input of shape (*spec.size, channels)."""
    image = _check_image(image)
    resized = resize(image, spec.size, spec.resize)
    converted = convert_channels(resized, spec.channels)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (converted - mean) / std


def resize(image: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """Resize an HxWxC image to ``size`` = (height, width) like tf.image.resize; float32 result."""
    if method == "bilinear":
        return _resize_bilinear(image, size)
    if method == "nearest":
        return _resize_nearest(image, size)
    raise ValueError(f"resize method got {method!r}; expected bilinear or nearest")


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Float HxWxC image -> HxWx``channels`` (gray <-> RGB as TensorFlow does it)."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return np.repeat(image, 3, axis=-1)
    if have == 3 and channels == 1:
        return (image @ GRAY_WEIGHTS)[..., None]
    raise ValueError(f"cannot convert an image with {have} channels to {channels}")


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image got {type(image).__name__}; expected a numpy uint8 array (H, W) or (H, W, C)")
    if image.dtype != np.uint8:
        raise ValueError(f"image got dtype {image.dtype}; expected uint8 pixels 0..255")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image got shape {image.shape}; expected (H, W), (H, W, 1) or (H, W, 3)")
    return image


def _source_coords(in_size: int, out_size: int) -> np.ndarray:
    """TensorFlow's HalfPixelScaler in float32: (i + 0.5) * in / out - 0.5."""
    scale = np.float32(in_size) / np.float32(out_size)
    return (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)


def _interpolation(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and lerp weight per output position (TF compute_interpolation_weights)."""
    coords = _source_coords(in_size, out_size)
    floor = np.floor(coords)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(coords), in_size - 1).astype(np.intp)
    return lower, upper, coords - floor


def _resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    (out_h, out_w), (in_h, in_w) = size, image.shape[:2]
    y0, y1, ly = _interpolation(in_h, int(out_h))
    x0, x1, lx = _interpolation(in_w, int(out_w))
    pixels = image.astype(np.float32)
    lx = lx[None, :, None]
    rows0, rows1 = pixels[y0], pixels[y1]
    top = rows0[:, x0] + (rows0[:, x1] - rows0[:, x0]) * lx
    bottom = rows1[:, x0] + (rows1[:, x1] - rows1[:, x0]) * lx
    return top + (bottom - top) * ly[:, None, None]


def _resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    (out_h, out_w), (in_h, in_w) = size, image.shape[:2]
    rows = _nearest_index(in_h, int(out_h))
    cols = _nearest_index(in_w, int(out_w))
    return image[rows][:, cols].astype(np.float32)


def _nearest_index(in_size: int, out_size: int) -> np.ndarray:
    scale = np.float32(in_size) / np.float32(out_size)
    coords = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
    return np.minimum(np.floor(coords), in_size - 1).astype(np.intp)
