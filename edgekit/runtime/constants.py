"""The values of constant tensors (weights) of .tflite and .onnx files, as float32 numpy arrays.

Read from the bytes of the file with the graph readers (:mod:`tflite_graph`, :mod:`onnx_graph`),
never through an interpreter, so that tools which look at weights (``edgekit filters``) run on
the device and on files made elsewhere. Quantized weights come back dequantized with the
file's own parameters, real = scale * (q - zero_point), per slice of the quantized axis:

- TFLite: the tensor's ``QuantizationParameters`` (schema.fbs); a float16 or int8 constant
  behind a ``DEQUANTIZE`` operator (fp16 files) is followed to its source.
- ONNX: a ``DequantizeLinear`` node (x, x_scale, x_zero_point; ``axis`` default 1, opset 13+)
  between an int8/uint8 initializer and its consumer (QDQ files) is followed the same way.

Malformed input raises ValueError (tensors whose byte count does not match their shape
included) and nothing else.
"""

from __future__ import annotations

import numpy as np

from .onnx_graph import OnnxGraph, OnnxTensor
from .tflite_graph import TfliteGraph, TfliteQuant, TfliteTensor

# Element types whose stored bytes numpy reads directly (little-endian, as both formats store them).
_NUMPY_TYPES = {"float32": "<f4", "float16": "<f2", "float64": "<f8", "int8": "i1", "uint8": "u1",
                "int16": "<i2", "uint16": "<u2", "int32": "<i4", "uint32": "<u4", "int64": "<i8"}
# ONNX typed fields (packed) and the numpy type they hold: float_data, int32_data (which also
# carries int8/uint8/int16/uint16/float16 bits), int64_data, double_data.
_ONNX_TYPED = {4: "<f4", 5: "varint", 7: "varint", 10: "<f8"}


def _elements(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _from_bytes(raw: bytes, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    if dtype not in _NUMPY_TYPES:
        raise ValueError(f"{what} has element type {dtype}; expected one of {', '.join(_NUMPY_TYPES)}")
    want = _elements(shape) * np.dtype(_NUMPY_TYPES[dtype]).itemsize
    if len(raw) != want:
        raise ValueError(f"{what} holds {len(raw)} bytes; its shape {tuple(shape)} of {dtype} needs {want}")
    return np.frombuffer(raw, _NUMPY_TYPES[dtype]).reshape(shape)


def dequantize(q: np.ndarray, scale, zero_point, axis: int) -> np.ndarray:
    """real = scale * (q - zero_point) as float32; one (scale, zero point) for the whole
    tensor, or one per slice of ``axis``."""
    scale = np.asarray(scale, np.float32).reshape(-1)
    zero_point = np.asarray(zero_point, np.float32).reshape(-1)
    if scale.size == 1:
        return ((q.astype(np.float32) - zero_point[0]) * scale[0]).astype(np.float32)
    if not -q.ndim <= axis < q.ndim or q.shape[axis] != scale.size:
        raise ValueError(f"{scale.size} quantization scales do not match axis {axis} of shape {q.shape}")
    if zero_point.size not in (1, scale.size):
        raise ValueError(f"{zero_point.size} zero points for {scale.size} scales")
    shape = [1] * q.ndim
    shape[axis] = scale.size
    return ((q.astype(np.float32) - zero_point.reshape(shape if zero_point.size > 1 else 1)) * scale.reshape(shape))


# -- TFLite ---------------------------------------------------------------------------------

def _tflite_stored(graph: TfliteGraph, data, tensor: TfliteTensor) -> np.ndarray:
    what = f"tensor {tensor.name!r}"
    if not tensor.constant:
        raise ValueError(f"{what} is not a constant (no data in the file)")
    if tensor.sparse:
        raise ValueError(f"{what} is stored sparse; edgekit reads dense constants only")
    return _from_bytes(graph.layout.buffer_bytes(data, tensor.buffer), tensor.dtype, tensor.shape, what)


def _tflite_real(stored: np.ndarray, quant: TfliteQuant | None) -> np.ndarray:
    if quant is None or stored.dtype.kind == "f":
        return stored.astype(np.float32)
    return dequantize(stored, quant.scale, quant.zero_point, quant.axis)


def tflite_constant(graph: TfliteGraph, data, index: int) -> tuple[np.ndarray, str]:
    """The float32 values of tensor ``index`` of a TFLite file (bytes or mmap) and how they
    were stored ("float32", "float16", "int8 per-channel", ...). A tensor made by a DEQUANTIZE
    operator from a constant is read from that constant."""
    tensor = graph.tensors[index]
    if not tensor.constant:
        producer = next((op for op in graph.operators if index in op.outputs), None)
        if producer is not None and producer.opcode == "DEQUANTIZE" and producer.inputs and producer.inputs[0] >= 0:
            tensor = graph.tensors[producer.inputs[0]]
    stored = _tflite_stored(graph, data, tensor)
    return _tflite_real(stored, tensor.quant), _storage(tensor.dtype, tensor.quant and len(tensor.quant.scale))


def _storage(dtype: str, scales: int | None) -> str:
    if not scales or dtype.startswith("float"):
        return dtype
    return f"{dtype} {'per-channel' if scales > 1 else 'per-tensor'}"


# -- ONNX -----------------------------------------------------------------------------------

def _varints(buf, start: int, end: int) -> list[int]:
    from .onnxproto import _varint

    values, pos = [], start
    while pos < end:
        value, pos = _varint(buf, pos, end)
        values.append(value - (1 << 64) if value >= 1 << 63 else value)
    return values


def _onnx_stored(data, tensor: OnnxTensor) -> np.ndarray:
    what = f"initializer {tensor.name!r}"
    if tensor.external:
        raise ValueError(f"{what} keeps its values in an external data file; edgekit reads weights only from "
                         "the model file")
    if tensor.data is None:
        if _elements(tensor.dims) == 0:
            return np.zeros(tensor.dims, _NUMPY_TYPES.get(tensor.dtype or "", "<f4"))
        raise ValueError(f"{what} has no values in the file")
    field, start, end = tensor.data
    if field == 9:  # raw_data
        return _from_bytes(bytes(data[start:end]), tensor.dtype or "undefined", tensor.dims, what)
    kind = _ONNX_TYPED[field]
    if kind == "varint":
        values = np.asarray(_varints(data, start, end), np.int64)
        if tensor.dtype == "float16":  # float16 bits travel in int32_data
            values = values.astype(np.uint16).view(np.float16)
    else:
        values = np.frombuffer(bytes(data[start:end]), kind)
    if values.size != _elements(tensor.dims):
        raise ValueError(f"{what} holds {values.size} values; its dims {tensor.dims} need {_elements(tensor.dims)}")
    return values.reshape(tensor.dims)


def _onnx_tensor(graph: OnnxGraph, name: str) -> OnnxTensor | None:
    if name in graph.initializers:
        return graph.initializers[name]
    node = next((n for n in graph.nodes if name in n.outputs and n.value is not None), None)
    return None if node is None else node.value


def onnx_constant(graph: OnnxGraph, data, name: str) -> tuple[np.ndarray, str]:
    """The float32 values of the constant ``name`` (an initializer or a Constant node's output)
    of an ONNX file (bytes or mmap) and how they were stored; a DequantizeLinear output whose
    inputs are constants is read from them."""
    tensor = _onnx_tensor(graph, name)
    if tensor is not None:
        stored = _onnx_stored(data, tensor)
        return stored.astype(np.float32), str(stored.dtype)
    producer = next((n for n in graph.nodes if name in n.outputs), None)
    if producer is None or producer.op_type != "DequantizeLinear" or len(producer.inputs) < 2:
        raise ValueError(f"{name!r} is not a constant of the file (it is computed by "
                         f"{producer.op_type if producer else 'nothing'!s})")
    parts = [_onnx_tensor(graph, n) if n else None for n in producer.inputs[:3]]
    if parts[0] is None or parts[1] is None:
        raise ValueError(f"the DequantizeLinear that makes {name!r} has inputs that are not constants")
    q, scale = _onnx_stored(data, parts[0]), _onnx_stored(data, parts[1])
    zero_point = _onnx_stored(data, parts[2]) if parts[2] is not None else np.zeros(1)
    axis = (producer.attribute("axis") or (1,))[0]
    scales = scale.size
    return dequantize(q, scale, zero_point, axis), _storage(str(q.dtype), scales)
