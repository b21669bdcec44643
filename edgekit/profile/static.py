"""Static figures of a model file, read from the file itself: size, parameters, MACs, operator
counts by type and the share of operators (and of MACs) that run in int8.

MACs follow the conventions of :mod:`edgekit.models.counting` (the papers' "mult-adds" at
batch 1): a convolution costs ``weight elements x output positions`` (which is
``kh * kw * c_in / groups * c_out * h_out * w_out``, and ``kh * kw * c * multiplier * h_out * w_out``
for a depthwise one), a transposed convolution ``weight elements x input positions``, a fully
connected / matmul layer ``K x output elements`` with the leading (batch) axis left out.
Everything else (bias, batch norm, activations, pooling, element-wise ops) counts 0. For an
edgekit model the total therefore equals ``edgekit summary``.

Parameters are the elements of the file's constant tensors that hold learned values: floating
and 8/16-bit integer weights, and 32/64-bit integers only where they are a bias (a MAC
operator's third input or a dequantized constant); shape operands and quantization scales and
zero points are not parameters. A MAC operator's weights and bias count once per operator even
where a converter stored identical buffers once (TFLite merges equal all-zero biases). Batch
norm is usually folded into the convolutions by the converters, so the count can be a little
lower than the Keras model's.

Precision of an operator: ``int8`` (integer kernel on quantized activations: int8, uint8 or
int16), ``hybrid`` (float activations with int8 weights, TFLite's dynamic-range
quantization), ``float``, ``convert`` (quantize / dequantize) or ``other`` (integer or boolean
results such as shapes and indices).
"""

from __future__ import annotations

import os
from pathlib import Path

from .static_report import PRECISIONS, OpStat, StaticReport, positions  # noqa: F401 - re-exported


def read_static(path: str | os.PathLike, fmt: str) -> StaticReport:
    """Static figures of a checked .tflite/.onnx/.ort file (see :func:`edgekit.runtime.files.open_model_file`).

    Raises ValueError naming the file when its graph cannot be read.
    """
    path = Path(path)
    if fmt == "tflite":
        from .tflite_static import tflite_static

        return tflite_static(path)
    if fmt == "onnx":
        from .onnx_static import onnx_static

        return onnx_static(path)
    if fmt == "ort":
        return ort_static(path)
    raise ValueError(f"format got {fmt!r}; expected tflite, onnx or ort")


ORT_NOTE = ("parameters, MACs and operators are not read from .ort files (no reader of ONNX Runtime's "
            "optimized graph here); profile the .onnx file of the same export for them")


def ort_static(path: Path) -> StaticReport:
    """The size of a .ort file; its graph is not read (see ``ORT_NOTE``)."""
    return StaticReport("ort", path.stat().st_size, None, (), "not read", (ORT_NOTE,), graph_read=False)
