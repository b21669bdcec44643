"""Which layers' int8 activations can flip the model's top-1 class: a first-order estimate in Keras.

Quantizing a layer's output to 8 bits adds rounding noise of variance ``s**2 / 12`` per element,
``s`` the quantization step of its calibrated range (TFLite and onnxruntime both include 0 in
the range). To first order the noise moves the top-1 vs top-2 log-probability margin ``m`` of an
image by a Gaussian of standard deviation ``sigma = s / sqrt(12) * |dm/da|``, so the chance that
it flips the image's class is ``Phi(-m / sigma)``. Summed over the images that is the expected
number of top-1 changes the layer causes: a model-level sensitivity, from one forward and one
backward pass, that sees what a per-op error cannot: a layer whose small error the rest of the
network amplifies (found on an EfficientNet-B0, where the global average pool feeding the
classifier decided 5 pp of accuracy while its own SQNR was among the best).

The idea is the Fisher/Hessian-trace sensitivity of mixed-precision search (HAWQ, Dong et al.
2019; "Fisher information" ranking in Kadambi 2020), applied to the decision margin.

Converters name their tensors and nodes after the TensorFlow ops, which carry the Keras layer
names (``model/block6a_se_excite_1/Mul``); ``match`` maps a converter's name to the layers in it.
"""

from __future__ import annotations

import math
import re

import numpy as np

SAMPLES = 64
MIN_MARGIN = 1e-3


def layer_flips(model, images: np.ndarray, batch: int = 16) -> dict[str, tuple[float, float]]:
    """Per layer: (expected top-1 flips per image caused by int8 rounding of its output, mean
    noise-to-margin ratio ``sigma / m``, which orders the layers whose flips round to 0)."""
    import keras
    import tensorflow as tf

    layers, tensors = _layer_outputs(model)
    probe = keras.Model(model.inputs, tensors + [model.outputs[0]])
    images = images[:SAMPLES]
    low = {layer.name: 0.0 for layer in layers}
    high = {layer.name: 0.0 for layer in layers}
    grads: dict[str, list[np.ndarray]] = {layer.name: [] for layer in layers}
    margins = []
    for start in range(0, len(images), batch):
        x = tf.convert_to_tensor(images[start:start + batch], tf.float32)
        with tf.GradientTape() as tape:
            outs = probe(x, training=False)
            margin = _margin(outs[-1])
        g = tape.gradient(margin, outs[:-1], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        margins.append(margin.numpy())
        for layer, a, ga in zip(layers, outs[:-1], g):
            a = a.numpy()
            low[layer.name], high[layer.name] = min(low[layer.name], float(a.min())), max(high[layer.name], float(a.max()))
            grads[layer.name].append(np.sqrt(np.sum(np.square(ga.numpy().reshape(len(a), -1)), axis=1)))
    m = np.maximum(np.concatenate(margins), MIN_MARGIN)
    flips = {}
    for name in grads:
        sigma = (high[name] - low[name]) / 255 / math.sqrt(12) * np.concatenate(grads[name])
        ratio = sigma / m
        flips[name] = (float(np.mean(_phi(-1 / np.maximum(ratio, 1e-30)))), float(np.mean(ratio)))
    return flips


def _layer_outputs(model):
    """(layers, their output tensors) in ``model``'s own graph: a layer shared with another
    graph (``InputForm.wrap`` re-applies the trained model's layers behind the input adapter)
    has several nodes, and ``layer.output`` would be the other graph's."""
    import keras

    layers, tensors = [], []
    for depth in sorted(model._nodes_by_depth, reverse=True):  # noqa: SLF001 - Keras 3 Functional's graph
        for node in model._nodes_by_depth[depth]:  # noqa: SLF001
            op = node.operation
            if isinstance(op, keras.layers.InputLayer) or len(node.outputs) != 1 or op in layers:
                continue
            layers.append(op)
            tensors.append(node.outputs[0])
    return layers, tensors


def _margin(scores):
    """Top-1 minus top-2 log-probability per image (the logit margin), from probabilities or logits."""
    import tensorflow as tf

    is_prob = tf.reduce_all(tf.abs(tf.reduce_sum(scores, -1) - 1) < 1e-3) & tf.reduce_all(scores >= 0)
    logp = tf.cond(is_prob, lambda: tf.math.log(tf.maximum(scores, 1e-12)), lambda: tf.nn.log_softmax(scores))
    top2 = tf.math.top_k(logp, 2).values
    return top2[:, 0] - top2[:, 1]


def _phi(x: np.ndarray) -> np.ndarray:
    from math import erf

    return 0.5 * (1 + np.vectorize(erf)(x / math.sqrt(2)))


_SUFFIX = re.compile(r"_\d+$")


def match(name: str, layer_names: set[str]) -> list[str]:
    """The Keras layers named in a converter's tensor or node name (Keras 3 adds ``_1`` suffixes
    to the TF name scopes; fused ops join several names with ``;``)."""
    found = []
    for part in re.split(r"[;/:]", name):
        for candidate in (part, _SUFFIX.sub("", part)):
            if candidate in layer_names and candidate not in found:
                found.append(candidate)
                break
    return found


def rank(names: list[str], flips: dict[str, tuple[float, float]]) -> list[str]:
    """``names`` most flip-prone first (the worst layer each name mentions); names that mention
    no layer keep their order, after the others."""
    layer_names = set(flips)

    def key(item):
        index, name = item
        layers = match(name, layer_names)
        if not layers:
            return (1, 0.0, 0.0, index)
        worst = max(flips[layer] for layer in layers)
        return (0, -worst[0], -worst[1], index)

    return [name for _, name in sorted(enumerate(names), key=key)]


def keras_flips(ctx):
    """:func:`layer_flips` of a ``ConversionContext``'s model on its calibration images, computed
    once per export (``ctx.once``)."""
    return ctx.once("keras_flips", lambda: layer_flips(ctx.model, ctx.require_calibration()))
