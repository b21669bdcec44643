"""Validation of a written file: run it through ``edgekit.runtime.Model`` next to the Keras
model on the same preprocessed inputs and compare outputs and top-1 predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import ValidationData

# Validation runs the Keras model and the file on chunks of the images (see batch_size).
MAX_BATCH = 64
BATCH_PIXELS = 224 * 224 * 8  # 8 images at 224x224, 64 at 79x79 or less, 1 at 634x634 or more
# fp32 exports must reproduce the Keras model this closely, or the export fails.
FP32_MAX_ABS_DIFF = 1e-4
FP32_MIN_AGREEMENT = 0.999


@dataclass(frozen=True)
class Reference:
    outputs: np.ndarray
    accuracy: float | None


@dataclass(frozen=True)
class Validation:
    samples: int
    agreement: float  # fraction of top-1 predictions equal to Keras's
    max_abs_diff: float
    mean_abs_diff: float
    accuracy: float | None
    min_cosine: float = 1.0  # cosine similarity of each sample's outputs to Keras's (embeddings)

    def fp32_problem(self) -> str | None:
        if self.max_abs_diff > FP32_MAX_ABS_DIFF or self.agreement < FP32_MIN_AGREEMENT:
            return (f"fp32 export disagrees with the Keras model: max abs diff {self.max_abs_diff:.3g} "
                    f"(limit {FP32_MAX_ABS_DIFF:g}), top-1 agreement {100 * self.agreement:.2f}% "
                    f"(limit {100 * FP32_MIN_AGREEMENT:.1f}%)")
        return None


def accuracy(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    return None if labels is None else float(np.mean(outputs.argmax(-1) == labels))


def batch_size(inputs: np.ndarray) -> int:
    """Images per call when validating: at most :data:`MAX_BATCH`, and at most
    :data:`BATCH_PIXELS` pixels, so that a large model at a high resolution (EfficientNet-B3 at
    236x236: 15.7 GB peak with 64 images per call) runs in bounded memory."""
    pixels = int(np.prod(inputs.shape[1:3])) if inputs.ndim == 4 else 1
    return max(1, min(MAX_BATCH, BATCH_PIXELS // max(pixels, 1)))


def keras_reference(model, data: ValidationData) -> Reference:
    step = batch_size(data.inputs)
    outputs = np.concatenate([np.asarray(model(data.inputs[i:i + step], training=False))
                              for i in range(0, len(data.inputs), step)])
    return Reference(outputs, accuracy(outputs, data.labels))


def run_file(path, data: ValidationData, layout: str = "NHWC", target_arch: str | None = None) -> np.ndarray:
    """The file's outputs on ``data``, with the int8 arithmetic of a target of machine
    ``target_arch`` (None: of the target the file records, if any; see
    :func:`edgekit.runtime.engines.for_target`)."""
    from edgekit.runtime import EngineSettings, Model
    from edgekit.runtime.engines import for_target
    from edgekit.runtime.files import model_format

    model = Model(path, settings=for_target(EngineSettings(), model_format(path), target_arch))
    step = batch_size(data.inputs)
    x = data.inputs.transpose(0, 3, 1, 2) if layout == "NCHW" else data.inputs
    return np.concatenate([np.asarray(model.predict(np.ascontiguousarray(x[i:i + step])), dtype=np.float32)
                           for i in range(0, len(x), step)])


def compare(outputs: np.ndarray, data: ValidationData, ref: Reference) -> Validation:
    diff = np.abs(outputs.astype(np.float64) - ref.outputs)
    return Validation(
        samples=len(outputs),
        agreement=float(np.mean(outputs.argmax(-1) == ref.outputs.argmax(-1))),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        accuracy=accuracy(outputs, data.labels),
        min_cosine=float(cosine(outputs, ref.outputs).min()),
    )


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample cosine similarity of two N x D arrays (1 where both rows are zero)."""
    a, b = a.astype(np.float64).reshape(len(a), -1), b.astype(np.float64).reshape(len(b), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 1.0)


def validate_file(path, data: ValidationData, ref: Reference, layout: str = "NHWC") -> Validation:
    return compare(run_file(path, data, layout), data, ref)
