"""The int8 ONNX target: the quant format and activation type (the device target's, see
:mod:`edgekit.devices`, unless chosen), the calibration method, the float head, and the accuracy budget
(:mod:`.budget`, nodes ranked by :mod:`.onnx_sensitivity`) over the quantization steps of
:mod:`.onnx_convert`. The int8 graph is made once per export; the .ort int8 file converts the
same one.

Kept apart from :mod:`.onnx_convert` so that the sensitivity ranking, which builds on the
converter, and the converter need not import each other in a circle.
"""

from __future__ import annotations

from dataclasses import asdict

from . import budget, onnx_sensitivity
from .context import ConversionContext
from .errors import ConverterError
from .onnx_convert import choose_calibration_method, compact, int8_weights_for_float_head, quantize
from .options import ONNX_INT8, ActivationType, CalibrationMethod, Int8Head, OnnxQuantFormat


def convert_int8(ctx: ConversionContext) -> bytes:
    return int8_graph(ctx)


def int8_graph(ctx: ConversionContext) -> bytes:
    """The int8 ONNX graph, quantized once per export (the .ort int8 file converts the same one)."""
    return ctx.once(ONNX_INT8, lambda: _quantize_int8(ctx))


def _quantize_int8(ctx: ConversionContext) -> bytes:
    opts = ctx.options
    auto = opts.target.onnx_int8
    fmt = opts.onnx_quant_format or auto.quant_format
    act = opts.onnx_activation_type or auto.activation_type
    chosen, chosen_why = choose_calibration_method(ctx)
    if ctx.learned_ranges is not None:  # the calibrator only fills tensors no QAT range covers
        chosen, chosen_why = CalibrationMethod.MINMAX, "QAT run: learned ranges; minmax for the tensors they do not cover"
    notes = ctx.notes[ONNX_INT8] = {
        "target": opts.target.name,
        "quant_format": fmt.value, "activation_type": act.value, "weight_type": "int8",
        "per_channel": True,
        "calibration_method": chosen.value, "calibration_method_why": chosen_why,
        "float_head": opts.int8_head is Int8Head.FLOAT,
        "why": _why(opts.onnx_quant_format, opts.onnx_activation_type, f"target {opts.target.name}: {auto.reason}"),
    }

    # 7-bit weights only where the target's uint8 x int8 kernel saturates and the flavour is its own.
    reduce_range = auto.reduce_range and act is ActivationType.UINT8
    notes["reduce_range"] = reduce_range

    def method() -> CalibrationMethod:  # as the notes say: _plain may fall back to minmax
        return CalibrationMethod(notes["calibration_method"])

    def build(kept: list[str]) -> bytes:
        data = quantize(ctx, fmt, act, method(), exclude=kept, reduce_range=reduce_range)
        if opts.int8_head is Int8Head.FLOAT:
            data, notes["int8_weight_float_nodes"] = int8_weights_for_float_head(data)
        data, removed = compact(data)
        notes["compacted"] = asdict(removed)
        return data

    layout = "NCHW" if opts.nchw else "NHWC"
    return budget.apply(ctx, ONNX_INT8, _plain(ctx, build, notes), ".onnx", build=build, layout=layout,
                        ranking=lambda: onnx_sensitivity.ranked_nodes(ctx, act, method(), reduce_range))


HISTOGRAM_FAILURE = "Too many bins for data range"  # numpy.histogram's ValueError


def _plain(ctx: ConversionContext, build, notes: dict) -> bytes:
    """``build([])``, or with minmax calibration when percentile was only the default and its
    histograms failed: numpy cannot cut 2048 bins from a tensor whose calibration values lie
    within a few float32 steps of each other (a saturated sigmoid, an untrained network's
    vanished activations), and onnxruntime's calibrator does not guard against it."""
    try:
        return build([])
    except ConverterError as exc:
        if ctx.options.calibration_method is not None or HISTOGRAM_FAILURE not in exc.cause:
            raise
        cause = exc.cause
    notes["calibration_method"] = CalibrationMethod.MINMAX.value
    notes["calibration_method_why"] = f"minmax: percentile's histograms failed ({cause})"
    return build([])


def _why(fmt: OnnxQuantFormat | None, act: ActivationType | None, default_reason: str) -> str:
    given = [name for name, value in (("quant format", fmt), ("activation type", act)) if value is not None]
    if len(given) == 2:
        return "chosen on the command line"
    if given:
        return f"{given[0]} chosen on the command line, the rest by default ({default_reason})"
    return default_reason
