"""The int8 TFLite target: the export's head choice (plain int8, or the float head of
:mod:`.float_head`) on the calibration and quantization steps of :mod:`.tflite_convert`, under
the accuracy budget (:mod:`.budget`, layers ranked by :mod:`.sensitivity`).

Kept apart from :mod:`.tflite_convert` so that the modules it chooses between, which build on
the converter, need not import each other in a circle.
"""

from __future__ import annotations

from . import budget, sensitivity
from .context import ConversionContext
from .float_head import convert_float_head
from .inputs import IoType
from .options import TFLITE_INT8, Int8Head
from .tflite_convert import calibrated_model, quantize_calibrated


def convert_int8(ctx: ConversionContext) -> bytes:
    io = ctx.options.int8_io
    ctx.notes.setdefault(TFLITE_INT8, {}).update({
        "io": {IoType.FLOAT: "float32", IoType.INT8: "int8", IoType.UINT8: "uint8 pixels in"}[io],
        "calibration_method": "ranges learned by QAT" if ctx.learned_ranges is not None
        else "minmax (TFLite's only method)",
        "per_channel": True})
    build = _int8_builder(ctx)
    return budget.apply(ctx, TFLITE_INT8, build([]), ".tflite", build=build,
                        ranking=lambda: sensitivity.ranked_tensors(ctx))


def _int8_builder(ctx: ConversionContext):
    """``kept`` (tensor names kept float) -> int8 model bytes, with the export's head choice."""
    if ctx.options.int8_head is Int8Head.FLOAT:
        return lambda kept: convert_float_head(ctx, kept)
    return lambda kept: quantize_calibrated(ctx, calibrated_model(ctx), denylisted_nodes=kept)
