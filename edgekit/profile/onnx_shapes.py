"""Tensor types and shapes of an ONNX graph, from the cheapest source that knows them.

1. The file itself: graph inputs and outputs, ``value_info`` (present after
   ``onnxruntime.quantization.quant_pre_process`` or ``onnx.shape_inference``), initializers
   and Constant nodes.
2. ONNX's own shape inference (``onnx.shape_inference.infer_shapes``), when the ``onnx``
   package is installed (the ``train`` extra; not needed on a device).
3. One batch-1 run in ONNX Runtime with graph optimizations off and the profiler on, whose
   kernel events list the real input and output shapes of every node (``node_index`` is the
   node's position in the file; it is checked against the op type). Covers operators that
   ONNX's inference does not know (com.microsoft QLinear* ops) and devices without ``onnx``.

Each source only fills what the earlier ones left unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.messages import first_line
from edgekit.runtime.engines import EngineSettings, GraphOptimization
from edgekit.runtime.onnx_graph import OnnxGraph


@dataclass(frozen=True)
class ValueType:
    dtype: str | None
    shape: tuple[int | None, ...] | None


def from_file(graph: OnnxGraph) -> dict[str, ValueType]:
    known: dict[str, ValueType] = {}
    for value in (*graph.inputs, *graph.outputs, *graph.value_info):
        known[value.name] = ValueType(value.dtype, value.shape)
    for tensor in graph.initializers.values():
        known[tensor.name] = ValueType(tensor.dtype, tensor.dims)
    for node in graph.nodes:
        if node.value is not None and node.outputs:
            known[node.outputs[0]] = ValueType(node.value.dtype, node.value.dims)
    return known


def from_onnx(path: Path) -> tuple[dict[str, ValueType] | None, str | None]:
    """(types, None) from onnx shape inference, or (None, why not)."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None, "the onnx package is not installed"
    try:
        model = shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    except Exception as exc:  # onnx raises its own error types for graphs it cannot infer
        return None, f"onnx shape inference failed: {first_line(exc)}"
    known = {}
    for value in (*model.graph.value_info, *model.graph.output):
        t = value.type.tensor_type
        if not t.elem_type:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim) \
            if t.HasField("shape") else None
        known[value.name] = ValueType(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, shape)
    return known, None


def probe_feeds(graph: OnnxGraph) -> dict[str, np.ndarray]:
    """Zeros of each input's type at batch 1 (every unknown dimension taken as 1)."""
    feeds = {}
    for value in graph.inputs:
        if value.dtype is None or value.shape is None:
            raise ValueError(f"input {value.name!r} has no tensor type")
        feeds[value.name] = np.zeros(tuple(1 if d is None else d for d in value.shape), dtype=np.dtype(value.dtype))
    return feeds


def from_onnxruntime(path: Path, graph: OnnxGraph) -> tuple[dict[str, ValueType] | None, str | None]:
    """(types, None) from one profiled, unoptimized batch-1 run, or (None, why not)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None, "onnxruntime is not installed"
    from .ort_profile import profile_runs

    try:
        events = profile_runs(path, probe_feeds(graph), runs=1,
                              settings=EngineSettings(threads=1, optimization=GraphOptimization.DISABLED))
    except Exception as exc:  # ORT's own error types; a probe failure only costs the MACs
        return None, f"the onnxruntime probe run failed: {first_line(exc)}"
    known: dict[str, ValueType] = {}
    for event in events:
        if event.node_index is None or not 0 <= event.node_index < len(graph.nodes):
            continue
        node = graph.nodes[event.node_index]
        if node.op_type != event.op_type:
            continue
        for names, shapes in ((node.inputs, event.inputs), (node.outputs, event.outputs)):
            for name, (dtype, dims) in zip((n for n in names if n), shapes):
                known.setdefault(name, ValueType(dtype, dims))
    return known, None


def resolve(path: Path, graph: OnnxGraph, needed: set[str]) -> tuple[dict[str, ValueType], str, list[str]]:
    """Types of the graph's values: (types, the sources used, notes on sources that failed)."""
    known = from_file(graph)
    sources, notes = ["the file"], []

    def missing() -> set[str]:
        return {n for n in needed if n not in known or known[n].shape is None or known[n].dtype is None}

    for label, source in (("onnx shape inference", lambda: from_onnx(path)),
                          ("an onnxruntime probe run at batch 1", lambda: from_onnxruntime(path, graph))):
        if not missing():
            break
        found, why = source()
        if found is None:
            notes.append(why)
            continue
        for name, value in found.items():
            old = known.get(name)
            if old is None or old.shape is None or old.dtype is None:
                known[name] = value
        sources.append(label)
    return known, " + ".join(sources), notes
