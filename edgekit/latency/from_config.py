"""Kernel features of a zoo configuration (architecture, ``create_model`` overrides, input size),
from the Keras model's layers without converting it: what ``edgekit scale`` asks for each of the
hundreds of configurations it enumerates.

The layers map to the kernel types of :mod:`.kernels` as the converters' fusions leave them (the
same kernels :mod:`.from_file` reads from the exported file; tests/test_latency_model.py checks
that they agree): batch norm, ReLU/ReLU6, zero padding, dropout and the in-model input scaling
are folded away (a convolution after a ZeroPadding2D reads the unpadded map, as the converted
SAME convolution does); a convolution's non-ReLU activation (swish, sigmoid) is an ``act`` kernel
of its own. Weight bytes count the bias that batch norm folds into each convolution (int32 in an
int8 file, as the quantizers store it).
"""

from __future__ import annotations

import functools
import math

from .kernels import ELEMENT_BYTES, Kernel, conv_type

_FOLDED = {"InputLayer", "BatchNormalization", "ReLU", "Dropout", "ZeroPadding2D", "Rescaling", "Normalization",
           "SpatialDropout2D", "Identity"}
_FUSED_ACTIVATIONS = {"linear", "relu", "relu6"}
_POOLS = {"GlobalAveragePooling2D", "GlobalMaxPooling2D", "AveragePooling2D", "MaxPooling2D"}


def _elements(shape) -> int:
    return math.prod(int(d) for d in shape[1:] if d is not None)


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    return "linear" if act is None else getattr(act, "__name__", str(act))


def config_kernels(arch: str, overrides: dict | None, input_size: int, precision: str = "fp32") -> list[Kernel]:
    """The kernels of ``create_model(arch, input_shape=(n, n, 3), **overrides)`` at ``precision``."""
    if precision not in ELEMENT_BYTES:
        raise ValueError(f"precision got {precision!r}; expected one of {', '.join(ELEMENT_BYTES)}")
    key = tuple(sorted((overrides or {}).items()))
    return list(_cached(arch, key, int(input_size), precision))


@functools.lru_cache(maxsize=512)
def _cached(arch: str, overrides: tuple, input_size: int, precision: str) -> tuple[Kernel, ...]:
    import keras

    from edgekit.models import create_model

    model = create_model(arch, input_shape=(input_size, input_size, 3), **dict(overrides))
    try:
        return tuple(model_kernels(model, ELEMENT_BYTES[precision]))
    finally:
        del model
        keras.backend.clear_session(free_memory=False)


def model_kernels(model, element_bytes: int = 4) -> list[Kernel]:
    """The kernels of a built Keras functional model (weights and activations ``element_bytes`` each)."""
    from edgekit.models import layer_macs

    kernels = []
    unpadded: dict[int, tuple] = {}  # id of a ZeroPadding2D output -> the shape before padding
    for layer in model.layers:
        kind = type(layer).__name__
        for node in getattr(layer, "_inbound_nodes", []):
            if kind == "ZeroPadding2D":
                unpadded[id(node.output_tensors[0])] = tuple(node.input_tensors[0].shape)
            if kind in _FOLDED:
                continue
            ins = [unpadded.get(id(t), tuple(t.shape)) for t in node.input_tensors]
            out = tuple(node.output_tensors[0].shape)
            kernels.extend(_layer_kernels(layer, kind, ins, out, element_bytes, layer_macs))
    return kernels


def _layer_kernels(layer, kind: str, ins: list[tuple], out: tuple, es: int, layer_macs) -> list[Kernel]:
    acts = (sum(_elements(s) for s in ins) + _elements(out)) * es
    weights = sum(_elements((None, *w.shape)) for w in layer.weights) * es
    name = layer.name
    if kind in ("Conv2D", "DepthwiseConv2D"):
        depthwise = kind == "DepthwiseConv2D"
        k, s = int(layer.kernel_size[0]), int(layer.strides[0])
        positions = _elements((None, *out[1:-1]))
        if not layer.use_bias:  # batch norm's shift becomes the bias
            weights += int(out[-1]) * 4
        found = [Kernel(conv_type(k, s, depthwise, positions), layer_macs(layer, ins[0], out), acts, weights, name,
                        int(out[-1]))]
        if _activation_name(layer) not in _FUSED_ACTIVATIONS:
            found.append(Kernel("act", 0, 2 * _elements(out) * es, 0, f"{name}/activation"))
        return found
    if kind == "Dense":
        found = [Kernel("fc", layer_macs(layer, ins[0], out), acts, weights, name, int(out[-1]))]
        act = _activation_name(layer)
        if act not in _FUSED_ACTIVATIONS:
            found.append(Kernel("other" if act == "softmax" else "act", 0, 2 * _elements(out) * es, 0,
                                f"{name}/activation"))
        return found
    if kind == "Activation":
        act = _activation_name(layer)
        if act in _FUSED_ACTIVATIONS:
            return []
        return [Kernel("other" if act == "softmax" else "act", 0, acts, 0, name)]
    if kind == "Add":
        return [Kernel("add", 0, acts, 0, name)]
    if kind == "Multiply":
        return [Kernel("mul", 0, acts, 0, name)]
    if kind in _POOLS:
        return [Kernel("pool", 0, acts, 0, name)]
    return [Kernel("other", 0, acts, weights, name)]
