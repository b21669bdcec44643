"""int8 TFLite with the classifier kept out of 8-bit activations ("float head").

Why: full-integer quantization stores a classifier's logits in one int8 tensor. A trained
network's logits span a wide range (the Fashion-MNIST MobileNetV2 of issue 3: about -115 to
+46, so one int8 step is 0.63), and two classes whose logits are closer than a step become
equal: the int8 model then picks the lower class index. On that model 165 of the 185 top-1
disagreements between the int8 file and Keras were such ties. Keeping the fully connected
layers and the softmax out of int8 activations removes them (agreement 98.2% -> 99.0%).

How: calibrate as for plain int8, quantize with ``FULLY_CONNECTED`` and ``SOFTMAX`` deny-listed
(TFLite's ``mlir_quantize``, the call behind ``tf.lite.experimental.QuantizationDebugger``), then
give each float fully connected layer int8 weights with a symmetric scale per output unit. The
TFLite kernel runs such a layer as a *hybrid* op (float input quantized on the fly, int8
weights, float output: the same kernel as dynamic-range quantization), so the file stays as
small as plain int8 while its logits are float. Inputs and outputs keep the requested types.
"""

from __future__ import annotations

import numpy as np

from .context import ConversionContext
from .options import TFLITE_INT8
from .tflite_convert import calibrated_model, quantize_calibrated

DENYLIST_OPS = ("FULLY_CONNECTED", "SOFTMAX")


def convert_float_head(ctx: ConversionContext, float_nodes: list[str] | None = None) -> bytes:
    """The float-head int8 model; ``float_nodes``: more tensors kept float (the accuracy budget)."""
    quantized = quantize_calibrated(ctx, calibrated_model(ctx), float_output=True,
                                    denylisted_ops=list(DENYLIST_OPS), denylisted_nodes=float_nodes)
    model, count = hybridize_fully_connected(quantized)
    ctx.notes.setdefault(TFLITE_INT8, {}).update({
        "float_head": True, "hybrid_fully_connected": count,
        "float_head_reason": "logits in float: int8 logits tie classes closer than one quantization step"})
    return model


def _quantize_per_channel(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per output row of an (out, in) weight matrix."""
    peak = np.max(np.abs(weights), axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    return np.clip(np.rint(weights / scale[:, None]), -127, 127).astype(np.int8), scale


def hybridize_fully_connected(model_bytes: bytes) -> tuple[bytes, int]:
    """Store the float32 constant weights of float FULLY_CONNECTED ops as int8 (hybrid ops)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    fc_codes = {i for i, code in enumerate(model.operatorCodes)
                if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.FULLY_CONNECTED}
    count = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.opcodeIndex not in fc_codes or len(op.inputs) < 2:
                continue
            source, weights = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
            buffer = model.buffers[weights.buffer]
            if source.type != schema.TensorType.FLOAT32 or weights.type != schema.TensorType.FLOAT32 \
                    or buffer.data is None or len(buffer.data) == 0:
                continue
            values = np.frombuffer(bytes(bytearray(buffer.data)), dtype="<f4").reshape(weights.shape)
            q, scale = _quantize_per_channel(values.reshape(values.shape[0], -1))
            buffer.data = np.frombuffer(q.tobytes(), dtype=np.uint8)
            weights.type = schema.TensorType.INT8
            weights.quantization = schema.QuantizationParametersT()
            weights.quantization.scale = [float(v) for v in scale]
            weights.quantization.zeroPoint = [0] * len(scale)
            weights.quantization.quantizedDimension = 0
            if op.builtinOptions is not None:
                op.builtinOptions.asymmetricQuantizeInputs = True
            count += 1
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), count
