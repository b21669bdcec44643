"""Keras -> TFLite flatbuffer converters, one per precision (TFLite post-training quantization:
https://ai.google.dev/edge/litert/models/post_training_quantization).

All start from the SavedModel that ``ConversionContext`` writes once. Full-integer int8 uses
per-channel weights (the converter's default) and a representative dataset drawn from the
calibration batches; its input and output are int8 unless ``float_io``.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .context import ConversionContext


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


def convert_int8(ctx: ConversionContext) -> bytes:
    ctx.notes["tflite/int8"] = {"io": "float32" if ctx.options.float_io else "int8",
                                "calibration_method": "minmax (TFLite's only method)",
                                "per_channel": True}
    if ctx.options.max_accuracy_drop is not None:
        from .sensitivity import selective_int8

        return selective_int8(ctx)
    if ctx.options.int8_head == "float":
        from .float_head import convert_float_head

        return convert_float_head(ctx)
    return int8_converter(ctx).convert()
