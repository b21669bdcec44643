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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PRECISIONS = ("int8", "hybrid", "float", "convert", "other")


@dataclass(frozen=True)
class OpStat:
    """One operator of the file, in execution (file) order."""

    index: int
    name: str
    type: str
    macs: int | None  # None: a MAC operator whose shapes are unknown
    precision: str


@dataclass(frozen=True)
class StaticReport:
    format: str  # "tflite", "onnx", "ort" or "keras"
    size_bytes: int
    params: int | None  # None: the graph was not read (see ``graph_read``)
    ops: tuple[OpStat, ...]
    shape_source: str  # where the tensor shapes behind the MACs came from
    notes: tuple[str, ...] = field(default_factory=tuple)
    graph_read: bool = True  # False: only the size is known (a format without a graph reader here)

    @property
    def macs(self) -> int | None:
        """Total MACs at batch 1; None when a MAC operator's shapes could not be found."""
        if not self.graph_read or any(op.macs is None for op in self.ops):
            return None
        return sum(op.macs for op in self.ops)

    def op_counts(self) -> dict[str, int]:
        """Operators by type, most frequent first."""
        return dict(Counter(op.type for op in self.ops).most_common())

    def op_share(self) -> dict[str, float]:
        """Fraction of the operators in each precision class (summing to 1)."""
        counts = Counter(op.precision for op in self.ops)
        total = len(self.ops) or 1
        return {p: round(counts[p] / total, 4) for p in PRECISIONS if counts[p]}

    def int8_mac_share(self) -> float | None:
        """Fraction of the MACs computed by int8 kernels (None without MACs)."""
        total = self.macs
        if not total:
            return None
        return round(sum(op.macs for op in self.ops if op.precision == "int8") / total, 4)

    def to_dict(self) -> dict:
        return {"format": self.format, "size_bytes": self.size_bytes, "params": self.params,
                "macs": self.macs, "op_count": len(self.ops), "ops": self.op_counts(),
                "op_share": self.op_share(), "int8_mac_share": self.int8_mac_share(),
                "shape_source": self.shape_source, "static_notes": list(self.notes)}


def positions(shape, skip_leading: int = 1, skip_trailing: int = 1) -> int | None:
    """Product of the dims between the batch and the channels (None when one is unknown)."""
    dims = list(shape)[skip_leading : len(shape) - skip_trailing if skip_trailing else None]
    n = 1
    for d in dims:
        if d is None or d < 0:
            return None
        n *= int(d)
    return n


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
