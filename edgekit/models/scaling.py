"""Scaling rules shared by the model families: one small, tested function each.

- ``make_divisible``: MobileNet v2's channel rounding (Sandler et al. 2018, the TF-slim and
  keras.applications ``_make_divisible``): nearest multiple of 8, never below 8, never more
  than 10% below the requested value.
- ``round_filters`` / ``round_repeats``: EfficientNet's compound scaling of width and depth
  (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs", eq. 3).
- ``correct_pad``: the explicit padding keras.applications puts before stride-2 "valid"
  convolutions so that odd and even inputs land on the same grid as TensorFlow's "same".
"""

from __future__ import annotations

import math


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` (at least ``min_value``, >= 90% of value)."""
    if divisor < 1:
        raise ValueError(f"divisor got {divisor!r}; expected a positive integer")
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet width scaling: ``filters * width`` rounded by ``make_divisible``."""
    return make_divisible(filters * width, divisor)


def round_repeats(repeats: int, depth: float) -> int:
    """EfficientNet depth scaling: ``ceil(depth * repeats)``."""
    return int(math.ceil(depth * repeats))


def correct_pad(size: tuple[int, int], kernel: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Zero padding ((top, bottom), (left, right)) before a stride-2 valid conv, as Keras does."""
    adjust = (1 - size[0] % 2, 1 - size[1] % 2)
    half = kernel // 2
    return ((half - adjust[0], half), (half - adjust[1], half))


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """floor((n + 2p - f) / s) + 1: the output length of a convolution or pooling window."""
    if stride < 1 or kernel < 1:
        raise ValueError(f"kernel {kernel!r} and stride {stride!r} must be positive")
    return (n + 2 * padding - kernel) // stride + 1
