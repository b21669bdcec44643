"""The one table of export targets: (format, precision) rows looked up by name.

The table drives the CLI choices, the exporter loop and the benchmark script. Each row names a
converter (a small function in its own module) that turns a ``ConversionContext`` into the
bytes of a model file, and any sidecar files written beside it; ``edgekit.export.writer`` does
the rest (timing, checks, atomic writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import onnx_convert, onnx_int8, ort_convert, tflite_convert, tflite_int8
from .options import Format, Precision, target_key


@dataclass(frozen=True)
class Sidecar:
    """A file published next to the model file, made from the finished model."""

    suffix: str  # replaces the model file's suffix: NAME_int8.ort -> NAME_int8<suffix>
    build: Callable  # (finished model file, the model's file name) -> bytes

    def path_for(self, model_path: Path) -> Path:
        return model_path.parent / (model_path.stem + self.suffix)


@dataclass(frozen=True)
class Target:
    format: Format
    precision: Precision
    convert: Callable  # (ConversionContext) -> bytes
    needs_calibration: bool
    summary: str
    sidecars: tuple[Sidecar, ...] = ()
    tool: str = "the converter"  # named when it fails (a step may name its own, e.g. tf2onnx)

    @property
    def suffix(self) -> str:
        return "." + self.format.value

    @property
    def key(self) -> str:
        return target_key(self.format, self.precision)


# The operators a reduced ONNX Runtime build must include for the .ort file (--include_ops_by_config).
_REQUIRED_OPERATORS = Sidecar(ort_convert.CONFIG_SUFFIX, ort_convert.required_operators)
TFLITE = "TFLiteConverter"

TARGETS: tuple[Target, ...] = (
    Target(Format.TFLITE, Precision.FP32, tflite_convert.convert_fp32, False, "float32", tool=TFLITE),
    Target(Format.TFLITE, Precision.FP16, tflite_convert.convert_fp16, False, "float16 weights, float compute",
           tool=TFLITE),
    Target(Format.TFLITE, Precision.DYNAMIC, tflite_convert.convert_dynamic, False,
           "int8 weights, activations quantized at run time", tool=TFLITE),
    Target(Format.TFLITE, Precision.INT8, tflite_int8.convert_int8, True,
           "full-integer int8, per-channel weights, calibrated activations", tool=TFLITE),
    Target(Format.ONNX, Precision.FP32, onnx_convert.convert_fp32, False, "float32 (tf2onnx)",
           tool=onnx_convert.TF2ONNX),
    Target(Format.ONNX, Precision.INT8, onnx_int8.convert_int8, True,
           "static int8 (onnxruntime quantize_static), per-channel weights", tool=onnx_convert.QUANTIZER),
    Target(Format.ORT, Precision.FP32, ort_convert.convert_fp32, False, "the onnx fp32 graph in ORT format",
           sidecars=(_REQUIRED_OPERATORS,), tool=ort_convert.TOOL),
    Target(Format.ORT, Precision.INT8, ort_convert.convert_int8, True, "the onnx int8 graph in ORT format",
           sidecars=(_REQUIRED_OPERATORS,), tool=ort_convert.TOOL),
)

# Why the missing rows are missing, so the error says more than "not supported".
UNSUPPORTED: dict[tuple[Format, Precision], str] = {
    (Format.ONNX, Precision.FP16): "onnxruntime's CPU provider runs float16 graphs slower than float32 "
    "and edgekit targets CPUs; use tflite fp16 or onnx int8",
    (Format.ONNX, Precision.DYNAMIC): "onnxruntime dynamic quantization of convolutions is slower than fp32 "
    "on CPUs; use onnx int8 (static, calibrated)",
}
# .ort files are the ONNX graphs in onnxruntime's own format: the same reasons hold.
UNSUPPORTED.update({(Format.ORT, p): "ort files are converted from the onnx graphs and " + why
                    for (f, p), why in list(UNSUPPORTED.items()) if f is Format.ONNX})


def get_target(fmt: Format | str, precision: Precision | str) -> Target:
    """The row for (format, precision); ValueError with the reason for an unsupported pair."""
    fmt, precision = Format(fmt), Precision(precision)
    for target in TARGETS:
        if target.format is fmt and target.precision is precision:
            return target
    reason = UNSUPPORTED.get((fmt, precision), "no converter for this pair")
    raise ValueError(f"{fmt.value} {precision.value} is not supported: {reason}")


def select_targets(formats, precisions) -> tuple[list[Target], list[tuple[str, str]]]:
    """The rows for every format x precision asked for, and (key, reason) for pairs skipped.

    A pair that no row supports is skipped with its reason when another format takes that
    precision; a precision no asked format supports is an error.
    """
    chosen, skipped = [], []
    for precision in precisions:
        rows = []
        for fmt in formats:
            try:
                rows.append(get_target(fmt, precision))
            except ValueError as exc:
                skipped.append((f"{Format(fmt).value}/{Precision(precision).value}", str(exc)))
        if not rows:
            raise ValueError(skipped[-1][1])
        chosen.extend(rows)
    order = {t.key: i for i, t in enumerate(TARGETS)}
    return sorted(chosen, key=lambda t: order[t.key]), skipped
