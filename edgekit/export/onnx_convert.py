"""Keras -> ONNX converters: float via tf2onnx, int8 via onnxruntime's static quantization
(https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html).

The float graph is NHWC as trained; ``nchw`` puts a transpose in front so the file takes NCHW
input. int8 runs ``quant_pre_process`` (graph optimisation and shape inference) and then
``quantize_static`` with per-channel weights, the chosen calibration method and a
CalibrationDataReader over the same calibration batches TFLite uses.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .context import ConversionContext
from .cpu import default_onnx_quant
from .options import ActivationType, CalibrationMethod, OnnxQuantFormat

OPSET = 17
INPUT_NAME = "input"


def keras_to_onnx(model, input_shape: tuple[int, int, int], nchw: bool) -> bytes:
    import onnx
    import tensorflow as tf
    import tf2onnx

    h, w, c = input_shape
    shape = [None, c, h, w] if nchw else [None, h, w, c]
    signature = [tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def forward(x):
        if nchw:
            x = tf.transpose(x, [0, 2, 3, 1])
        return model(x, training=False)

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=OPSET)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def convert_fp32(ctx: ConversionContext) -> bytes:
    return ctx.onnx_float


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed (N, H, W, C) batches."""

    def __init__(self, batches: np.ndarray, nchw: bool) -> None:
        self.batches, self.nchw = batches, nchw
        self._it: Iterator[dict] | None = None

    def get_next(self) -> dict | None:
        if self._it is None:
            self._it = iter(self._feeds())
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None

    def _feeds(self) -> Iterator[dict]:
        for x in self.batches:
            x = x[None].astype(np.float32)
            yield {INPUT_NAME: x.transpose(0, 3, 1, 2).copy() if self.nchw else x}


_METHODS = {CalibrationMethod.MINMAX: "MinMax", CalibrationMethod.ENTROPY: "Entropy",
            CalibrationMethod.PERCENTILE: "Percentile"}


def convert_int8(ctx: ConversionContext) -> bytes:
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    opts = ctx.options
    auto = default_onnx_quant()
    fmt = opts.onnx_quant_format or auto.quant_format
    act = opts.onnx_activation_type or auto.activation_type
    explicit = opts.onnx_quant_format is not None and opts.onnx_activation_type is not None
    ctx.notes["onnx/int8"] = {
        "quant_format": fmt.value, "activation_type": act.value, "weight_type": "int8", "per_channel": True,
        "calibration_method": opts.calibration_method.value,
        "why": "chosen on the command line" if explicit else auto.reason,
    }
    work = ctx.workdir
    (work / "float.onnx").write_bytes(ctx.onnx_float)
    # sympy (needed for symbolic shape inference) is not an edgekit dependency; shapes here
    # are static apart from the batch, which onnx's own shape inference handles.
    quant_pre_process(str(work / "float.onnx"), str(work / "pre.onnx"), skip_symbolic_shape=True)
    q.quantize_static(
        str(work / "pre.onnx"), str(work / "int8.onnx"), _Reader(ctx.require_calibration(), opts.nchw),
        quant_format=q.QuantFormat.QDQ if fmt is OnnxQuantFormat.QDQ else q.QuantFormat.QOperator,
        activation_type=q.QuantType.QInt8 if act is ActivationType.INT8 else q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8, per_channel=True,
        calibrate_method=getattr(q.CalibrationMethod, _METHODS[opts.calibration_method]),
    )
    return (work / "int8.onnx").read_bytes()
