"""What every converter gets: the Keras model, its calibration inputs and the intermediates the
converters build once per export run for each other, all through ``once`` (the TF SavedModel
that TFLite converts from, the float ONNX graph that ONNX int8 quantizes, the calibrated TFLite
model, sensitivity rankings)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from .options import ExportOptions

T = TypeVar("T")


@dataclass
class ConversionContext:
    model: object  # keras.Model
    options: ExportOptions
    calibration: np.ndarray | None = None  # float32 N x H x W x C, preprocessed like training
    notes: dict = field(default_factory=dict)  # per-target facts for the report (quant choice, ...)
    validation: object = None  # ValidationData, for converters that measure (--max-accuracy-drop)
    reference: object = None  # validate.Reference of the Keras model on ``validation``
    cache: dict = field(default_factory=dict)  # what ``once`` built, by key
    learned_ranges: dict | None = None  # a QAT run's activation ranges (edgekit.export.qat_ranges)
    _tmp: tempfile.TemporaryDirectory = field(default_factory=lambda: tempfile.TemporaryDirectory(prefix="edgekit-export-"))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        shape = tuple(self.model.inputs[0].shape[1:])
        return tuple(int(d) for d in shape)  # type: ignore[return-value]

    @property
    def workdir(self) -> Path:
        return Path(self._tmp.name)

    def require_calibration(self) -> np.ndarray:
        if self.calibration is None or len(self.calibration) == 0:
            raise ValueError("int8 export needs calibration data; pass --calibration DATA")
        return self.calibration

    def once(self, key: str, build: Callable[[], T]) -> T:
        """``build()``'s result, built on the first call for ``key`` in this export run only."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    @property
    def saved_model_dir(self) -> str:
        """A TF SavedModel of the Keras model with a (None, H, W, C) float32 signature.

        Keras 3's ``model.export`` is the reliable route into the TFLite converter on TF 2.21
        (``TFLiteConverter.from_keras_model`` and concrete functions over a Keras 3 model leave
        READ_VARIABLE ops that the calibrator cannot run).
        """
        return self.once("saved_model", self._export_saved_model)

    def _export_saved_model(self) -> str:
        path = self.workdir / "saved_model"
        self.model.export(str(path), format="tf_saved_model", verbose=False)
        return str(path)

    def close(self) -> None:
        self._tmp.cleanup()
