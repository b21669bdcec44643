"""Keras -> ONNX converters: float via tf2onnx, int8 via onnxruntime's static quantization
(https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html).

The float graph is NHWC as trained; ``nchw`` puts a transpose in front so the file takes NCHW
input. It is traced and frozen by edgekit (every variable and captured tensor a constant) and
handed to tf2onnx with its one input named, so that in-model constants never become inputs.
int8 runs ``quant_pre_process`` (graph optimisation and shape inference) and then
``quantize_static`` with per-channel weights, the chosen calibration method and a
CalibrationDataReader over the same calibration batches TFLite uses (minmax when the default
percentile's histograms fail, see ``onnx_int8._plain``; the int8 target itself, with its
choices and the accuracy budget, is :mod:`.onnx_int8`).

``compact`` then removes what the quantizer leaves behind but no runtime reads: the
``value_info`` of ``quant_pre_process``'s shape inference (onnxruntime infers shapes at load),
the all-zero int32 zero points of bias DequantizeLinear nodes (0 is the ONNX default,
https://onnx.ai/onnx/operators/onnx__DequantizeLinear.html), byte-identical copies of an
initializer (activation scales and zero points repeat), initializers no node reads and
opset imports of domains no node uses. int8 weight zero points stay although they are zero
too: onnxruntime 1.32 only fuses DequantizeLinear -> Gemm into QGemm when the weight's
zero point is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .context import ConversionContext
from .errors import converting
from .inputs import has_adapter
from .options import ONNX_INT8, ActivationType, CalibrationMethod, Int8Head, OnnxQuantFormat

OPSET = 17
INPUT_NAME = "input"
TF2ONNX = "tf2onnx"
QUANTIZER = "onnxruntime quantization"


def keras_to_onnx(model, input_shape: tuple[int, int, int], nchw: bool) -> bytes:
    """The float ONNX graph of ``model``: one input (``INPUT_NAME``), every other tensor constant.

    The forward pass is traced and frozen here, and tf2onnx is given the one input by name.
    ``tf2onnx.convert.from_function`` would instead take every placeholder of the concrete
    function that is not a variable handle as a graph input; the constants a layer captures as
    eager tensors (Keras 3's ``Normalization`` computes its mean and variance once, in
    ``finalize_state``, and EfficientNet B0-B7 carry that layer) are such placeholders, so
    they became inputs that no caller feeds.
    """
    import onnx
    import tf2onnx
    from tensorflow.python.util import deprecation

    forward = _frozen_forward(model, input_shape, nchw)
    (inp,), outputs = forward.inputs, forward.outputs
    with deprecation.silence():  # from_graph_def re-freezes with TF1's graph_util: a warning per run
        proto, _ = tf2onnx.convert.from_graph_def(
            forward.graph.as_graph_def(), name=model.name, input_names=[inp.name],
            output_names=[t.name for t in outputs], opset=OPSET, tensors_to_rename={inp.name: INPUT_NAME})
    names = [i.name for i in proto.graph.input]
    if names != [INPUT_NAME]:
        raise RuntimeError(f"tf2onnx made graph inputs {names}; expected only {INPUT_NAME!r}")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _frozen_forward(model, input_shape: tuple[int, int, int], nchw: bool):
    """The inference forward pass as a concrete function whose variables and captured
    tensors are all constants (TensorFlow's own freezing, as tf2onnx uses it)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    h, w, c = input_shape
    shape = [None, c, h, w] if nchw else [None, h, w, c]

    # autograph=False: no tensor-dependent control flow to convert (``nchw`` is a Python bool),
    # and autograph cannot read a nested function's source ("closure mismatch" warning).
    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)], autograph=False)
    def forward(x):
        if nchw:
            x = tf.transpose(x, [0, 2, 3, 1])
        return model(x, training=False)

    return convert_variables_to_constants_v2(forward.get_concrete_function(), lower_control_flow=False,
                                             aggressive_inlining=True)


def float_graph(ctx: ConversionContext) -> bytes:
    """The float ONNX graph of the context's model, converted once per export (the fp32 file,
    int8 quantization and the .ort files all start from it)."""
    def convert() -> bytes:
        with converting(TF2ONNX):  # named as such under every target that needs it (onnx, ort)
            return keras_to_onnx(ctx.model, ctx.input_shape, ctx.options.nchw)

    return ctx.once("onnx/fp32", convert)


def convert_fp32(ctx: ConversionContext) -> bytes:
    return float_graph(ctx)


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

    def __iter__(self) -> Iterator[dict]:  # qdq_loss_debug.collect_activations iterates the reader
        return iter(self._feeds())

    def _feeds(self) -> Iterator[dict]:
        for x in self.batches:
            x = x[None].astype(np.float32)
            yield {INPUT_NAME: x.transpose(0, 3, 1, 2).copy() if self.nchw else x}


_METHODS = {CalibrationMethod.MINMAX: "MinMax", CalibrationMethod.ENTROPY: "Entropy",
            CalibrationMethod.PERCENTILE: "Percentile"}


HISTOGRAM_BUDGET_BYTES = 2 << 30


def activation_bytes(model) -> int:
    """float32 bytes of every layer output for one image (what onnxruntime's calibrator records)."""
    total = 0
    for layer in model.layers:
        for out in (layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]):
            total += 4 * int(np.prod([d or 1 for d in out.shape[1:]]))
    return total


def choose_calibration_method(ctx: ConversionContext) -> tuple[CalibrationMethod, str]:
    """The asked method, else percentile when its histograms fit in memory, else minmax.

    onnxruntime's percentile and entropy calibrators keep every intermediate tensor of every
    calibration image until the end (MobileNetV2 1.0/224 with 300 images: over 23 GB, killed
    on a 24 GB machine); minmax reduces as it goes. On the Fashion-MNIST MobileNetV2 of
    issue 3 (10,000 test images, 300 calibration images) percentile gave 99.04% top-1
    agreement with Keras, minmax and entropy 98.73%.
    """
    if ctx.options.calibration_method is not None:
        return ctx.options.calibration_method, "chosen on the command line"
    need = activation_bytes(ctx.model) * len(ctx.require_calibration())
    if need <= HISTOGRAM_BUDGET_BYTES:
        return CalibrationMethod.PERCENTILE, (f"percentile: its histograms need ~{need / 2**20:.0f} MiB "
                                              f"(<= {HISTOGRAM_BUDGET_BYTES >> 30} GiB); it agrees best with float")
    return CalibrationMethod.MINMAX, (f"minmax: percentile would hold ~{need / 2**30:.1f} GiB of activations "
                                      f"(> {HISTOGRAM_BUDGET_BYTES >> 30} GiB); pass --calibration-method to force")


def pre_processed(ctx: ConversionContext) -> Path:
    """The float graph after ``quant_pre_process`` (what the quantizer and the budget's ranking read)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    work = ctx.workdir
    if not (work / "pre.onnx").exists():
        (work / "float.onnx").write_bytes(float_graph(ctx))
        # sympy (needed for symbolic shape inference) is not an edgekit dependency; shapes here
        # are static apart from the batch, which onnx's own shape inference handles.
        with converting(QUANTIZER):
            quant_pre_process(str(work / "float.onnx"), str(work / "pre.onnx"), skip_symbolic_shape=True)
    return work / "pre.onnx"


def quantize(ctx: ConversionContext, fmt: OnnxQuantFormat, act: ActivationType,
             method: CalibrationMethod = CalibrationMethod.MINMAX, exclude=(), calibration=None,
             reduce_range: bool = False) -> bytes:
    """onnxruntime's static quantization of the float graph, as its quantizer writes it;
    ``exclude``: more nodes left float (the accuracy budget's); ``calibration``: other images."""
    from onnxruntime import quantization as q

    pre = pre_processed(ctx)
    out = ctx.workdir / "int8.onnx"
    images = ctx.require_calibration() if calibration is None else calibration
    extra = {"TensorQuantOverrides": _learned_overrides(ctx, pre)} if ctx.learned_ranges is not None else {}
    with converting(QUANTIZER):
        q.quantize_static(
            str(pre), str(out), _Reader(images, ctx.options.nchw),
            quant_format=q.QuantFormat.QDQ if fmt is OnnxQuantFormat.QDQ else q.QuantFormat.QOperator,
            activation_type=q.QuantType.QInt8 if act is ActivationType.INT8 else q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8, per_channel=True, reduce_range=reduce_range,
            calibrate_method=getattr(q.CalibrationMethod, _METHODS[method]),
            nodes_to_exclude=(float_nodes(pre, ctx.options.int8_head is Int8Head.FLOAT, has_adapter(ctx.model))
                              + with_fused_producers(pre, exclude)),
            extra_options=extra,
        )
    return out.read_bytes()


def _learned_overrides(ctx: ConversionContext, pre: Path) -> dict:
    """onnxruntime's per-tensor range overrides from a QAT run's ranges (see ``qat_ranges``)."""
    import onnx

    from .qat_ranges import onnx_overrides

    graph = onnx.load(str(pre)).graph
    adapter = adapter_node(graph) if has_adapter(ctx.model) else None
    overrides, done = onnx_overrides(graph, ctx.learned_ranges, adapter)
    ctx.notes.setdefault(ONNX_INT8, {})["qat"] = done.notes(ctx.learned_ranges)
    return overrides


def float_nodes(path: Path, float_head: bool, adapter: bool) -> list[str]:
    """Nodes left float: the input adapter (see ``edgekit.export.inputs``: quantizing it would
    add a second rounding of the input before the first convolution, for 3 MACs a pixel) and,
    with the float head, the classifier."""
    import onnx

    graph = onnx.load(str(path)).graph
    kept = [adapter_node(graph)] if adapter else []
    return kept + (classifier_nodes(path) if float_head else [])


FUSED_ACTIVATIONS = ("Relu", "Clip")


def with_fused_producers(path: Path, names) -> list[str]:
    """``names`` plus, for each Relu/Clip among them, the node whose output only it reads.

    onnxruntime's quantizer folds a Relu or Clip (ReLU6) into the quantized op before it: the
    QLinearConv's output takes the activation's range and the activation disappears (QOperator),
    or the pair is one node unit (QDQ). Keeping only the activation float leaves the Conv int8
    with an output range of its own, wider (negatives included) and so coarser than before:
    on the quick-start MobileNetV2, keeping all 74 ranked nodes float left 35 QLinearConv and
    agreed 96.90% with Keras, worse than no float node at all (97.60%). A fused pair is kept
    float together.
    """
    import onnx

    names = list(names)
    if not names:
        return names
    graph = onnx.load(str(path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    wanted, out = set(names), list(names)
    for node in graph.node:
        if node.name in wanted and node.op_type in FUSED_ACTIVATIONS and node.input:
            source = producer.get(node.input[0])
            if source is not None and readers.get(node.input[0]) == 1 and source.name not in wanted:
                wanted.add(source.name)
                out.append(source.name)
    return out


def adapter_node(graph) -> str:
    """The input adapter's Conv: the first Conv fed by the graph input through layout
    transposes only (tf2onnx renames it, so it is found by place, not by name)."""
    reach = {i.name for i in graph.input}
    for node in graph.node:
        if node.op_type == "Transpose" and node.input[0] in reach:
            reach.update(node.output)
        elif node.op_type == "Conv" and node.input[0] in reach:
            return node.name
    raise RuntimeError("the ONNX graph has no Conv fed by its input; cannot find the input adapter")


HEAD_OPS = ("MatMul", "Gemm", "Softmax")


def int8_weights_for_float_head(data: bytes) -> tuple[bytes, int]:
    """Store the float classifier's constant weights as int8 + DequantizeLinear (per output unit).

    The head then computes in float from int8-stored weights, so the file stays about as
    small as a fully int8 one (MobileNetV2 1.0/224's 1280x1000 classifier would otherwise add
    3.8 MB of float weights).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    changed = 0
    for node in list(graph.node):
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if w.dtype != np.float32 or w.ndim != 2:
            continue
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        axis = 0 if trans_b else 1  # the output-unit axis of B
        peak = np.max(np.abs(w), axis=1 - axis)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        shape = (-1, 1) if axis == 0 else (1, -1)
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        base = node.input[1]
        graph.initializer.extend([numpy_helper.from_array(q, base + "_int8"),
                                  numpy_helper.from_array(scale, base + "_scale"),
                                  numpy_helper.from_array(np.zeros_like(scale, np.int8), base + "_zero_point")])
        graph.node.insert(list(graph.node).index(node), helper.make_node(
            "DequantizeLinear", [base + "_int8", base + "_scale", base + "_zero_point"], [base + "_dequantized"],
            name=base + "_DequantizeLinear", axis=axis))
        node.input[1] = base + "_dequantized"
        changed += 1
    return (model.SerializeToString() if changed else data), changed


def classifier_nodes(path: Path) -> list[str]:
    """Fully connected (MatMul/Gemm, with the bias Add after a MatMul) and Softmax nodes.

    Left float by ``--int8-head float``: an int8 logits tensor ties classes whose logits are
    closer than one quantization step (see ``edgekit.export.float_head``).
    """
    import onnx

    graph = onnx.load(str(path)).graph
    head = [n for n in graph.node if n.op_type in HEAD_OPS]
    matmul_out = {o for n in head if n.op_type == "MatMul" for o in n.output}
    head += [n for n in graph.node if n.op_type == "Add" and matmul_out.intersection(n.input)]
    return [n.name for n in head]


@dataclass(frozen=True)
class Compaction:
    """What ``compact`` removed (counts of each kind) and the bytes it saved."""

    value_info: int = 0
    bias_zero_points: int = 0
    unused_initializers: int = 0
    duplicate_initializers: int = 0
    opset_imports: int = 0
    saved_bytes: int = 0


def compact(data: bytes) -> tuple[bytes, Compaction]:
    """A quantized ONNX model without the parts no runtime reads (see the module docstring).

    Only entries that cannot change a result are removed; ``onnx.checker`` runs on the result.
    """
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    value_info = len(graph.value_info)
    del graph.value_info[:]
    zero_points = _drop_bias_zero_points(graph)
    unused = _drop_unused_initializers(graph)
    duplicates = _merge_duplicate_initializers(graph)
    opsets = _drop_unused_opsets(model)
    onnx.checker.check_model(model)
    out = model.SerializeToString()
    return out, Compaction(value_info, zero_points, unused, duplicates, opsets, len(data) - len(out))


def _initializers(graph) -> dict:
    return {t.name: t for t in graph.initializer}


def _drop_bias_zero_points(graph) -> int:
    """Drop the zero-point input of DequantizeLinear nodes of constant int32 (bias) tensors when
    it is all zeros, the default it then takes."""
    import onnx
    from onnx import numpy_helper

    inits = _initializers(graph)
    dropped = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx") or len(node.input) != 3:
            continue
        x, zp = inits.get(node.input[0]), inits.get(node.input[2])
        if x is None or zp is None or x.data_type != onnx.TensorProto.INT32:
            continue
        if not numpy_helper.to_array(zp).any():
            del node.input[2]
            dropped += 1
    return dropped


def _merge_duplicate_initializers(graph) -> int:
    """Point every reader of a byte-identical copy of an initializer at the first one."""
    import onnx

    first: dict[bytes, str] = {}
    rename: dict[str, str] = {}
    keep = []
    pinned = _io_names(graph)  # an initializer that is also a graph input can be overridden
    for t in graph.initializer:
        bare = onnx.TensorProto()
        bare.CopyFrom(t)
        bare.name = ""
        key = bare.SerializeToString()
        if key in first and t.name not in pinned:
            rename[t.name] = first[key]
        else:
            if t.name not in pinned:
                first.setdefault(key, t.name)
            keep.append(t)
    if rename:
        for node in _nodes(graph):
            for i, name in enumerate(node.input):
                if name in rename:
                    node.input[i] = rename[name]
        _replace(graph.initializer, keep)
    return len(rename)


def _drop_unused_initializers(graph) -> int:
    used = {name for node in _nodes(graph) for name in node.input} | _io_names(graph)
    keep = [t for t in graph.initializer if t.name in used]
    removed = len(graph.initializer) - len(keep)
    if removed:
        _replace(graph.initializer, keep)
    return removed


def _drop_unused_opsets(model) -> int:
    used = {n.domain or "" for n in _nodes(model.graph)} | {"", "ai.onnx"}
    for function in model.functions:
        used |= {function.domain} | {n.domain or "" for n in function.node}
    keep = [o for o in model.opset_import if (o.domain or "") in used]
    removed = len(model.opset_import) - len(keep)
    if removed:
        _replace(model.opset_import, keep)
    return removed


def _nodes(graph):
    """Every node of ``graph`` and of its subgraphs (If/Loop bodies read outer initializers)."""
    import onnx

    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _nodes(sub)


def _io_names(graph) -> set[str]:
    return {v.name for v in graph.input} | {v.name for v in graph.output}


def _replace(field, items) -> None:
    items = list(items)
    del field[:]
    field.extend(items)
