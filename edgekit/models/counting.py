"""Exact parameter and MAC counts of a Keras model, per layer.

MACs are the multiply-accumulates of convolution, depthwise, separable, transposed and
dense layers at batch 1 (the papers' "mult-adds"): for a convolution,
``kh * kw * (c_in / groups) * c_out * h_out * w_out``; for a depthwise convolution,
``kh * kw * c_in * depth_multiplier * h_out * w_out``; for a dense layer,
``units_in * units_out`` times any leading (non-batch) positions. Squeeze-excitation is
made of 1x1 convolutions and is counted through them. Bias additions, batch normalisation,
activations, pooling and element-wise products are not MACs and count 0, as in the
MobileNet and EfficientNet papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class LayerCount:
    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int


@dataclass(frozen=True)
class ModelCount:
    name: str
    layers: tuple[LayerCount, ...]
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int

    def to_dict(self, per_layer: bool = True) -> dict:
        doc = {"model": self.name, "params": self.params, "trainable_params": self.trainable_params,
               "non_trainable_params": self.non_trainable_params, "macs": self.macs}
        if per_layer:
            doc["layers"] = [{"name": r.name, "type": r.type, "output_shape": list(r.output_shape),
                              "params": r.params, "macs": r.macs} for r in self.layers]
        return doc


def _positions(shape) -> int:
    """Output positions at batch 1: the product of all dims but batch and channels."""
    dims = [int(d) for d in shape[1:-1]]
    return math.prod(dims) if dims else 1


def _kernel_size(layer) -> int:
    return math.prod(int(k) for k in layer.kernel_size)


def layer_macs(layer, input_shape, output_shape) -> int:
    """Multiply-accumulates of one layer call at batch 1 (0 for layers that do none)."""
    if isinstance(layer, layers.DepthwiseConv2D):
        return _kernel_size(layer) * int(input_shape[-1]) * layer.depth_multiplier * _positions(output_shape)
    if isinstance(layer, layers.SeparableConv2D):
        c_in = int(input_shape[-1])
        depthwise = _kernel_size(layer) * c_in * layer.depth_multiplier * _positions(output_shape)
        return depthwise + c_in * layer.depth_multiplier * layer.filters * _positions(output_shape)
    if isinstance(layer, layers.Conv2DTranspose):
        # Every input position scatters a full kernel into the output.
        return _kernel_size(layer) * int(input_shape[-1]) * layer.filters * _positions(input_shape)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        groups = getattr(layer, "groups", 1) or 1
        return _kernel_size(layer) * (int(input_shape[-1]) // groups) * layer.filters * _positions(output_shape)
    if isinstance(layer, layers.Dense):
        return int(input_shape[-1]) * layer.units * _positions(output_shape)
    return 0


def _shape(tensor) -> tuple:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _calls(layer):
    """(input tensor, output tensor) of each time the layer was called in a graph."""
    for node in getattr(layer, "_inbound_nodes", []):
        ins = node.input_tensors
        outs = node.output_tensors
        if ins and outs:
            yield ins[0], outs[0]


def _rows(model: keras.Model, prefix: str = "") -> list[LayerCount]:
    rows: list[LayerCount] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # nested backbone: count its layers, named by path
            rows.extend(_rows(layer, prefix=f"{prefix}{layer.name}/"))
            continue
        calls = list(_calls(layer)) if not isinstance(layer, layers.InputLayer) else []
        macs = sum(layer_macs(layer, _shape(i), _shape(o)) for i, o in calls)
        out = _shape(calls[0][1]) if calls else _shape(layer.output) if hasattr(layer, "output") else ()
        rows.append(LayerCount(prefix + layer.name, type(layer).__name__, out,
                               int(layer.count_params()) if layer.built else 0, int(macs)))
    return rows


def _weights_size(weights) -> int:
    return int(sum(math.prod(int(d) for d in w.shape) for w in weights))


def count_model(model: keras.Model) -> ModelCount:
    """Per-layer and total parameters and MACs of a built Keras model (batch 1)."""
    rows = _rows(model)
    trainable = _weights_size(model.trainable_weights)
    non_trainable = _weights_size(model.non_trainable_weights)
    return ModelCount(model.name, tuple(rows), trainable + non_trainable, trainable,
                      non_trainable, sum(r.macs for r in rows))

