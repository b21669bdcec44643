"""Calibration and validation inputs for an export, prepared by the data layer's tf
preprocessing with the model's own PreprocessSpec (so they match training pixel for pixel).

Both are materialised as float32 arrays up front: a missing, empty or undecodable source then
fails before any converter runs or any file is written.

Validation keeps the resized pixels too (``ValidationData.pixels``): a file whose input differs
from the trained model's (raw uint8 pixels, RGB for a gray model) gets its inputs made from them
as ``edgekit.runtime`` makes them from an image, so the accuracy the export report gives for a
file is the one ``edgekit evaluate FILE`` measures on the same images, image for image (undoing
the normalisation in float would move pixels that fall exactly between two integers, which the
uint8 input then rounds the other way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.runtime.spec import PreprocessSpec

DEFAULT_NUM_CALIBRATION = 300
RANDOM_VALIDATION = 64  # inputs used when no data is known at all


@dataclass(frozen=True)
class ValidationData:
    inputs: np.ndarray  # float32 N x H x W x C
    labels: np.ndarray | None
    source: str
    class_names: tuple[str, ...] = ()
    pixels: np.ndarray | None = None  # float32 N x H x W x C: resized, unnormalised (``inputs`` before step 4)


def load_calibration(path: str, spec: PreprocessSpec, num: int | None) -> tuple[np.ndarray, str]:
    """``num`` seeded images of the train split of ``path`` (default up to 300), preprocessed."""
    from edgekit.data import calibration_array, calibration_batches, load_split

    data = load_split(path, "train")
    n = min(DEFAULT_NUM_CALIBRATION, len(data)) if num is None else num
    batches = calibration_batches(data, spec, num=n, batch_size=1, seed=0)
    return calibration_array(batches, (*spec.size, spec.channels)), batches.data.source


def given_calibration(batches, spec: PreprocessSpec) -> tuple[np.ndarray, str]:
    """A Python caller's own CalibrationData (ExportOptions.calibration that is not a path)."""
    from edgekit.data import DataError, calibration_array

    if isinstance(batches, (bytes, np.ndarray)) or not hasattr(batches, "__iter__"):
        raise DataError(f"ExportOptions.calibration got {type(batches).__name__}; expected a data path or "
                        "an iterable of float32 (batch, H, W, C) batches (edgekit.data.CalibrationData)")
    images = calibration_array(batches, (*spec.size, spec.channels))
    return images, f"{len(images)} calibration images from a {type(batches).__name__}"


def load_validation(path: str, spec: PreprocessSpec, num: int, num_classes: int) -> ValidationData:
    """Up to ``num`` seeded images of the test split of ``path``, else of its validation part."""
    from edgekit.data import DataError, load_split, pixel_dataset

    try:
        data = load_split(path, "test")
    except DataError:
        data = load_split(path, "val")
    data = data.sample(num, seed=0)  # the images `edgekit evaluate --limit NUM` takes
    xs, ys = [], []
    for x, y in pixel_dataset(data, spec, batch_size=64, training=False, shuffle=False).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DataError(f"validation data {data.source} is empty")
    labels, pixels = np.concatenate(ys), np.concatenate(xs)
    # Labels of a dataset with other classes than the model say nothing about its accuracy.
    known = len(data.class_names) == num_classes
    return ValidationData(normalize(pixels, spec), labels if known else None, data.source,
                          data.class_names if known else (), pixels=pixels)


def normalize(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``(pixels - mean) / std`` in float32: step 4 of the preprocessing, as ``normalize_tf``
    and ``edgekit.runtime.preprocess`` compute it (the same float32 operations, bit for bit)."""
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    return ((pixels.astype(np.float32, copy=False) - mean) / std).astype(np.float32, copy=False)


def random_validation(spec: PreprocessSpec, num: int | None = None) -> ValidationData:
    """Seeded random pixels, normalised: enough to compare outputs when no data is known
    (``num`` of them, at most RANDOM_VALIDATION)."""
    h, w = spec.size
    n = RANDOM_VALIDATION if num is None else max(1, min(RANDOM_VALIDATION, int(num)))
    pixels = np.random.default_rng(0).integers(0, 256, (n, h, w, spec.channels)).astype(np.float32)
    return ValidationData(normalize(pixels, spec), None, f"{n} random images (no data known)", pixels=pixels)
