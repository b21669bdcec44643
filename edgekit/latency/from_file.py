"""Kernel features of a .tflite or .onnx file, read statically (no engine runs it).

Built on the profiler's file readers: :mod:`edgekit.runtime.tflite_graph` with
:func:`edgekit.profile.tflite_static.op_macs` for TFLite, and
:func:`edgekit.profile.onnx_static.shaped_graph` with its ``node_macs`` for ONNX. Operators map
to the kernel types of :mod:`.kernels`; the fusions the runtimes apply are applied here:

- TFLite: the converter already folded batch norm, ReLU/ReLU6 and padding into the
  convolutions; swish is LOGISTIC followed by a MUL of its input and output (one ``act`` kernel).
- ONNX (tf2onnx's graph): onnxruntime fuses a Conv with the batch-norm Mul/Add and the
  Clip/Relu after it and the Pad before it, so those nodes are no kernels; QuantizeLinear /
  DequantizeLinear pairs (a QDQ file) are folded into the integer kernels they surround.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.runtime.files import model_format

from .kernels import Kernel, conv_type

_UNFUSED_ACTS_TFLITE = {"LOGISTIC", "TANH", "HARD_SWISH", "GELU", "ELU", "LEAKY_RELU", "PRELU", "RELU", "RELU6"}
_POOL_TFLITE = {"MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SUM", "L2_POOL_2D"}
_SKIP_TFLITE = {"PAD", "PADV2"}  # folded into the convolution that follows


def _dtype_bytes(dtype: str | None) -> int:
    if dtype is None:
        return 4
    for bits in ("64", "32", "16"):
        if bits in dtype:
            return int(bits) // 8
    return 1 if dtype in ("int8", "uint8", "bool", "int4", "uint4") else 4


def _elements(shape) -> int:
    n = 1
    for d in shape or ():
        n *= max(int(d or 1), 1)
    return n


def file_kernels(path: str | Path) -> list[Kernel]:
    """The kernels of a .tflite or .onnx file, in file order (ValueError for other files)."""
    path = Path(path)
    fmt = model_format(path)
    if fmt == "tflite":
        return tflite_kernels(path)
    if fmt == "onnx":
        return onnx_kernels(path)
    raise ValueError(f"{str(path)!r}: the latency model reads .tflite and .onnx files, not .{fmt}")


# --------------------------------------------------------------------------------------- TFLite
def tflite_kernels(path: Path) -> list[Kernel]:
    from edgekit.profile.tflite_static import op_macs
    from edgekit.runtime.tflite_graph import parse_graph

    try:
        graph = parse_graph(Path(path).read_bytes())
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: cannot read the TFLite graph: {exc}") from None
    tensors = graph.tensors
    producer = {t: op for op in graph.operators for t in op.outputs}

    def nbytes(index: int) -> int:
        t = tensors[index]
        return _elements(t.shape) * _dtype_bytes(t.dtype)

    def split(op) -> tuple[int, int]:
        acts = sum(nbytes(i) for i in op.inputs if i >= 0 and not tensors[i].constant)
        acts += sum(nbytes(i) for i in op.outputs if i >= 0)
        weights = sum(nbytes(i) for i in op.inputs if i >= 0 and tensors[i].constant)
        return acts, weights

    swish_logistics = set()
    for op in graph.operators:  # MUL(x, LOGISTIC(x)): swish, one kernel with the LOGISTIC
        if op.opcode == "MUL" and len(op.inputs) == 2:
            for a, b in (op.inputs, op.inputs[::-1]):
                p = producer.get(b)
                if p is not None and p.opcode == "LOGISTIC" and p.inputs and p.inputs[0] == a:
                    swish_logistics.add(op.index)
    kernels = []
    for op in graph.operators:
        if op.index in swish_logistics or op.opcode in _SKIP_TFLITE:
            continue
        acts, weights = split(op)
        kind = _tflite_type(op, tensors)
        macs = op_macs(graph, op) or 0
        name = tensors[op.outputs[0]].name if op.outputs else f"op_{op.index}"
        channels = int(tensors[op.outputs[0]].shape[-1] or 0) if macs and op.outputs else 0  # NHWC / [N, units]
        kernels.append(Kernel(kind, int(macs), acts, weights, name, channels))
    return kernels


def _tflite_type(op, tensors) -> str:
    code = op.opcode
    if code in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        weights = tensors[op.inputs[1]].shape  # CONV_2D [out, kh, kw, in]; DEPTHWISE [1, kh, kw, c]
        out = tensors[op.outputs[0]].shape
        stride = op.conv.stride[0] if op.conv is not None else 1
        return conv_type(int(weights[1]), int(stride), code == "DEPTHWISE_CONV_2D", _elements(out[1:-1]))
    if code in ("FULLY_CONNECTED", "BATCH_MATMUL"):
        return "fc"
    live = [i for i in op.inputs if i >= 0 and not tensors[i].constant]
    if code in ("ADD", "SUB"):
        return "add" if len(live) == 2 else "other"
    if code == "MUL":
        return "mul" if len(live) == 2 else "other"
    if code in _UNFUSED_ACTS_TFLITE:
        return "act"
    if code in _POOL_TFLITE:
        return "pool"
    return "other"


# ----------------------------------------------------------------------------------------- ONNX
_CONV_ONNX = {"Conv", "QLinearConv", "ConvInteger", "FusedConv"}
_FC_ONNX = {"Gemm", "QGemm", "MatMul", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat",
            "DynamicQuantizeMatMul"}
_ADD_ONNX = {"Add", "QLinearAdd", "Sub", "Sum"}
_MUL_ONNX = {"Mul", "QLinearMul"}
_ACT_ONNX = {"Sigmoid", "QLinearSigmoid", "Tanh", "HardSwish", "HardSigmoid", "Gelu", "Elu", "QLinearLeakyRelu",
             "LeakyRelu", "PRelu"}
_FUSED_ACT_ONNX = {"Relu", "Clip"}  # fused into a Conv before them (onnxruntime's conv-activation fusion)
_POOL_ONNX = {"GlobalAveragePool", "QLinearGlobalAveragePool", "AveragePool", "QLinearAveragePool", "MaxPool",
              "GlobalMaxPool", "ReduceMean"}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_PASS = {"QuantizeLinear", "DequantizeLinear", "Identity", "Cast"}
# QLinear* inputs that are the activations (the rest are weights, scales and zero points).
_QLINEAR_DATA = {"QLinearConv": (0,), "QLinearMatMul": (0, 3), "QLinearAdd": (0, 3), "QLinearMul": (0, 3),
                 "QGemm": (0,)}


def onnx_kernels(path: Path) -> list[Kernel]:
    from edgekit.profile.onnx_static import node_macs, shaped_graph

    g = shaped_graph(Path(path))
    graph = g.graph
    constant = _constants(g)
    ends = {v.name for v in (*graph.inputs, *graph.outputs)}

    def source(name: str) -> str:
        for _ in range(8):  # through Q/DQ/Identity/Cast back to the value they carry
            node = g.producer.get(name)
            if node is None or node.op_type not in _PASS or not node.inputs:
                return name
            name = node.inputs[0]
        return name

    def nbytes(name: str) -> int:
        known = g.types.get(name)
        shape = known.shape if known is not None else g.shape(name)
        return _elements(shape) * _dtype_bytes(known.dtype if known is not None else None)

    def data_inputs(node) -> list[str]:
        positions = _QLINEAR_DATA.get(node.op_type)
        names = [node.inputs[p] for p in positions if p < len(node.inputs)] if positions else list(node.inputs)
        return [n for n in names if n and n not in constant]

    kernels: list[Kernel] = []
    by_output: dict[str, int] = {}  # value name -> index of the kernel that produces it (after fusion)
    swish = _swish_muls(g, source)
    padded: dict[str, str] = {}  # a Pad's output -> its input: the fused convolution reads the unpadded map
    for node in graph.nodes:
        op = node.op_type
        live = data_inputs(node)
        if op in _QDQ and not (set(node.inputs[:1]) & ends or set(node.outputs) & ends):
            _alias(by_output, node, live)
            continue
        if op == "Pad" and node.inputs and node.outputs:
            padded[node.outputs[0]] = node.inputs[0]
        if op == "Pad" or (op in _FUSED_ACT_ONNX and _from_conv(kernels, by_output, live)) \
                or (op in _ADD_ONNX | _MUL_ONNX and len(live) == 1 and _from_conv(kernels, by_output, live)):
            _alias(by_output, node, live)  # fused into the neighbouring convolution
            continue
        if node.index in swish:  # x * sigmoid(x): the Sigmoid's kernel covers it
            _alias(by_output, node, [swish[node.index]])
            continue
        acts = sum(nbytes(padded.get(n, n)) for n in live) + sum(nbytes(n) for n in node.outputs if n)
        weights = sum(nbytes(n) for n in node.inputs if n and n in constant)
        kind = _onnx_type(g, node, op, len(live), source)
        macs = node_macs(g, node) or 0
        by_output.update({out: len(kernels) for out in node.outputs if out})
        kernels.append(Kernel(kind, int(macs), acts, weights, node.name or f"{op}_{node.index}",
                              _onnx_channels(g, node, op) if macs else 0))
    return kernels


def _constants(g) -> set[str]:
    """Initializers, Constant outputs, and what Q/DQ/Identity/Cast/Reshape make of them."""
    constant = set(g.graph.initializers)
    constant |= {n.outputs[0] for n in g.graph.nodes if n.op_type == "Constant" and n.outputs}
    for node in g.graph.nodes:  # file order is topological
        if node.op_type in _PASS | {"Reshape", "Unsqueeze", "Squeeze", "Transpose"} and node.inputs \
                and node.inputs[0] in constant:
            constant.update(o for o in node.outputs if o)
    return constant


def _alias(by_output: dict[str, int], node, live: list[str]) -> None:
    """The outputs of a node folded away stand for the kernel of its (first) live input."""
    for name in live[:1]:
        if name in by_output:
            for out in node.outputs:
                if out:
                    by_output[out] = by_output[name]


def _from_conv(kernels: list[Kernel], by_output: dict[str, int], live: list[str]) -> bool:
    if not live or live[0] not in by_output:
        return False
    kind = kernels[by_output[live[0]]].type
    return kind in ("pwconv", "fc") or "conv" in kind


def _swish_muls(g, source) -> dict[int, str]:
    """Mul nodes computing x * sigmoid(x): node index -> the Sigmoid's output."""
    found = {}
    for node in g.graph.nodes:
        if node.op_type not in _MUL_ONNX:
            continue
        data = [node.inputs[p] for p in _QLINEAR_DATA.get(node.op_type, (0, 1)) if p < len(node.inputs)]
        if len(data) != 2:
            continue
        for a, b in (data, data[::-1]):
            p = g.producer.get(source(b))
            if p is not None and p.op_type in ("Sigmoid", "QLinearSigmoid") and p.inputs \
                    and source(p.inputs[0]) == source(a):
                found[node.index] = source(b)
    return found


def _onnx_channels(g, node, op: str) -> int:
    """Output channels of a MAC node: axis 1 of a convolution's NCHW output, the last of a matmul's."""
    out = g.shape(node.outputs[0]) if node.outputs else None
    if not out:
        return 0
    channel = out[1] if op in _CONV_ONNX and len(out) == 4 else out[-1]
    return int(channel or 0)


def _onnx_type(g, node, op: str, live: int, source) -> str:
    if op in _CONV_ONNX:
        w_pos = 3 if op == "QLinearConv" else 1
        weights = g.shape(node.inputs[w_pos]) if w_pos < len(node.inputs) else None
        out = g.shape(node.outputs[0])
        group = (node.attribute("group") or (1,))[0]
        strides = node.attribute("strides") or (1, 1)
        kernel = int(weights[2]) if weights and len(weights) == 4 and weights[2] else 1
        depthwise = group > 1 and bool(weights) and weights[1] == 1
        positions = _elements(out[2:]) if out is not None and len(out) == 4 else 2
        return conv_type(kernel, int(strides[0]), depthwise, positions)
    if op in _FC_ONNX:
        return "fc"
    if op in _ADD_ONNX:
        return "add" if live == 2 else "other"
    if op in _MUL_ONNX:
        return "mul" if live == 2 else "other"
    if op in _ACT_ONNX or op in _FUSED_ACT_ONNX:
        return "act"
    if op in _POOL_ONNX:
        return "pool"
    return "other"
