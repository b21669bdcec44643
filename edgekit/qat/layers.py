"""Keras 3 layers for quantization-aware training, written in ``keras.ops`` only.

Each layer stands for one op of the int8 file the converters write (TFLite's CONV_2D with
its batch norm and ReLU6 fused, onnxruntime's Conv with a removable Relu/Clip), so its output
is quantized where theirs is (Jacob et al. 2018, arXiv:1712.05877, sections 3.2 and 3.4):

- ``QuantConv``: Conv2D or DepthwiseConv2D, the following BatchNormalization folded into its
  weights with the frozen moving statistics (``w * gamma / sqrt(var + eps)``, the fold the
  converters do), the weights fake-quantized per output channel, then the fused ReLU/ReLU6
  and the output range;
- ``QuantDense``: the classifier with per-output-unit int8 weights (the hybrid or int8 FC);
  its logits range is recorded but not applied (edgekit's default int8 head keeps logits float);
- ``ActivationRange``: the range of any other quantized tensor (input, Add, Multiply, pooling);
- ``QuantSwish`` and ``FixedSigmoid``: swish and sigmoid as LOGISTIC (+ MUL), the sigmoid's
  output on the fixed int8 grid the TFLite spec gives LOGISTIC (scale 1/256, zero point -128).

Ranges are exponential moving averages of each training batch's min and max (decay
``DEFAULT_DECAY``; the first batch sets them), as TF-MOT's MovingAverageQuantizer does. The
range variables are averaged across replicas under a tf.distribute strategy.
"""

from __future__ import annotations

import keras
from keras import ops

from .fake_quant import fake_quant_activation, fake_quant_weights

PACKAGE = "edgekit.qat"
DEFAULT_DECAY = 0.99
ACTIVATIONS = ("linear", "relu", "relu6")


def _activate(x, activation: str):
    if activation == "relu":
        return ops.relu(x)
    if activation == "relu6":
        return ops.relu6(x)
    return x


class _RangeMixin:
    """The EMA range of one tensor and its fake quantization."""

    def _add_range(self) -> None:
        kw = dict(shape=(), trainable=False, autocast=False, aggregation="mean")
        self.range_min = self.add_weight(name="range_min", initializer="zeros", **kw)
        self.range_max = self.add_weight(name="range_max", initializer="zeros", **kw)
        self.range_steps = self.add_weight(name="range_steps", initializer="zeros", **kw)

    def _ranged(self, x, training, apply: bool):
        low, high = self.range_min, self.range_max
        if training:
            x32 = ops.cast(x, "float32")
            first = ops.equal(self.range_steps, 0.0)
            d = self.decay
            low = ops.where(first, ops.min(x32), d * self.range_min + (1 - d) * ops.min(x32))
            high = ops.where(first, ops.max(x32), d * self.range_max + (1 - d) * ops.max(x32))
            self.range_min.assign(low)
            self.range_max.assign(high)
            self.range_steps.assign(self.range_steps + 1.0)
        return fake_quant_activation(x, low, high) if apply else x

    @property
    def learned_range(self) -> tuple[float, float]:
        return float(ops.convert_to_numpy(self.range_min)), float(ops.convert_to_numpy(self.range_max))


@keras.saving.register_keras_serializable(package=PACKAGE)
class ActivationRange(_RangeMixin, keras.layers.Layer):
    """Fake-quantizes its input with an EMA-tracked range; ``key``: the float model's layer
    whose output this tensor is (how export finds the converter's tensor)."""

    def __init__(self, key: str, decay: float = DEFAULT_DECAY, apply: bool = True, covers=(), **kwargs):
        super().__init__(**kwargs)
        self.key, self.decay, self.apply = key, float(decay), bool(apply)
        self.covers = list(covers) or [key]

    def build(self, input_shape):
        self._add_range()

    def call(self, x, training=False):
        return self._ranged(x, training, self.apply)

    def get_config(self):
        return {**super().get_config(), "key": self.key, "decay": self.decay, "apply": self.apply,
                "covers": self.covers}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantConv(_RangeMixin, keras.layers.Layer):
    """Conv2D/DepthwiseConv2D [+ BatchNormalization] [+ ReLU/ReLU6] as one int8 op."""

    def __init__(self, kind: str, filters: int, kernel_size, strides, padding: str, key: str,
                 depth_multiplier: int = 1, use_bias: bool = False, batchnorm: bool = False,
                 epsilon: float = 1e-3, activation: str = "linear", decay: float = DEFAULT_DECAY, covers=(),
                 **kwargs):
        super().__init__(**kwargs)
        self.covers = list(covers) or [key]
        if kind not in ("conv", "depthwise"):
            raise ValueError(f"QuantConv kind got {kind!r}; expected conv or depthwise")
        if activation not in ACTIVATIONS:
            raise ValueError(f"QuantConv activation got {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        self.kind, self.filters, self.key = kind, int(filters), key
        self.kernel_size, self.strides = tuple(kernel_size), tuple(strides)
        self.padding, self.depth_multiplier, self.use_bias = padding, int(depth_multiplier), bool(use_bias)
        self.batchnorm, self.epsilon, self.activation = bool(batchnorm), float(epsilon), activation
        self.decay = float(decay)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        last = self.filters if self.kind == "conv" else self.depth_multiplier
        out = self.filters if self.kind == "conv" else cin * self.depth_multiplier
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, cin, last))
        self.bias = self.add_weight(name="bias", shape=(out,), initializer="zeros") if self.use_bias else None
        if self.batchnorm:
            self.gamma = self.add_weight(name="gamma", shape=(out,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(out,), initializer="zeros")
            # Frozen: QAT fine-tunes with the statistics the converters fold.
            self.moving_mean = self.add_weight(name="moving_mean", shape=(out,), initializer="zeros", trainable=False)
            self.moving_variance = self.add_weight(name="moving_variance", shape=(out,), initializer="ones",
                                                   trainable=False)
        self._add_range()

    def folded(self):
        """(kernel, bias) with the batch norm folded in, as the converters fold it."""
        kernel = self.kernel
        bias = self.bias if self.bias is not None else ops.zeros((kernel.shape[-2] * kernel.shape[-1],)
                                                                 if self.kind == "depthwise" else (self.filters,))
        if not self.batchnorm:
            return kernel, bias
        factor = self.gamma / ops.sqrt(self.moving_variance + self.epsilon)
        shape = (1, 1, *kernel.shape[-2:]) if self.kind == "depthwise" else (1, 1, 1, self.filters)
        kernel = kernel * ops.reshape(factor, shape)
        return kernel, self.beta + (bias - self.moving_mean) * factor

    def quantized_kernel(self):
        kernel, bias = self.folded()
        if self.kind == "depthwise":  # one scale per output channel: (input channel, multiplier) pairs
            flat = ops.reshape(kernel, (*kernel.shape[:2], -1))
            return ops.reshape(fake_quant_weights(flat, -1), kernel.shape), bias
        return fake_quant_weights(kernel, -1), bias

    def call(self, x, training=False):
        kernel, bias = self.quantized_kernel()
        if self.kind == "depthwise":
            y = ops.depthwise_conv(x, kernel, strides=self.strides, padding=self.padding)
        else:
            y = ops.conv(x, kernel, strides=self.strides, padding=self.padding)
        y = _activate(y + bias, self.activation)
        return self._ranged(y, training, apply=True)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides), "padding": self.padding,
                "key": self.key, "depth_multiplier": self.depth_multiplier, "use_bias": self.use_bias,
                "batchnorm": self.batchnorm, "epsilon": self.epsilon, "activation": self.activation,
                "decay": self.decay, "covers": self.covers}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantDense(_RangeMixin, keras.layers.Layer):
    """Dense with int8 weights per output unit; the logits range is observed only."""

    def __init__(self, units: int, key: str, activation: str = "linear", decay: float = DEFAULT_DECAY,
                 covers=(), **kwargs):
        super().__init__(**kwargs)
        self.covers = list(covers) or [key]
        if activation not in ("linear", "softmax"):
            raise ValueError(f"QuantDense activation got {activation!r}; expected linear or softmax")
        self.units, self.key, self.activation, self.decay = int(units), key, activation, float(decay)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self._add_range()

    def call(self, x, training=False):
        logits = self._ranged(ops.matmul(x, fake_quant_weights(self.kernel, -1)) + self.bias, training, apply=False)
        return ops.softmax(logits, axis=-1) if self.activation == "softmax" else logits

    def get_config(self):
        return {**super().get_config(), "units": self.units, "key": self.key, "activation": self.activation,
                "decay": self.decay, "covers": self.covers}


def fake_quant_sigmoid(x):
    """sigmoid(x) on the fixed int8 grid of TFLite's LOGISTIC output (scale 1/256, zero point
    -128: the range [0, 255/256]), which the converter imposes whatever was calibrated."""
    return fake_quant_activation(ops.sigmoid(x), 0.0, 255.0 / 256.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FixedSigmoid(keras.layers.Layer):
    """A sigmoid (SE's gate) whose int8 output range is fixed by the spec: nothing to learn."""

    def call(self, x):
        return fake_quant_sigmoid(x)


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantSwish(ActivationRange):
    """swish(x) = x * sigmoid(x) as the converters write it (LOGISTIC then MUL, both int8): the
    sigmoid on its fixed grid, then the product with its learned range (``key``)."""

    def call(self, x, training=False):
        return self._ranged(x * fake_quant_sigmoid(x), training, self.apply)


RANGE_LAYERS = (ActivationRange, QuantConv, QuantDense)
