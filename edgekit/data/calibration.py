"""Calibration data for post-training quantization: one narrow protocol, adapters per source.

The export takes ``CalibrationData``: an iterable of float32 input batches, already
preprocessed exactly as in training (``PreprocessSpec``), shaped (batch, H, W, C) (the shape of
ONNX Runtime's CalibrationDataReader and of TFLite's representative dataset). The CLI's
``--calibration DATA`` becomes ``calibration_batches`` of a data source; a Python caller may
pass any object of the protocol as ``ExportOptions.calibration``. ``calibration_array`` checks
the batches and joins them into the one array the quantizers read (they sample and slice it,
so it is materialised once per export); no quantizer knows where the images came from.
"""

from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

import numpy as np
import tensorflow as tf

from edgekit.data.errors import DataError
from edgekit.data.pipeline import make_dataset
from edgekit.data.sources import LabeledImages
from edgekit.messages import first_line
from edgekit.runtime.spec import PreprocessSpec


@runtime_checkable
class CalibrationData(Protocol):
    """Iterable (more than once) of float32 (batch, H, W, C) preprocessed input batches."""

    def __iter__(self) -> Iterator[np.ndarray]: ...


class ImageCalibration:
    """``num`` images of a LabeledImages, preprocessed by the training pipeline, in batches."""

    def __init__(self, data: LabeledImages, spec: PreprocessSpec, batch_size: int = 1):
        self.data, self.spec, self.batch_size = data, spec, batch_size

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        ds = make_dataset(self.data, self.spec, self.batch_size, training=False, shuffle=False)
        try:
            for x, _ in ds.as_numpy_iterator():
                if not np.isfinite(x).all():
                    raise DataError(f"calibration batch of {self.data.source} has non-finite values")
                yield x
        except tf.errors.OpError as exc:
            # A file that Pillow decoded at load time but tf cannot (or one changed since).
            raise DataError(f"calibration data {self.data.source} cannot be decoded: {first_line(exc)}") from None


class ArrayCalibration:
    """Already preprocessed float32 N x H x W x C input (e.g. from a .npy file), in batches."""

    def __init__(self, inputs: np.ndarray, batch_size: int = 1):
        inputs = np.asarray(inputs)
        if inputs.ndim != 4 or inputs.dtype != np.float32 or len(inputs) == 0:
            raise DataError(f"calibration array got {inputs.dtype} {inputs.shape}; expected non-empty float32 NxHxWxC")
        _check_counts(len(inputs), len(inputs), batch_size)
        self.inputs, self.batch_size = inputs, batch_size

    def __len__(self) -> int:
        return len(self.inputs) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.inputs[start:start + self.batch_size]


def calibration_array(batches: CalibrationData, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Every batch of ``batches`` in one float32 N x H x W x C array: what the quantizers take.
    DataError for a batch of another rank, dtype or image shape (``shape``: H, W, C), for
    non-finite values and for no images at all."""
    arrays = []
    for i, batch in enumerate(batches):
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.dtype != np.float32 or (shape is not None and batch.shape[1:] != tuple(shape)):
            want = "x".join(map(str, shape)) if shape is not None else "H x W x C"
            raise DataError(f"calibration batch {i} got {batch.dtype} {batch.shape}; expected float32 "
                            f"(batch, {want}) preprocessed as in training")
        if not np.isfinite(batch).all():
            raise DataError(f"calibration batch {i} has non-finite values")
        arrays.append(batch)
    if not arrays or sum(len(a) for a in arrays) == 0:
        raise DataError("calibration data gave no images")
    return np.concatenate(arrays)


def _check_counts(num: int, available: int, batch_size: int) -> None:
    for name, value in (("num", num), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DataError(f"calibration {name} got {value!r}; expected an integer >= 1")
    if num % batch_size:
        raise DataError(f"calibration num {num} is not a multiple of batch_size {batch_size}")
    if available < num:
        raise DataError(f"calibration needs {num} images; the data has {available}")


def calibration_batches(
    data: LabeledImages, spec: PreprocessSpec, num: int = 300, batch_size: int = 1, seed: int = 0
) -> ImageCalibration:
    """A seeded sample of ``num`` images of ``data`` as CalibrationData of (batch_size, H, W, C).

    Raises DataError now for bad counts or too few images, and while iterating for an image
    that cannot be decoded.
    """
    _check_counts(num, len(data), batch_size)
    pick = np.sort(np.random.default_rng(seed).choice(len(data), num, replace=False))
    sample = data.subset(pick, source=f"{num} calibration images (seed {seed}) of {data.source}")
    return ImageCalibration(sample, spec, batch_size)
