"""Test-time augmentation: the views of a batch whose softmax outputs are averaged.

As in the benchmark practice of Krizhevsky et al. 2012 (AlexNet, section 4.1): the image and
its mirror ("flip"), or the four corner crops and the centre crop of a slightly larger image
and their mirrors ("10crop"). The crop geometry is defined here once; it is applied with numpy
to exported files (below) and with TensorFlow ops to Keras models (``edgekit.evaluation.keras_model``),
the resize being ``edgekit.runtime.preprocess.resize``, which matches ``tf.image.resize``.

Imports numpy and ``edgekit.runtime`` only.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from edgekit.runtime.preprocess import resize

CROP_ENLARGE = 1.125  # 10crop: crops of the input size from an image 12.5% larger (36 for 32)


class Tta(str, Enum):
    NONE = "none"
    FLIP = "flip"
    TEN_CROP = "10crop"

    @classmethod
    def parse(cls, value: "str | Tta") -> "Tta":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"--tta got {value!r}; expected one of {', '.join(m.value for m in cls)}") from None


TTA_MODES = tuple(m.value for m in Tta)


def enlarged_size(size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the image the 10 crops of ``size`` are cut from."""
    h, w = size
    return round(h * CROP_ENLARGE), round(w * CROP_ENLARGE)


def crop_offsets(size: tuple[int, int]) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop of ``size`` in the enlarged image."""
    (h, w), (H, W) = size, enlarged_size(size)
    return [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), ((H - h) // 2, (W - w) // 2)]


def views(pixels: np.ndarray, tta: Tta) -> list[np.ndarray]:
    """The views of ``pixels`` (N x H x W x C float32 pixels at the model's size, before
    normalisation) for ``tta``, each N x H x W x C."""
    if tta is Tta.NONE:
        return [pixels]
    if tta is Tta.FLIP:
        return [pixels, pixels[:, :, ::-1]]
    size = pixels.shape[1:3]
    big = np.stack([resize(image, enlarged_size(size), "bilinear") for image in pixels])
    h, w = size
    crops = [big[:, y:y + h, x:x + w] for y, x in crop_offsets(size)]
    return crops + [crop[:, :, ::-1] for crop in crops]
