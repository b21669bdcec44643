"""Keras -> TFLite flatbuffer converters, one per precision (TFLite post-training quantization:
https://ai.google.dev/edge/litert/models/post_training_quantization).

All start from the SavedModel that ``ConversionContext`` writes once. Full-integer int8 uses
per-channel weights (the converter's default) and a representative dataset drawn from the
calibration batches. It is made in the converter's own two steps, calibrate then
``mlir_quantize``, so that the I/O types can be chosen (``ExportOptions.int8_io``): uint8 pixels
in by default (the input's recorded range is set to exactly 0..255 first, so that the input
tensor has scale 1 and zero point 0 whatever range the calibration images happened to span),
int8 in and out, or float in and out.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .context import ConversionContext
from .options import TFLITE_INT8
from .inputs import IoType, has_adapter

PIXEL_RANGE = (0.0, 255.0)


def _converter(ctx: ConversionContext):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(ctx.saved_model_dir)


def representative_dataset(batches: np.ndarray):
    """The converter's representative dataset: one (1, H, W, C) sample per step."""

    def gen() -> Iterator[list[np.ndarray]]:
        for x in batches:
            yield [x[None].astype(np.float32)]

    return gen


def convert_fp32(ctx: ConversionContext) -> bytes:
    return _converter(ctx).convert()


def convert_fp16(ctx: ConversionContext) -> bytes:
    import tensorflow as tf

    conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def convert_dynamic(ctx: ConversionContext) -> bytes:
    import tensorflow as tf

    conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def int8_converter(ctx: ConversionContext, float_io: bool | None = None):
    """A converter set up for full-integer int8 (also used by the sensitivity debugger)."""
    import tensorflow as tf

    conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(ctx.require_calibration())
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not (ctx.options.float_io if float_io is None else float_io):
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv


def calibrated_model(ctx: ConversionContext) -> bytes:
    """The float model with recorded activation ranges (what TFLite quantizes from)."""
    def calibrate() -> bytes:
        conv = int8_converter(ctx, float_io=True)
        conv._experimental_calibrate_only = True  # noqa: SLF001 - the debugger's own route
        calibrated = conv.convert()
        return _learned(ctx, calibrated) if ctx.learned_ranges is not None else calibrated

    return ctx.once("calibrated", calibrate)


def _learned(ctx: ConversionContext, calibrated: bytes) -> bytes:
    """A QAT run's ranges over the calibrated ones (see ``qat_ranges``)."""
    from .qat_ranges import inject_tflite

    data, done = inject_tflite(calibrated, ctx.learned_ranges, has_adapter(ctx.model))
    ctx.notes.setdefault(TFLITE_INT8, {})["qat"] = done.notes(ctx.learned_ranges)
    return data


def io_types(ctx: ConversionContext, float_output: bool):
    """(fully_quantize, input type, output type) for ``mlir_quantize``; ``float_output``: the
    last op computes in float (the float head, or an embedding), so uint8 I/O keeps it."""
    import tensorflow as tf

    io = ctx.options.int8_io
    if io is IoType.FLOAT:  # quantize only the body: QUANTIZE after the input, DEQUANTIZE at the end
        return False, tf.float32, tf.float32
    if io is IoType.INT8:  # fully_quantize makes both ends integer whatever the types say
        return True, tf.int8, tf.int8
    return False, tf.uint8, tf.float32 if float_output or ctx.options.embedding else tf.uint8


def quantize_calibrated(ctx: ConversionContext, calibrated: bytes, float_output: bool = False,
                        denylisted_ops=None, denylisted_nodes=None) -> bytes:
    """``mlir_quantize`` of a calibrated model with the export's I/O types."""
    from tensorflow.lite.python import convert

    fully, in_type, out_type = io_types(ctx, float_output)
    if ctx.options.int8_io is IoType.UINT8:
        calibrated = set_input_range(calibrated, *PIXEL_RANGE)
    return bytes(convert.mlir_quantize(calibrated, fully_quantize=fully, input_data_type=in_type,
                                       output_data_type=out_type, denylisted_ops=denylisted_ops or None,
                                       denylisted_nodes=denylisted_nodes or None))


def set_input_range(calibrated: bytes, low: float, high: float) -> bytes:
    """The calibrated model with every input's recorded range replaced by [low, high]."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    for graph in model.subgraphs:
        for index in graph.inputs:
            q = graph.tensors[index].quantization
            if q is None or q.min is None:
                raise RuntimeError(f"calibrated model input {index} has no recorded range")
            q.min, q.max = [low] * len(q.min), [high] * len(q.max)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
