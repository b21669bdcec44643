"""Reading the first 2-D convolution's kernels (or a named one) from a model, as
:class:`ConvKernels` in the (out, kh, kw, in) layout.

- .tflite: the operator graph (:mod:`edgekit.runtime.tflite_graph`): the first CONV_2D in
  execution order, its filter (input 1) [out, kh, kw, in], dequantized with the file's
  (per-channel) scales; DEPTHWISE_CONV_2D filters are [1, kh, kw, out].
- .onnx: the graph (:mod:`edgekit.runtime.onnx_graph`): the first ``Conv`` (or ``QLinearConv``)
  with a 4-D weight [out, in / group, kh, kw], through a ``DequantizeLinear`` in QDQ files;
  ``group`` > 1 makes it depthwise (grouped).
- a run folder or .keras file: Keras (imported here only; the file is loaded in safe mode):
  the first ``Conv2D`` layer, kernel (kh, kw, in, out); ``DepthwiseConv2D`` kernels are
  (kh, kw, in, multiplier).

Depthwise convolutions and 1x1 (pointwise) convolutions are never picked as "the first
convolution": the first has no cross-channel pattern to speak of and the second no spatial
one. ``layer`` picks any 2-D convolution by name instead (a depthwise one included): a Keras
layer name, an ONNX node name, or a TFLite tensor name; a part of such a name between '/' or
';' will do (``Conv1`` finds ``mobilenetv2/Conv1/convolution``).

Only numpy and :mod:`edgekit.runtime` are imported for .tflite/.onnx, so this runs on the device.
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

import numpy as np

from edgekit.runtime.constants import onnx_constant, tflite_constant
from edgekit.runtime.files import open_model_file
from edgekit.runtime.onnx_graph import OnnxGraph
from edgekit.runtime.onnx_graph import parse_graph as parse_onnx_graph
from edgekit.runtime.tflite_graph import parse_graph as parse_tflite_graph

from .analysis import ConvKernels

_TFLITE_CONV = ("CONV_2D", "DEPTHWISE_CONV_2D")
_ONNX_CONV = {"Conv": 1, "QLinearConv": 3}  # op type -> position of the weight input


def read_conv(path: str | Path, layer: str | None = None) -> ConvKernels:
    """The kernels of MODEL's first 2-D convolution (or of ``layer``); ValueError when there
    is none, when ``layer`` is no 2-D convolution, or when the file cannot be read."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tflite", ".onnx"):
        model = open_model_file(path)  # the runtime's checks: exists, complete, not a foreign file
        with open(model.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _read_tflite(data, layer) if suffix == ".tflite" else _read_onnx(data, layer)
            except ValueError as exc:
                raise ValueError(f"{str(path)!r}: {exc}") from None
    if path.is_dir() or suffix == ".keras":
        return _read_keras(path, layer)
    if path.exists() or suffix:  # a file of another kind (.ort, .h5, ...), there or not
        raise ValueError(f"MODEL got {str(path)!r}; expected a run folder, a .keras, .tflite or .onnx file")
    raise ValueError(f"MODEL {str(path)!r} does not exist")


# -- picking the layer ----------------------------------------------------------------------

def _parts(name: str) -> set[str]:
    """A name and its parts between '/' and ';', each also without the "_1" that Keras 3
    appends to layer names when it traces a model for export (``stem`` -> ``stem_1``)."""
    parts = {name, *(p for p in re.split(r"[/;]", name) if p)}
    return parts | {re.sub(r"_\d+$", "", p) for p in parts}


def _pick(candidates: list[tuple[tuple[str, ...], str, object]], layer: str | None, what: str):
    """``candidates``: (names, kind, item) in model order, kind "conv", "depthwise", "pointwise"
    or the name of another layer/operator type. Returns the item (and its kind) for ``layer``,
    or the first "conv" one."""
    convs = [c for c in candidates if c[1] in ("conv", "depthwise", "pointwise")]
    if layer is None:
        for names, kind, item in candidates:
            if kind == "conv":
                return item, kind
        if convs:
            kinds = sorted({kind for _, kind, _ in convs})
            raise ValueError(f"{what} has no 2-D convolution with a spatial kernel that is not depthwise (only "
                             f"{' and '.join(kinds)} ones); name one with --layer: {_names(convs)}")
        raise ValueError(f"{what} has no 2-D convolution")
    found = [c for c in candidates if any(layer in _parts(n) for n in c[0])]
    found = [c for c in found if layer in c[0]] or found  # a whole name beats a part of one
    conv_found = [c for c in found if c[1] in ("conv", "depthwise", "pointwise")]
    if len(conv_found) > 1:
        raise ValueError(f"--layer {layer!r} matches {len(conv_found)} convolutions: {_names(conv_found)}; "
                         "give a longer name")
    if conv_found:
        names, kind, item = conv_found[0]
        if kind == "pointwise":
            raise ValueError(f"--layer {layer!r} is a 1x1 convolution: it has no spatial pattern to compare with "
                             "edge filters")
        return item, kind
    if found:
        raise ValueError(f"--layer {layer!r} is a {found[0][1]}, not a 2-D convolution; the 2-D convolutions are: "
                         f"{_names(convs) or 'none'}")
    raise ValueError(f"--layer {layer!r} names no layer of {what}; the 2-D convolutions are: {_names(convs) or 'none'}")


def _names(candidates, limit: int = 6) -> str:
    names = [c[0][0] for c in candidates]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _kind(depthwise: bool, kh: int, kw: int) -> str:
    return "depthwise" if depthwise else "pointwise" if kh * kw == 1 else "conv"


# -- TFLite ---------------------------------------------------------------------------------

def _read_tflite(data, layer: str | None) -> ConvKernels:
    graph = parse_tflite_graph(data)
    candidates = []
    for op in graph.operators:
        out = graph.tensors[op.outputs[0]].name if op.outputs else f"operator {op.index}"
        filt = graph.tensors[op.inputs[1]].name if len(op.inputs) > 1 and op.inputs[1] >= 0 else ""
        if op.opcode in _TFLITE_CONV:
            shape = graph.tensors[op.inputs[1]].shape if filt else ()
            if len(shape) != 4:
                raise ValueError(f"operator {op.index} ({op.opcode}) has a filter of shape {shape}; expected 4-D")
            kind = _kind(op.opcode == "DEPTHWISE_CONV_2D", shape[1], shape[2])
            candidates.append(((out.split(";")[0], out, filt), kind, op))
        else:  # its weights' names too: a FULLY_CONNECTED's output is often a serving name
            weights = tuple(graph.tensors[i].name for i in op.inputs if i >= 0 and graph.tensors[i].constant)
            candidates.append(((out.split(";")[0], out, *weights), op.opcode, op))
    op, kind = _pick(candidates, layer, "the model")
    weights, storage = tflite_constant(graph, data, op.inputs[1])
    if kind == "depthwise":  # [1, kh, kw, out]: one single-channel kernel per output channel
        weights = weights.transpose(3, 1, 2, 0)
    name = _tflite_name(graph.tensors[op.inputs[1]].name, graph.tensors[op.outputs[0]].name)
    stride = op.conv.stride if op.conv else (1, 1)  # 0: the field is absent (no valid file has it)
    return ConvKernels(name, np.ascontiguousarray(weights, np.float32), tuple(max(int(s), 1) for s in stride),
                       kind == "depthwise", storage, "tflite")


def _tflite_name(filter_name: str, output_name: str) -> str:
    """The convolution's own name among the names the converter fused into its tensors'
    (``.../Conv1_relu_1/Relu6;.../bn_Conv1_1/...;.../Conv1_1/convolution``)."""
    parts = [p for name in (filter_name, output_name) for p in name.split(";") if p]
    own = [p for p in parts if re.search(r"/(convolution|depthwise|Conv2D|BiasAdd)\d*$", p)]
    return (own or parts or [output_name])[0]


# -- ONNX -----------------------------------------------------------------------------------

def _onnx_weight(graph: OnnxGraph, data, node) -> tuple[np.ndarray, str]:
    position = _ONNX_CONV[node.op_type]
    if node.op_type == "Conv":
        return onnx_constant(graph, data, node.inputs[position])
    # QLinearConv: x, x_scale, x_zero_point, w, w_scale, w_zero_point, ...; per-channel on axis 0
    from edgekit.runtime.constants import dequantize

    q, scale, zero_point = (onnx_constant(graph, data, node.inputs[i])[0] for i in (3, 4, 5))
    stored = onnx_constant(graph, data, node.inputs[3])[1]
    return dequantize(q, scale, zero_point, axis=0), f"{stored} {'per-channel' if scale.size > 1 else 'per-tensor'}"


def _onnx_weight_dims(graph: OnnxGraph, node) -> tuple[int, ...] | None:
    name = node.inputs[_ONNX_CONV[node.op_type]] if len(node.inputs) > _ONNX_CONV[node.op_type] else ""
    if name in graph.initializers:
        return graph.initializers[name].dims
    producer = next((n for n in graph.nodes if name in n.outputs), None)
    if producer is not None and producer.value is not None:
        return producer.value.dims
    if producer is not None and producer.op_type == "DequantizeLinear" and producer.inputs:
        source = graph.initializers.get(producer.inputs[0])
        return None if source is None else source.dims
    return None


def _read_onnx(data, layer: str | None) -> ConvKernels:
    graph = parse_onnx_graph(data)
    candidates = []
    for node in graph.nodes:
        names = (node.name or (node.outputs[0] if node.outputs else f"node {node.index}"), *node.outputs)
        if node.op_type in _ONNX_CONV and node.domain in ("", "ai.onnx"):
            dims = _onnx_weight_dims(graph, node)
            if dims is None or len(dims) != 4:
                continue  # 1-D/3-D convolutions, or a weight computed at run time
            group = (node.attribute("group") or (1,))[0]
            weight_name = node.inputs[_ONNX_CONV[node.op_type]]
            candidates.append(((*names, weight_name), _kind(group > 1, dims[2], dims[3]), node))
        else:
            candidates.append((names, node.op_type, node))
    node, kind = _pick(candidates, layer, "the model")
    weights, storage = _onnx_weight(graph, data, node)
    stride = tuple(node.attribute("strides") or (1, 1))
    return ConvKernels(names_of(node), np.ascontiguousarray(weights.transpose(0, 2, 3, 1), np.float32),
                       (int(stride[0]), int(stride[-1])), kind == "depthwise", storage, "onnx")


def names_of(node) -> str:
    return node.name or (node.outputs[0] if node.outputs else f"node {node.index}")


# -- Keras ----------------------------------------------------------------------------------

def _layers(model):
    """Every layer of ``model`` in order, nested models expanded."""
    stack = list(reversed(model.layers))
    while stack:
        layer = stack.pop()
        yield layer
        stack.extend(reversed(getattr(layer, "layers", None) or []))


def _read_keras(path: Path, layer: str | None) -> ConvKernels:
    import keras

    from edgekit.models.safe_load import load_keras_model
    from edgekit.run_record import model_file

    file = model_file(path)  # ValueError for a folder without model.keras
    if not file.exists():
        raise ValueError(f"model file {str(file)!r} does not exist")
    model = load_keras_model(file)
    candidates = []
    for lay in _layers(model):
        depthwise = isinstance(lay, keras.layers.DepthwiseConv2D)
        if isinstance(lay, keras.layers.Conv2D) or depthwise:
            kh, kw = lay.kernel_size
            candidates.append(((lay.name,), _kind(depthwise, kh, kw), lay))
        else:
            candidates.append(((lay.name,), type(lay).__name__, lay))
    lay, kind = _pick(candidates, layer, f"{str(file)!r}")
    kernel = np.asarray(keras.ops.convert_to_numpy(lay.kernel), np.float32)
    if kind == "depthwise":  # (kh, kw, in, multiplier): output channel c * multiplier + m
        kh, kw = kernel.shape[:2]
        weights = kernel.reshape(kh, kw, -1).transpose(2, 0, 1)[..., None]
    else:
        weights = kernel.transpose(3, 0, 1, 2)
    stride = tuple(int(s) for s in lay.strides)
    return ConvKernels(lay.name, np.ascontiguousarray(weights), stride, kind == "depthwise", str(kernel.dtype), "keras")
