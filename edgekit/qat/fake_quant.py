"""Fake quantization in ``keras.ops``: the int8 arithmetic of the TFLite and onnxruntime
quantizers, simulated in float with a straight-through estimator (Jacob et al. 2018,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference",
arXiv:1712.05877, section 3; Bengio et al. 2013 for the estimator).

- Weights: symmetric per output channel, ``scale = max|w| / 127``, values in -127..127 (TFLite's
  per-channel int8 convolution weights, https://ai.google.dev/edge/litert/models/quantization_spec).
- Activations: asymmetric per tensor, the range nudged to contain 0, ``scale = (max - min) / 255``,
  ``zero_point = round(-128 - min / scale)`` clamped to -128..127 (the same spec).

Backend-neutral: only ``keras.ops``, so the layers in ``edgekit.qat.layers`` run on any Keras 3
backend. The rounding's gradient is taken as 1 inside the representable range and 0 outside.
"""

from __future__ import annotations

from keras import ops

QMIN, QMAX = -128.0, 127.0
WEIGHT_QMAX = 127.0
TINY = 1e-12


def activation_qparams(low, high):
    """(scale, zero point) of an int8 tensor whose recorded range is [low, high]."""
    low = ops.minimum(low, 0.0)
    high = ops.maximum(high, 0.0)
    scale = ops.maximum((high - low) / (QMAX - QMIN), TINY)
    zero_point = ops.clip(ops.round(QMIN - low / scale), QMIN, QMAX)
    return scale, zero_point


def fake_quant_activation(x, low, high):
    """``x`` through int8 with the range [low, high]; straight-through gradient inside it."""
    scale, zero_point = activation_qparams(low, high)
    lowest, highest = (QMIN - zero_point) * scale, (QMAX - zero_point) * scale
    clipped = ops.clip(x, lowest, highest)
    quantized = (ops.clip(ops.round(clipped / scale) + zero_point, QMIN, QMAX) - zero_point) * scale
    return clipped + ops.stop_gradient(quantized - clipped)


def fake_quant_weights(w, channel_axis: int = -1):
    """``w`` through symmetric int8 with one scale per index of ``channel_axis``."""
    axes = [a for a in range(len(w.shape)) if a != channel_axis % len(w.shape)]
    peak = ops.max(ops.abs(w), axis=axes, keepdims=True)
    scale = ops.maximum(peak / WEIGHT_QMAX, TINY)
    quantized = ops.clip(ops.round(w / scale), -WEIGHT_QMAX, WEIGHT_QMAX) * scale
    return w + ops.stop_gradient(quantized - w)
