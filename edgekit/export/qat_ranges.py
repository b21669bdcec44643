"""Activation ranges learned by quantization-aware training (``edgekit qat``), written into the
int8 files instead of calibrated ones.

A QAT run's ``edgekit.json`` lists each quantized tensor by the float layers it covers (a
convolution with its fused batch norm and ReLU6, an Add, the pooling, ...) with its learned
min/max. The converters name their tensors after the ops that made them, inside each Keras
layer's name scope (TFLite: ``model/block_1_depthwise_relu_1/Relu6;model/...`` with fused ops
joined by ``;``; tf2onnx: ``model/block_2_add_1/Add:0``), so a tensor is matched to the layer
named by the first such scope that is a covered layer.

- TFLite: the calibrate-only conversion records a min/max per tensor (the converter's own
  step, ``tflite_convert.calibrated_model``); the matched tensors' min/max are overwritten in
  that flatbuffer before ``mlir_quantize`` turns it into int8.
- ONNX: onnxruntime's ``quantize_static`` takes per-tensor ``rmin``/``rmax`` overrides
  (``extra_options["TensorQuantOverrides"]``) that replace what its calibrator measured.

Tensors no QAT range covers (the uint8 input, the float head's softmax, and in-model input
preprocessing such as EfficientNet B's Rescaling/Normalization, which the converters fold into
the input adapter and first convolution) keep the calibrated range; sigmoid outputs keep the
range the int8 spec fixes for LOGISTIC (QAT simulates that grid); the export notes count the
three kinds. The weights are quantized by the converters as QAT
simulated them (int8 per channel), except onnxruntime's 7-bit ``reduce_range`` weights, which
edgekit picks on x86 CPUs without VNNI (the x86-avx2 target, ``edgekit.devices``); QAT does not simulate those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

INPUT_KEY = "input_layer"
# onnxruntime carries a tensor's range through these unchanged (Pad after a ReLU6, Squeeze after pooling).
ONNX_PASS_THROUGH = ("Pad", "Squeeze", "Reshape", "Transpose", "Flatten", "Identity")
ONNX_PRODUCERS = ("Conv", "Clip", "Relu", "Add", "Mul", "GlobalAveragePool", "ReduceMean", "MatMul", "Gemm")
_SUFFIX = re.compile(r"_\d+$")
FIXED_OP = "Sigmoid"


@dataclass
class Injection:
    """Which converter tensors took a learned range (by key) and which kept a calibrated one."""

    learned: dict[str, str] = field(default_factory=dict)  # tensor -> key
    calibrated: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)  # sigmoid outputs: range fixed by the spec

    def notes(self, ranges: dict) -> dict:
        unused = sorted(set(ranges) - set(self.learned.values()))
        return {"learned_ranges": len(self.learned), "calibrated_ranges": len(self.calibrated),
                "fixed_ranges": len(self.fixed), "calibrated_tensors": self.calibrated[:10],
                "ranges_without_tensor": unused}


def layer_index(ranges: dict) -> dict[str, str]:
    """{float layer name: range key} for every layer a recorded range covers."""
    return {layer: key for key, r in ranges.items() for layer in r.get("layers", [key])}


def key_of(name: str, index: dict[str, str]) -> str | None:
    """The range key of a converter tensor name, from the first layer scope in it that is known.

    An op inside a layer scope is known as ``layer/op`` (a convolution's own swish:
    ``block1a_se_reduce/mul`` is its product, ``block1a_se_reduce`` its convolution)."""
    for part in name.split(";"):
        scopes = [s.split(":")[0] for s in part.split("/")]
        for scope, op in zip(scopes, scopes[1:]):
            candidate = f"{_SUFFIX.sub('', scope)}/{_SUFFIX.sub('', op)}"
            if candidate in index:
                return index[candidate]
        for scope in scopes:
            for candidate in (_SUFFIX.sub("", scope), scope):
                if candidate in index:
                    return index[candidate]
    return None


def is_fixed(name: str) -> bool:
    """A sigmoid's output: int8 LOGISTIC has a fixed range by the TFLite spec (scale 1/256,
    zero point -128), which QAT simulates (``edgekit.qat.layers.fake_quant_sigmoid``)."""
    return _SUFFIX.sub("", name.split(";")[0].split("/")[-1].split(":")[0]) == FIXED_OP


def check_ranges(ranges) -> dict:
    """The recorded ranges, checked: {key: {"min", "max", ...}} with finite min <= max."""
    import math

    if not isinstance(ranges, dict) or not ranges:
        raise ValueError(f"the QAT run's ranges got {type(ranges).__name__}; expected a non-empty mapping")
    for key, r in ranges.items():
        low, high = (r.get("min"), r.get("max")) if isinstance(r, dict) else (None, None)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)) or low > high:
            raise ValueError(f"the QAT run's range for {key!r} got {r!r}; expected finite min <= max")
    return ranges


def inject_tflite(calibrated: bytes, ranges: dict, adapter: bool) -> tuple[bytes, Injection]:
    """The calibrated flatbuffer with every matched tensor's min/max set to the learned range.

    ``adapter``: the export put an input adapter in front of the model, whose output is the
    model's input; otherwise the graph input itself takes the input range."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    index = layer_index(ranges)
    if adapter and INPUT_KEY in ranges:  # none when the model normalises its own input (EfficientNet B)
        index["input_adapter"] = INPUT_KEY
    done = Injection()
    for graph in model.subgraphs:
        inputs = set(graph.inputs)
        for i, tensor in enumerate(graph.tensors):
            q = tensor.quantization
            if q is None or q.min is None or len(q.min) != 1:
                continue
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            if i not in inputs and is_fixed(name):
                done.fixed.append(name)
                continue
            key = (INPUT_KEY if not adapter and INPUT_KEY in ranges else None) if i in inputs else key_of(name, index)
            if key is None:
                done.calibrated.append(name)
                continue
            q.min, q.max = [float(ranges[key]["min"])], [float(ranges[key]["max"])]
            done.learned[name] = key
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), done


def onnx_overrides(graph, ranges: dict, adapter_node: str | None) -> tuple[dict, Injection]:
    """onnxruntime TensorQuantOverrides ({tensor: [{"rmin", "rmax"}]}) for the pre-processed graph."""
    index = layer_index(ranges)
    keys: dict[str, str] = {}
    if adapter_node is None and INPUT_KEY in ranges:
        keys.update({i.name: INPUT_KEY for i in graph.input})
    for node in graph.node:
        key = None
        if node.name == adapter_node:
            key = INPUT_KEY
        elif node.op_type in ONNX_PRODUCERS:
            # tf2onnx names some Conv nodes "Conv__N"; their weight input keeps the layer's scope.
            names = [node.output[0], node.name, *([node.input[1]] if len(node.input) > 1 else [])]
            key = next((k for k in (key_of(n, index) for n in names) if k is not None), None)
        elif node.op_type in ONNX_PASS_THROUGH and node.input and node.input[0] in keys:
            key = keys[node.input[0]]
        if key is not None and key in ranges:
            keys[node.output[0]] = key
    done = Injection(learned=dict(keys))
    produced = [o for n in graph.node for o in n.output if o not in keys]
    done.calibrated = produced
    # numpy scalars: onnxruntime's compute_scale_zp reads their dtype.
    overrides = {t: [{"rmin": np.float32(ranges[k]["min"]), "rmax": np.float32(ranges[k]["max"])}]
                 for t, k in keys.items()}
    return overrides, done
