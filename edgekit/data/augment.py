"""Training-time augmentation in pixel space (float32 0..255, model size), in tf.

Each augmentation is a row of ``AUGMENTATIONS`` (name -> description), which drives the
CLI choices and ``parse_augment``. All random draws are stateless (``tf.random.stateless_*``)
from a per-batch seed, so a seed gives the same augmented batches on every run, whatever the
number of parallel threads.

* flip: horizontal mirroring with probability 1/2.
* crop: random crop with padding (pad by ``crop_padding`` of the side with zeros, crop back
  to the original size; Krizhevsky et al. 2012, the CIFAR "pad 4, crop 32" recipe).
* scale: random zoom in or out about the image centre by a factor ~ U(1 - s, 1 + s)
  (the "scale" of Inception-style random resized crops, kept mild so no object leaves the frame).
* rotate / shear: random rotation and x/y shear about the image centre.
  crop, scale, rotate and shear form one affine map per image, applied with one interpolation.

``DEFAULT_AUGMENT`` (crop and scale) is what training uses unless told otherwise: it is safe
where a mirror image is another class (digits, letters, arrows), which flips are not, so flips
run only when asked for (``--augment flip``). Measured in benchmarks/results/small_data.md.
* color: a random shift of each channel by up to ``color_shift`` pixel levels.
* pca: AlexNet's "fancy PCA" colour augmentation (Krizhevsky, Sutskever, Hinton 2012, s. 4.1):
  with p_i, lambda_i the eigenvectors and eigenvalues of the 3x3 covariance of the training
  set's pixel colours (scaled to 0..1), add sum_i alpha_i lambda_i p_i, alpha_i ~ N(0, 0.1),
  to every pixel of an image (one draw of alpha per image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import tensorflow as tf

from edgekit.data.errors import DataError

AUGMENTATIONS: dict[str, str] = {
    "flip": "mirror left-right with probability 1/2",
    "crop": "random crop of the image padded with zeros",
    "scale": "random zoom in or out about the centre",
    "rotate": "random rotation about the centre",
    "shear": "random x and y shear about the centre",
    "color": "random shift of each colour channel",
    "pca": "AlexNet fancy-PCA colour noise from the training set's colour covariance",
}

# Safe for every image kind (no mirroring); the CLI repeats it (tests keep the two equal).
DEFAULT_AUGMENT = "crop,scale"


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run in training, and how strong each one is."""

    flip: bool = False
    crop: bool = False
    scale: bool = False
    rotate: bool = False
    shear: bool = False
    color: bool = False
    pca: bool = False
    crop_padding: float = 0.125  # fraction of each side; 4 px of a 32 px image
    scale_range: float = 0.1  # zoom ~ U(1 - s, 1 + s); must stay below 1
    rotate_degrees: float = 15.0  # angle ~ U(-d, d)
    shear_factor: float = 0.15  # shear ~ U(-s, s) in x and in y
    color_shift: float = 20.0  # pixel levels, ~ U(-s, s) per channel
    pca_std: float = 0.1  # std of alpha in fancy PCA

    def __post_init__(self) -> None:
        if not (isinstance(self.scale_range, (int, float)) and 0 <= self.scale_range < 1):
            raise DataError(f"AugmentConfig.scale_range got {self.scale_range!r}; expected a number in [0, 1)")
        for name in ("crop_padding", "rotate_degrees", "shear_factor", "color_shift", "pca_std"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise DataError(f"AugmentConfig.{name} got {value!r}; expected a finite number >= 0")

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(name for name in AUGMENTATIONS if getattr(self, name))

    @property
    def geometric(self) -> bool:
        return self.crop or self.scale or self.rotate or self.shear


def parse_augment(text: str | Iterable[str] | None) -> AugmentConfig:
    """``"flip,crop,pca"`` (or a list of names; "" or "none" for nothing) to an AugmentConfig."""
    if text is None:
        return AugmentConfig()
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in names if n.strip()]
    if names == ["none"]:
        return AugmentConfig()
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise DataError(
            f"augmentation got {', '.join(unknown)}; expected a comma list of {', '.join(AUGMENTATIONS)} (or none)"
        )
    return AugmentConfig(**{n: True for n in names})


@dataclass(frozen=True)
class ColourPCA:
    """Eigen-decomposition of the CxC covariance of pixel colours scaled to 0..1."""

    eigenvalues: np.ndarray  # (C,), descending
    eigenvectors: np.ndarray  # (C, C), column i is p_i

    @classmethod
    def from_pixel_batches(cls, batches: Iterable[np.ndarray]) -> "ColourPCA":
        """Fit from batches of pixels (..., C) in 0..255, accumulating in float64."""
        count, total, outer = 0, None, None
        for batch in batches:
            flat = np.asarray(batch, dtype=np.float64).reshape(-1, np.shape(batch)[-1]) / 255.0
            total = flat.sum(0) if total is None else total + flat.sum(0)
            outer = flat.T @ flat if outer is None else outer + flat.T @ flat
            count += len(flat)
        if count < 2:
            raise DataError(f"fancy PCA needs at least 2 pixels of training data; got {count}")
        mean = total / count
        cov = outer / count - np.outer(mean, mean)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1]
        return cls(np.clip(values[order], 0.0, None), vectors[:, order])


def _affine_transforms(batch: int, height: int, width: int, config: AugmentConfig, seeds: tf.Tensor,
                       scale_seed: tf.Tensor) -> tf.Tensor:
    """Per-image [B, 8] projective transforms mapping output to input coordinates (scale draws
    from its own seed, so the other augmentations draw what they drew before it existed)."""
    zeros = tf.zeros([batch])
    angle = zeros
    if config.rotate:
        limit = config.rotate_degrees * math.pi / 180.0
        angle = tf.random.stateless_uniform([batch], seeds[0], -limit, limit)
    shx, shy = zeros, zeros
    if config.shear:
        s = config.shear_factor
        shx = tf.random.stateless_uniform([batch], seeds[1], -s, s)
        shy = tf.random.stateless_uniform([batch], seeds[2], -s, s)
    tx, ty = zeros, zeros
    if config.crop:
        pad_y = int(height * config.crop_padding + 0.5)
        pad_x = int(width * config.crop_padding + 0.5)
        ty = tf.cast(tf.random.stateless_uniform([batch], seeds[3], -pad_y, pad_y + 1, tf.int32), tf.float32)
        tx = tf.cast(tf.random.stateless_uniform([batch], seeds[4], -pad_x, pad_x + 1, tf.int32), tf.float32)
    # Output-to-input map: zoom z shows the input at 1/z around the centre.
    inv_zoom = tf.ones([batch])
    if config.scale:
        s = config.scale_range
        inv_zoom = 1.0 / tf.random.stateless_uniform([batch], scale_seed, 1.0 - s, 1.0 + s)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # A = R(angle) @ [[1, shx], [shy, 1]] / zoom; input = A (output - c) + c + t
    a00, a01 = (cos - sin * shy) * inv_zoom, (cos * shx - sin) * inv_zoom
    a10, a11 = (sin + cos * shy) * inv_zoom, (sin * shx + cos) * inv_zoom
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a2 = cx + tx - a00 * cx - a01 * cy
    b2 = cy + ty - a10 * cx - a11 * cy
    return tf.stack([a00, a01, a2, a10, a11, b2, zeros, zeros], axis=1)


def augment_pixels_tf(
    pixels: tf.Tensor, config: AugmentConfig, seed: tf.Tensor, pca: ColourPCA | None = None
) -> tf.Tensor:
    """Augment a float32 pixel batch [B, H, W, C] (0..255); ``seed`` is an int [2] tensor."""
    if config.pca and pca is None:
        raise DataError("AugmentConfig.pca is on but no ColourPCA was given; fit one with fit_colour_pca")
    x = tf.convert_to_tensor(pixels, tf.float32)
    shape = tf.shape(x)
    batch, channels = shape[0], x.shape[-1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=10)
    if config.flip:
        mirror = tf.random.stateless_uniform([batch], seeds[0]) < 0.5
        x = tf.where(mirror[:, None, None, None], tf.reverse(x, axis=[2]), x)
    if config.geometric:
        height, width = x.shape[1], x.shape[2]
        transforms = _affine_transforms(batch, height, width, config, seeds[1:6], seeds[8])
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transforms, output_shape=tf.constant([height, width], tf.int32),
            fill_value=0.0, fill_mode="CONSTANT",
            # crop alone moves by whole pixels: nearest keeps pixel values exact
            interpolation="BILINEAR" if (config.rotate or config.shear or config.scale) else "NEAREST",
        )
    if config.color:
        s = config.color_shift
        x = x + tf.random.stateless_uniform([batch, 1, 1, channels], seeds[6], -s, s)
    if config.pca:
        alpha = tf.random.stateless_normal([batch, channels], seeds[7], stddev=config.pca_std)
        values = tf.constant(pca.eigenvalues, tf.float32)
        vectors = tf.constant(pca.eigenvectors, tf.float32)
        delta = tf.linalg.matmul(alpha * values, vectors, transpose_b=True) * 255.0
        x = x + delta[:, None, None, :]
    return tf.clip_by_value(x, 0.0, 255.0)
