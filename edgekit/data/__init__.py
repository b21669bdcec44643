"""Data layer of edgekit: labelled image sources, splits, preprocessing, tf.data pipelines,
augmentation and calibration data for quantization.

It imports TensorFlow, numpy, Pillow and ``edgekit.runtime.spec`` only. The sources (image
folders, IDX files, .npz; ``load_split``, ``LabeledImages``) need no TensorFlow and are
imported eagerly, so that evaluating an exported file on a device reads data without it; the
TensorFlow parts (pipelines, tf preprocessing, augmentation, calibration) are imported on first
use of one of their names (PEP 562 module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgekit.data.errors import DataError
from edgekit.data.idx import parse_idx, read_idx, write_idx
from edgekit.data.sources import (
    FASHION_MNIST_CLASSES,
    IMAGE_EXTENSIONS,
    SPLITS,
    LabeledImages,
    check_image_file,
    load_split,
    stratified_split,
)

# name -> submodule of the parts that import TensorFlow, loaded when a name is first asked for.
_LAZY = {
    "AUGMENTATIONS": "augment", "AugmentConfig": "augment", "ColourPCA": "augment", "DEFAULT_AUGMENT": "augment",
    "augment_pixels_tf": "augment", "parse_augment": "augment",
    "ArrayCalibration": "calibration", "CalibrationData": "calibration", "ImageCalibration": "calibration",
    "calibration_array": "calibration", "calibration_batches": "calibration",
    "augment_grid": "grid",
    "fit_colour_pca": "pipeline", "make_dataset": "pipeline", "pixel_dataset": "pipeline",
    "GRAY_WEIGHTS": "preprocess", "decode_image_tf": "preprocess", "normalize_tf": "preprocess",
    "preprocess_tf": "preprocess", "to_pixels_tf": "preprocess",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them
    from edgekit.data.augment import (AUGMENTATIONS, DEFAULT_AUGMENT, AugmentConfig, ColourPCA, augment_pixels_tf,
                                      parse_augment)
    from edgekit.data.calibration import (ArrayCalibration, CalibrationData, ImageCalibration, calibration_array,
                                          calibration_batches)
    from edgekit.data.grid import augment_grid
    from edgekit.data.pipeline import fit_colour_pca, make_dataset, pixel_dataset
    from edgekit.data.preprocess import GRAY_WEIGHTS, decode_image_tf, normalize_tf, preprocess_tf, to_pixels_tf


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AUGMENTATIONS", "ArrayCalibration", "AugmentConfig", "CalibrationData", "ColourPCA", "DEFAULT_AUGMENT", "DataError",
    "FASHION_MNIST_CLASSES", "GRAY_WEIGHTS", "IMAGE_EXTENSIONS", "ImageCalibration", "LabeledImages",
    "SPLITS", "augment_grid", "augment_pixels_tf", "calibration_array", "calibration_batches", "check_image_file", "decode_image_tf",
    "fit_colour_pca", "load_split", "make_dataset", "normalize_tf", "parse_augment", "parse_idx", "pixel_dataset",
    "preprocess_tf", "read_idx", "stratified_split", "to_pixels_tf", "write_idx",
]
