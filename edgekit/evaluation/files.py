"""Evaluating what ``edgekit export`` writes: a .tflite, .onnx or .ort file run through
``edgekit.runtime.Model``, which reads the preprocessing (size, channels, normalisation,
layout), the class names and the input form (raw uint8 pixels, RGB for a grayscale model) from
the file's metadata, so that each image reaches the file as it would on the device.

Without test-time augmentation an image is prepared by ``Model.prepare`` (what ``edgekit
predict`` does); with it, the views are cut from the file's pixels with numpy (``tta.views``)
and then normalised as the metadata says. A uint8-input file rounds the resized pixels of the
10 crops to integers, as any camera frame is.

Imports numpy, Pillow and ``edgekit.runtime`` only: no TensorFlow, no Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgekit.data.sources import LabeledImages
from edgekit.runtime import Model, load_image, preprocess
from edgekit.runtime.files import FORMATS
from edgekit.runtime.spec import PreprocessSpec

from .tta import Tta, views

# What MODEL of ``edgekit evaluate`` may be (the Keras kinds are read by ``keras_model``).
EXPECTED = "expected an edgekit run directory, a .keras file or an exported .tflite, .onnx or .ort file"
BATCH = 64  # images per predict call (times the number of views)


def is_model_file(path) -> bool:
    """True for a path named like an exported file (.tflite, .onnx, .ort)."""
    return Path(str(path)).suffix.lower() in FORMATS


@dataclass(frozen=True)
class FileModel:
    """An exported classifier file, checked to be usable by ``edgekit evaluate``."""

    model: Model
    path: str

    @classmethod
    def load(cls, path: str) -> "FileModel":
        """The file at ``path``; ValueError (RuntimeModelError) naming the problem for a missing,
        corrupt or foreign file, one without metadata, or an embedding model."""
        model = Model(path)
        if model.metadata is None:
            raise ValueError(f"MODEL {path!r} carries no edgekit metadata nor usable TFLite Model Metadata, so its "
                             "images cannot be prepared; export the model with 'edgekit export'")
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"MODEL {path!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                             "edgekit evaluate needs one image input and one output of class scores")
        if model.is_embedding:
            raise ValueError(f"MODEL {path!r} is an embedding model (its output is a feature vector, no class "
                             "scores); edgekit evaluate needs a classifier file")
        return cls(model, path)

    @property
    def spec(self) -> PreprocessSpec:
        return self.model.metadata.preprocess

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.model.metadata.class_names

    @property
    def num_classes(self) -> int | None:
        """Classes the file scores: its class names, else the size of its output."""
        return len(self.class_names) or self.model.outputs[0].shape[-1]

    def probabilities(self, images: LabeledImages, tta: Tta | str = Tta.NONE) -> np.ndarray:
        """N x classes probabilities, averaged over the ``tta`` views of each image."""
        tta, out = Tta.parse(tta), []
        for start in range(0, len(images), BATCH):
            batch = [self._read(images, i) for i in range(start, min(start + BATCH, len(images)))]
            out.append(np.mean([self._scores(x) for x in self._inputs(batch, tta)], axis=0))
        return np.concatenate(out)

    def _read(self, images: LabeledImages, i: int) -> np.ndarray:
        if images.in_memory:
            return images.images[i]
        return load_image(images.images[i], self.spec.channels)  # Pillow, as edgekit predict reads it

    def _inputs(self, batch: list[np.ndarray], tta: Tta) -> list[np.ndarray]:
        if tta is Tta.NONE:
            return [np.stack([self.model.prepare(image) for image in batch])]
        spec = self.spec
        as_pixels = replace(spec, mean=(0.0,), std=(1.0,))  # resize and channels only: (x - 0) / 1 is exact
        pixels = np.stack([preprocess(image, as_pixels) for image in batch])
        mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
        normalised = [(v - mean) / std for v in views(pixels, tta)]
        if self.model.metadata.layout.upper() == "NCHW":
            normalised = [v.transpose(0, 3, 1, 2) for v in normalised]
        return [np.ascontiguousarray(v) for v in normalised]

    def _scores(self, x: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.model.predict(x), dtype=np.float32).reshape(len(x), -1)
        out = self.model.outputs[0]
        return _probabilities(scores, out.quantization if out.dtype.kind in "iu" else None)


def _probabilities(scores: np.ndarray, quantization) -> np.ndarray:
    """Rows of scores as probabilities: as they are when they already are (non-negative,
    summing to 1 up to half a quantization step each), else their softmax."""
    step = float(quantization.scale) if quantization is not None else 0.0
    tolerance = 1e-3 + scores.shape[1] * step / 2
    if scores.min() >= -tolerance and np.all(np.abs(scores.sum(axis=1) - 1.0) <= tolerance):
        return scores
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
