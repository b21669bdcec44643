"""The float model <-> its quantization-aware twin.

``qat_model(float_model)`` walks the functional graph once, in order, and rebuilds it with the
layers of ``edgekit.qat.layers`` where the converters put an int8 op: Conv2D/DepthwiseConv2D
with the BatchNormalization and ReLU/ReLU6 that follow it (fused, as TFLite and onnxruntime
fuse them), swish (LOGISTIC + MUL: ``QuantSwish``) and sigmoid (``FixedSigmoid``) whether a
layer or a convolution's own activation, Add, Multiply (squeeze-and-excitation), GlobalAveragePooling2D,
the Dense classifier, and the input. Layers that do not change a tensor's quantization
(ZeroPadding2D, Dropout, Reshape, Flatten, a final softmax) are copied as they are and added to
the ``covers`` of the range they carry; input Rescaling/Normalization are copied unquantized
(``PREPROCESSING``). Any other layer is refused (``UnsupportedLayer``, naming it).

``write_back(qat, float_model)`` copies the trained weights into the float architecture
(unfolded: conv kernel, and batch norm gamma/beta with the frozen statistics), so a QAT run's
``model.keras`` is the zoo's own model and converts exactly as a trained run does; the learned
ranges travel beside it in ``edgekit.json`` (``learned_ranges``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as L

from .layers import DEFAULT_DECAY, RANGE_LAYERS, ActivationRange, FixedSigmoid, QuantConv, QuantDense, QuantSwish

INPUT_KEY = "input_layer"
PASS_THROUGH = (L.ZeroPadding2D, L.Dropout, L.Reshape, L.Flatten)
RANGED_OPS = (L.Add, L.Multiply, L.GlobalAveragePooling2D)
# In-model input preprocessing (EfficientNet B's Rescaling and Normalization): a fixed affine map
# of the pixels that the converters fold into the input adapter / first convolution. It is
# copied unquantized and the input gets no learned range: those tensors keep calibrated ranges.
PREPROCESSING = (L.Rescaling, L.Normalization)
SWISH = ("swish", "silu")
SUPPORTED = ("Conv2D, DepthwiseConv2D, BatchNormalization after a convolution, ReLU/ReLU6, swish, sigmoid, "
             "Add, Multiply, GlobalAveragePooling2D, Dense, ZeroPadding2D, Dropout, Reshape, Flatten, "
             "Rescaling/Normalization on the input, a final softmax")


class UnsupportedLayer(ValueError):
    """A layer the fake quantization cannot stand for."""


def _refuse(layer, why: str = "") -> UnsupportedLayer:
    kind = type(layer).__name__
    act = getattr(layer, "activation", None)
    if kind == "Activation" and act is not None:
        kind += f" {getattr(act, '__name__', act)}"
    return UnsupportedLayer(f"layer {layer.name!r} ({kind}) cannot be fake-quantized{why}; "
                            f"edgekit qat supports {SUPPORTED}")


def _act_name(layer) -> str | None:
    """'relu', 'relu6' or 'linear' for an activation a convolution can fuse; None otherwise."""
    if isinstance(layer, L.ReLU):
        cfg = layer.get_config()
        if cfg.get("negative_slope", 0) == 0 and cfg.get("threshold", 0) == 0:
            return {None: "relu", 6.0: "relu6"}.get(None if cfg.get("max_value") is None else float(cfg["max_value"]))
        return None
    if isinstance(layer, L.Activation):
        name = getattr(layer.activation, "__name__", str(layer.activation))
        return name if name in ("relu", "relu6", "linear") else None
    return None


def _activation(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def _is_softmax(layer) -> bool:
    return isinstance(layer, L.Activation) and getattr(layer.activation, "__name__", "") == "softmax"


class _Graph:
    """Consumers of each tensor of a functional model whose layers are each called once."""

    def __init__(self, model: keras.Model):
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise UnsupportedLayer(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
                                   "outputs; edgekit qat takes single-input, single-output models")
        self.model = model
        self.consumers: dict[int, list] = {}
        for layer in model.layers:
            if len(layer._inbound_nodes) != 1:  # noqa: SLF001 - Keras 3 keeps no public node list
                raise _refuse(layer, " (it is called more than once)")
            for t in self.inputs(layer):
                self.consumers.setdefault(id(t), []).append(layer)

    @staticmethod
    def inputs(layer) -> list:
        return list(layer._inbound_nodes[0].input_tensors)  # noqa: SLF001

    def sole_consumer(self, layer):
        users = self.consumers.get(id(layer.output), [])
        return users[0] if len(users) == 1 and layer.output is not self.model.outputs[0] else None


def _conv_unit(graph: _Graph, conv) -> tuple[QuantConv, list]:
    """The QuantConv for ``conv`` and the layers it absorbs (batch norm, activation)."""
    cfg = conv.get_config()
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1) or cfg.get("groups", 1) != 1:
        raise _refuse(conv, " (dilated or grouped)")
    own_act = getattr(conv.activation, "__name__", "linear")
    if own_act not in ("linear", "relu", "sigmoid", *SWISH):
        raise _refuse(conv, f" (activation {own_act})")
    if own_act not in ("linear", "relu"):  # LOGISTIC (+ MUL) after the int8 conv: _tail
        own_act = "bypass"
    chain, bn, act = [conv], None, own_act
    nxt = graph.sole_consumer(conv)
    if isinstance(nxt, L.BatchNormalization) and act == "linear":
        bcfg = nxt.get_config()
        if not (bcfg["center"] and bcfg["scale"] and bcfg["axis"] in (-1, 3, [3], [-1])):
            raise _refuse(nxt, " (needs center, scale and the channel axis)")
        bn = nxt
        chain.append(bn)
        nxt = graph.sole_consumer(bn)
    if act == "linear" and nxt is not None and _act_name(nxt) is not None:
        act = _act_name(nxt)
        chain.append(nxt)
    depthwise = isinstance(conv, L.DepthwiseConv2D)
    unit = QuantConv("depthwise" if depthwise else "conv", 0 if depthwise else cfg["filters"], cfg["kernel_size"],
                     cfg["strides"], cfg["padding"], key=chain[-1].name,
                     depth_multiplier=cfg.get("depth_multiplier", 1), use_bias=cfg["use_bias"],
                     batchnorm=bn is not None, epsilon=bn.epsilon if bn is not None else 1e-3,
                     activation="linear" if act == "bypass" else act, decay=DEFAULT_DECAY,
                     covers=[c.name for c in chain], name=conv.name)
    return unit, chain


def _copy(layer):
    return type(layer).from_config(layer.get_config())


def qat_model(model: keras.Model) -> keras.Model:
    """The quantization-aware twin of ``model`` with its weights; UnsupportedLayer if it has
    a layer the fake quantization cannot stand for."""
    graph = _Graph(model)
    x_in = keras.Input(shape=model.inputs[0].shape[1:], name=model.inputs[0].name)
    users = graph.consumers.get(id(model.inputs[0]), [])
    input_range = None if any(isinstance(u, PREPROCESSING) for u in users) else \
        ActivationRange(INPUT_KEY, name=f"{INPUT_KEY}_range")
    new = {id(model.inputs[0]): input_range(x_in) if input_range else x_in}
    carrier = {id(model.inputs[0]): input_range}  # the range layer whose range each tensor has
    absorbed: set[str] = set()
    copies: list[tuple] = []
    for layer in model.layers:
        if isinstance(layer, L.InputLayer) or layer.name in absorbed:
            continue
        xs = [new[id(t)] for t in graph.inputs(layer)]
        last, ranged = layer, None
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D)) and not isinstance(layer, L.Conv2DTranspose):
            unit, chain = _conv_unit(graph, layer)
            y, ranged = unit(xs[0]), unit
            _set_conv_weights(unit, chain)
            absorbed.update(c.name for c in chain)
            last = chain[-1]
            if _activation(layer) in SWISH:  # the product is the conv's own "<name>/mul" tensor
                ranged = QuantSwish(f"{layer.name}/mul", name=f"{layer.name}_swish")
                y = ranged(y)
            elif _activation(layer) == "sigmoid":
                y, ranged = FixedSigmoid(name=f"{layer.name}_sigmoid")(y), None
        elif isinstance(layer, L.Activation) and _activation(layer) in SWISH:
            ranged = QuantSwish(layer.name, name=f"{layer.name}_swish")
            y = ranged(xs[0])
        elif isinstance(layer, L.Activation) and _activation(layer) == "sigmoid":
            y = FixedSigmoid(name=f"{layer.name}_sigmoid")(xs[0])
        elif isinstance(layer, L.Dense):
            act = getattr(layer.activation, "__name__", "linear")
            if act not in ("linear", "softmax") or len(layer.output.shape) != 2:
                raise _refuse(layer, f" (activation {act})" if act not in ("linear", "softmax") else " (not on a vector)")
            ranged = QuantDense(layer.units, key=layer.name, activation=act, name=layer.name)
            y = ranged(xs[0])
            ranged.set_weights([*layer.get_weights(), *ranged.get_weights()[2:]])
        elif isinstance(layer, RANGED_OPS):
            copy = _copy(layer)
            ranged = ActivationRange(layer.name, name=f"{layer.name}_range")
            y = ranged(copy(xs if len(xs) > 1 else xs[0]))
        elif isinstance(layer, PASS_THROUGH + PREPROCESSING) or (_is_softmax(layer) and
                                                                 layer.output is model.outputs[0]):
            if isinstance(layer, PREPROCESSING) and input_range is not None:
                raise _refuse(layer, " (preprocessing inside the model, not on its input)")
            copy = _copy(layer)
            y = copy(xs[0])
            copies.append((copy, layer))
            ranged = carrier.get(id(graph.inputs(layer)[0])) if isinstance(layer, PASS_THROUGH) else None
            if ranged is not None:  # the converters give the result its input's range
                ranged.covers.append(layer.name)
        else:
            raise _refuse(layer)
        new[id(last.output)] = y
        carrier[id(last.output)] = ranged
    for copy, layer in copies:
        copy.set_weights(layer.get_weights())
        if isinstance(copy, L.Normalization):
            copy.finalize_state()  # its call reads mean/variance computed from the weights
    return keras.Model(x_in, new[id(model.outputs[0])], name=model.name)


def _set_conv_weights(unit: QuantConv, chain: list) -> None:
    conv = chain[0]
    weights = list(conv.get_weights())  # kernel[, bias]
    bn = next((c for c in chain if isinstance(c, L.BatchNormalization)), None)
    if bn is not None:
        gamma, beta, mean, var = bn.get_weights()
        weights += [gamma, beta, mean, var]
    unit.set_weights([*weights, *unit.get_weights()[len(weights):]])


def range_layers(qat: keras.Model) -> list:
    return [layer for layer in qat.layers if isinstance(layer, RANGE_LAYERS)]


def learned_ranges(qat: keras.Model) -> dict[str, dict]:
    """{float layer name: {"min", "max", "applied"}} of every tensor the QAT model quantizes."""
    out = {}
    for layer in range_layers(qat):
        low, high = layer.learned_range
        out[layer.key] = {"min": low, "max": high, "layers": list(layer.covers),
                          "applied": not isinstance(layer, QuantDense) and getattr(layer, "apply", True)}
    return out


def set_ranges(qat: keras.Model, ranges: dict[str, dict]) -> None:
    """Load recorded ranges into a QAT model (the inverse of ``learned_ranges``)."""
    for layer in range_layers(qat):
        if layer.key not in ranges:
            raise ValueError(f"the recorded ranges have no entry for {layer.key!r}")
        r = ranges[layer.key]
        layer.range_min.assign(float(r["min"]))
        layer.range_max.assign(float(r["max"]))
        layer.range_steps.assign(1.0)


def write_back(qat: keras.Model, model: keras.Model) -> None:
    """Copy the QAT model's trained weights into the float ``model`` (same architecture)."""
    for layer in qat.layers:
        if isinstance(layer, QuantConv):
            values = [np.asarray(v) for v in layer.get_weights()]
            n = 2 if layer.use_bias else 1
            model.get_layer(layer.name).set_weights(values[:n])
            if layer.batchnorm:
                bn = graph_bn(model, layer.name)
                bn.set_weights(values[n:n + 4])
        elif isinstance(layer, QuantDense):
            model.get_layer(layer.name).set_weights([np.asarray(v) for v in layer.get_weights()[:2]])


def graph_bn(model: keras.Model, conv_name: str):
    """The BatchNormalization that follows the convolution ``conv_name`` in ``model``."""
    graph = _Graph(model)
    bn = graph.sole_consumer(model.get_layer(conv_name))
    if not isinstance(bn, L.BatchNormalization):
        raise ValueError(f"{conv_name!r} is not followed by a BatchNormalization in {model.name!r}")
    return bn


def load_qat_model(run_dir) -> keras.Model:
    """The fake-quantized model of a QAT run (its float model with the recorded ranges): what
    the int8 files compute, simulated in float."""
    from edgekit.models.safe_load import load_keras_model
    from edgekit.run_record import RECORD, load_run

    run = load_run(run_dir)
    if not isinstance(run.record.qat, dict) or "ranges" not in run.record.qat:
        raise ValueError(f"{str(run_dir)!r} is not a QAT run (its {RECORD} has no 'qat' entry with ranges)")
    model = qat_model(load_keras_model(run.model))
    set_ranges(model, run.record.qat["ranges"])
    return model
