"""The operator graph of a TFLite file: operator codes, tensors (shape, type, buffer) and operators.

Format: the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs), read with the
bounds-checked FlatBuffers tables of :mod:`flatbuf` (no FlatBuffers package, no interpreter).
Field slots used here, in schema order:

- ``OperatorCode``: deprecated_builtin_code (0, byte), custom_code (1), builtin_code (3, int32);
  the operator is ``max(deprecated_builtin_code, builtin_code)`` (codes above 127 live only
  in the second field).
- ``SubGraph``: tensors (0), inputs (1), outputs (2), operators (3).
- ``Tensor``: shape (0), type (1, byte), buffer (2), name (3), quantization (4),
  shape_signature (7).
- ``QuantizationParameters``: scale (2, [float]), zero_point (3, [long]),
  quantized_dimension (6, int): real = scale * (q - zero_point), per slice of that axis when
  there are several scales (per-channel weights).
- ``Operator``: opcode_index (0), inputs (1), outputs (2), builtin_options (4); an input of
  -1 is an omitted optional operand. Of the options only these are read:
  ``BatchMatMulOptions.adj_x`` (0), because it decides which axis of the first operand is the
  reduced one, and the geometry of the 2-D convolutions: ``Conv2DOptions`` padding (0, byte),
  stride_w (1), stride_h (2), dilation_w_factor (4), dilation_h_factor (5);
  ``DepthwiseConv2DOptions`` padding (0), stride_w (1), stride_h (2), dilation_w_factor (5),
  dilation_h_factor (6).

Malformed input raises ValueError and nothing else, as in :mod:`flatbuf`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .flatbuf import _I32, _MODEL_OPCODES, _MODEL_SUBGRAPHS, _U32, TfliteLayout, _read, _Table, parse_tflite

_I8 = struct.Struct("<b")
_U8 = struct.Struct("<B")
_F32 = struct.Struct("<f")
_I64 = struct.Struct("<q")

# BuiltinOperator names by code (schema.fbs order, codes 0..209).
BUILTIN_OPERATORS = tuple("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D
LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1
RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM
CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND
SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE
BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM
CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE
SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW
ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK
REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR
LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS
WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE
NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM
BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG
REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL
CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL
BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD
UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR
RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY
STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE
STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL
STABLEHLO_REDUCE STABLEHLO_ABS STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL
STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER
STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT STABLEHLO_SUBTRACT STABLEHLO_TANH
STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT STABLEHLO_DYNAMIC_SLICE
STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA STABLEHLO_DOT_GENERAL
STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER STABLEHLO_TRANSPOSE
DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT
STABLEHLO_CBRT STABLEHLO_CASE
""".split())

# TensorType names by code (schema.fbs), as numpy-style dtype names.
TENSOR_TYPES = ("float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16",
                "complex64", "int8", "float64", "complex128", "uint64", "resource", "variant",
                "uint32", "uint16", "int4", "bfloat16", "int2", "uint4", "float8_e4m3fn", "float8_e5m2")

_CODE_DEPRECATED, _CODE_CUSTOM, _CODE_BUILTIN = 0, 1, 3
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS = 0, 1, 2, 3
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_NAME, _T_QUANT, _T_SPARSITY, _T_SIGNATURE = 0, 1, 2, 3, 4, 6, 7
_Q_SCALE, _Q_ZERO_POINT, _Q_DIMENSION = 2, 3, 6
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS = 0, 1, 2, 4
# Option slots (padding, stride_w, stride_h, dilation_w, dilation_h) of the 2-D convolutions.
_CONV_SLOTS = {"CONV_2D": (0, 1, 2, 4, 5), "DEPTHWISE_CONV_2D": (0, 1, 2, 5, 6)}
_PADDINGS = ("SAME", "VALID")


@dataclass(frozen=True)
class TfliteQuant:
    """Affine quantization of a tensor: real = scale * (q - zero_point); one (scale, zero
    point) per slice of ``axis`` when there are several (per-channel weights)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0


@dataclass(frozen=True)
class ConvGeometry:
    """Stride, dilation and padding of a CONV_2D or DEPTHWISE_CONV_2D operator."""

    stride: tuple[int, int]  # (h, w)
    dilation: tuple[int, int]  # (h, w)
    padding: str  # "SAME" or "VALID"


@dataclass(frozen=True)
class TfliteTensor:
    index: int
    name: str
    shape: tuple[int, ...]  # as stored: a dynamic batch is stored as 1 (see ``signature``)
    signature: tuple[int, ...] | None  # shape_signature: -1 marks a dynamic dimension
    dtype: str
    buffer: int
    constant: bool  # its buffer holds data (weights, biases, shape operands)
    sparse: bool = False  # stored compressed (a sparsity table): fewer bytes than its shape
    quant: TfliteQuant | None = None  # None: not quantized (no scales in the file)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(int(d), 0)
        return n


@dataclass(frozen=True)
class TfliteOperator:
    index: int
    opcode: str  # BuiltinOperator name, or the custom code of a CUSTOM operator
    inputs: tuple[int, ...]  # -1: omitted optional operand
    outputs: tuple[int, ...]
    adj_x: bool = False  # BATCH_MATMUL: the first operand is transposed
    conv: ConvGeometry | None = None  # CONV_2D and DEPTHWISE_CONV_2D only


@dataclass(frozen=True)
class TfliteGraph:
    """The main subgraph (subgraph 0) of a TFLite file, plus the file layout."""

    layout: TfliteLayout
    tensors: tuple[TfliteTensor, ...]
    operators: tuple[TfliteOperator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraphs: int


def _ints(table: _Table, slot: int) -> tuple[int, ...]:
    start, length = table.vector(slot, 4)
    return tuple(_read(_I32, table.buf, start + 4 * i) for i in range(length))


def _opcode_name(code: _Table) -> str:
    builtin = max(code.scalar(_CODE_DEPRECATED, _I8), code.scalar(_CODE_BUILTIN, _I32))
    if builtin == BUILTIN_OPERATORS.index("CUSTOM"):
        return code.string(_CODE_CUSTOM) or "CUSTOM"
    return BUILTIN_OPERATORS[builtin] if 0 <= builtin < len(BUILTIN_OPERATORS) else f"BUILTIN_{builtin}"


def _tensor(table: _Table, index: int, layout: TfliteLayout) -> TfliteTensor:
    buffer = table.scalar(_T_BUFFER, _U32)
    if buffer >= max(len(layout.buffers), 1):
        raise ValueError(f"tensor {index} points at buffer {buffer}; the file has {len(layout.buffers)}")
    type_code = table.scalar(_T_TYPE, _U8)
    signature = _ints(table, _T_SIGNATURE) if table.field(_T_SIGNATURE, 4) is not None else None
    constant = bool(layout.buffers) and buffer > 0 and layout.buffers[buffer].size > 0
    return TfliteTensor(index, table.string(_T_NAME) or f"tensor_{index}", _ints(table, _T_SHAPE),
                        signature or None,
                        TENSOR_TYPES[type_code] if type_code < len(TENSOR_TYPES) else f"type_{type_code}",
                        buffer, constant, table.field(_T_SPARSITY, 4) is not None, _quant(table))


def _subtable(table: _Table, slot: int) -> _Table | None:
    pos = table.field(slot, 4)
    return None if pos is None else _Table.at(table.buf, pos + _read(_U32, table.buf, pos))


def _quant(tensor: _Table) -> TfliteQuant | None:
    params = _subtable(tensor, _T_QUANT)
    if params is None:
        return None
    start, count = params.vector(_Q_SCALE, 4)
    if count == 0:
        return None  # min/max only (or nothing): not a quantized tensor
    scale = struct.unpack_from(f"<{count}f", params.buf, start)
    zstart, zcount = params.vector(_Q_ZERO_POINT, 8)
    # A count that does not match the scales is left for the reader of the values to refuse
    # (:func:`edgekit.runtime.constants.dequantize`): the interpreter may never need them.
    zero_point = struct.unpack_from(f"<{zcount}q", params.buf, zstart) if zcount else (0,) * count
    return TfliteQuant(tuple(scale), tuple(zero_point), params.scalar(_Q_DIMENSION, _I32))


def _adj_x(op: _Table) -> bool:
    options = _subtable(op, _OP_OPTIONS)
    return False if options is None else bool(options.scalar(0, _U8))


def _conv_geometry(op: _Table, opcode: str) -> ConvGeometry:
    padding, stride_w, stride_h, dilation_w, dilation_h = _CONV_SLOTS[opcode]
    options = _subtable(op, _OP_OPTIONS)
    if options is None:  # every field at its schema default
        return ConvGeometry((0, 0), (1, 1), "SAME")
    pad = options.scalar(padding, _U8)
    return ConvGeometry((options.scalar(stride_h, _I32), options.scalar(stride_w, _I32)),
                        (options.scalar(dilation_h, _I32, 1), options.scalar(dilation_w, _I32, 1)),
                        _PADDINGS[pad] if pad < len(_PADDINGS) else f"padding_{pad}")


def _check_indices(what: str, indices: tuple[int, ...], count: int, optional: bool = False) -> None:
    for i in indices:
        if not (-1 if optional else 0) <= i < count:
            raise ValueError(f"{what} refers to tensor {i}; the subgraph has {count} tensors")


def parse_graph(data) -> TfliteGraph:
    """Read the main subgraph's tensors and operators (bytes, bytearray or mmap)."""
    layout = parse_tflite(data)
    model = _Table.at(data, _read(_U32, data, 0))
    codes = [_opcode_name(c) for c in model.tables(_MODEL_OPCODES)]
    subgraphs = model.tables(_MODEL_SUBGRAPHS)
    if not subgraphs:
        raise ValueError("the file has no subgraphs")
    main = subgraphs[0]
    tensors = tuple(_tensor(t, i, layout) for i, t in enumerate(main.tables(_SG_TENSORS)))
    operators = []
    for i, op in enumerate(main.tables(_SG_OPERATORS)):
        code = op.scalar(_OP_OPCODE, _U32)
        if code >= len(codes):
            raise ValueError(f"operator {i} uses operator code {code}; the file has {len(codes)}")
        ins, outs = _ints(op, _OP_INPUTS), _ints(op, _OP_OUTPUTS)
        _check_indices(f"operator {i} ({codes[code]})", ins, len(tensors), optional=True)
        _check_indices(f"operator {i} ({codes[code]})", outs, len(tensors))
        adj_x = codes[code] == "BATCH_MATMUL" and _adj_x(op)
        conv = _conv_geometry(op, codes[code]) if codes[code] in _CONV_SLOTS else None
        operators.append(TfliteOperator(i, codes[code], ins, outs, adj_x, conv))
    inputs, outputs = _ints(main, _SG_INPUTS), _ints(main, _SG_OUTPUTS)
    _check_indices("the subgraph inputs", inputs, len(tensors))
    _check_indices("the subgraph outputs", outputs, len(tensors))
    return TfliteGraph(layout, tensors, tuple(operators), inputs, outputs, len(subgraphs))
