"""Data layer of edgekit: labelled image sources, splits, preprocessing, tf.data pipelines,
augmentation and calibration data for quantization.

It imports TensorFlow, numpy, Pillow and ``edgekit.runtime.spec`` only.
"""

from edgekit.data.augment import AUGMENTATIONS, AugmentConfig, ColourPCA, augment_pixels_tf, parse_augment
from edgekit.data.calibration import (
    ArrayCalibration,
    CalibrationData,
    ImageCalibration,
    calibration_batches,
)
from edgekit.data.errors import DataError
from edgekit.data.grid import augment_grid
from edgekit.data.idx import parse_idx, read_idx, write_idx
from edgekit.data.pipeline import fit_colour_pca, make_dataset, pixel_dataset
from edgekit.data.preprocess import GRAY_WEIGHTS, decode_image_tf, normalize_tf, preprocess_tf, to_pixels_tf
from edgekit.data.sources import (
    FASHION_MNIST_CLASSES,
    IMAGE_EXTENSIONS,
    SPLITS,
    LabeledImages,
    check_image_file,
    load_split,
    stratified_split,
)

__all__ = [
    "AUGMENTATIONS", "ArrayCalibration", "AugmentConfig", "CalibrationData", "ColourPCA", "DataError",
    "FASHION_MNIST_CLASSES", "GRAY_WEIGHTS", "IMAGE_EXTENSIONS", "ImageCalibration", "LabeledImages",
    "SPLITS", "augment_grid", "augment_pixels_tf", "calibration_batches", "check_image_file", "decode_image_tf",
    "fit_colour_pca", "load_split", "make_dataset", "normalize_tf", "parse_augment", "parse_idx", "pixel_dataset",
    "preprocess_tf", "read_idx", "stratified_split", "to_pixels_tf", "write_idx",
]
