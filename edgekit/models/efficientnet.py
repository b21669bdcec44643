"""EfficientNet B0-B7 and EfficientNet-Lite0-4: one B0 table, one builder, compound scaling.

- Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"
  (arXiv:1905.11946), Table 1 (the B0 rows below) and eq. 3 (depth alpha^phi, width beta^phi,
  resolution gamma^phi with alpha=1.2, beta=1.1, gamma=1.15).
- EfficientNet-Lite (TensorFlow TPU repo, efficientnet/lite, 2020): no squeeze-excitation,
  ReLU6 instead of swish, stem (32) and head (1280) not scaled, first and last stage repeats
  not scaled, so that int8 post-training quantization loses little accuracy.

B0-B7 keep keras.applications.EfficientNetB* layer names and weight shapes, including the
in-model Rescaling(1/255) and Normalization layers (inputs are 0..255 pixels). Lite models
take inputs already normalised to [-1, 1] (no preprocessing layers inside), the usual
TFLite-friendly convention.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
from keras import layers

from .heads import bn_kwargs, dense_head, model_input
from .registry import BuildOptions
from .scaling import correct_pad, round_filters, round_repeats


class MBConv(NamedTuple):
    """One stage of mobile inverted bottlenecks (Table 1 of the EfficientNet paper)."""

    expand: int
    kernel: int
    filters_out: int
    repeats: int
    stride: int
    se_ratio: float


B0_STEM = 32
B0_HEAD = 1280
B0_STAGES = (MBConv(1, 3, 16, 1, 1, 0.25), MBConv(6, 3, 24, 2, 2, 0.25),
             MBConv(6, 5, 40, 2, 2, 0.25), MBConv(6, 3, 80, 3, 2, 0.25),
             MBConv(6, 5, 112, 3, 1, 0.25), MBConv(6, 5, 192, 4, 2, 0.25),
             MBConv(6, 3, 320, 1, 1, 0.25))

# Compound-scaling coefficients (width, depth, resolution, dropout).
B_VARIANTS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
              3: (1.2, 1.4, 300, 0.3), 4: (1.4, 1.8, 380, 0.4), 5: (1.6, 2.2, 456, 0.4),
              6: (1.8, 2.6, 528, 0.5), 7: (2.0, 3.1, 600, 0.5)}
LITE_VARIANTS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3),
                 3: (1.2, 1.4, 280, 0.3), 4: (1.4, 1.8, 300, 0.3)}

# keras.applications' initialisers (He-style fan-out for convs, uniform for the classifier).
CONV_INIT = {"class_name": "VarianceScaling",
             "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}


class Scaling(NamedTuple):
    width: float
    depth: float
    lite: bool

    def stem(self) -> int:
        return B0_STEM if self.lite else round_filters(B0_STEM, self.width)

    def head(self) -> int:
        return B0_HEAD if self.lite else round_filters(B0_HEAD, self.width)

    def repeats(self, stage_index: int, repeats: int) -> int:
        if self.lite and stage_index in (0, len(B0_STAGES) - 1):
            return repeats
        return round_repeats(repeats, self.depth)


def stage_plan(scaling: Scaling) -> list[tuple[int, MBConv, int, int]]:
    """(stage index, row, filters_in, filters_out) per block after scaling, strides per block."""
    plan = []
    filters_in = scaling.stem()
    for i, row in enumerate(B0_STAGES):
        filters_out = round_filters(row.filters_out, scaling.width)
        for j in range(scaling.repeats(i, row.repeats)):
            stride = row.stride if j == 0 else 1
            plan.append((i, row._replace(stride=stride), filters_in, filters_out))
            filters_in = filters_out
    return plan


def _se(x, filters_in: int, filters: int, ratio: float, act: str, name: str):
    se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
    se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
    se = layers.Conv2D(max(1, int(filters_in * ratio)), 1, padding="same", activation=act,
                       kernel_initializer=CONV_INIT, name=f"{name}se_reduce")(se)
    se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid",
                       kernel_initializer=CONV_INIT, name=f"{name}se_expand")(se)
    return layers.Multiply(name=f"{name}se_excite")([x, se])


def _block(x, row: MBConv, filters_in: int, filters_out: int, act: str, drop_rate: float,
           name: str, opts: BuildOptions):
    bn = bn_kwargs(opts, momentum=0.99)
    inputs = x
    filters = filters_in * row.expand
    if row.expand != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False,
                          kernel_initializer=CONV_INIT, name=f"{name}expand_conv")(x)
        x = layers.BatchNormalization(name=f"{name}expand_bn", **bn)(x)
        x = layers.Activation(act, name=f"{name}expand_activation")(x)
    if row.stride == 2:
        x = layers.ZeroPadding2D(correct_pad(x.shape[1:3], row.kernel), name=f"{name}dwconv_pad")(x)
    x = layers.DepthwiseConv2D(row.kernel, strides=row.stride,
                               padding="valid" if row.stride == 2 else "same", use_bias=False,
                               depthwise_initializer=CONV_INIT, name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(name=f"{name}bn", **bn)(x)
    x = layers.Activation(act, name=f"{name}activation")(x)
    if 0 < row.se_ratio <= 1:
        x = _se(x, filters_in, filters, row.se_ratio, act, name)
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_INIT, name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(name=f"{name}project_bn", **bn)(x)
    if row.stride == 1 and filters_in == filters_out:
        if drop_rate > 0:  # drop-connect (stochastic depth) on the residual branch
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.Add(name=f"{name}add")([x, inputs])
    return x


def build_efficientnet(opts: BuildOptions, width: float = 1.0, depth: float = 1.0,
                       dropout: float = 0.2, drop_connect: float = 0.2,
                       lite: bool = False) -> keras.Model:
    scaling = Scaling(float(width), float(depth), bool(lite))
    act = "relu6" if lite else "swish"
    bn = bn_kwargs(opts, momentum=0.99)
    inputs = model_input(opts)
    x = inputs
    if not lite:
        x = layers.Rescaling(1.0 / 255.0, name="rescaling")(x)
        x = layers.Normalization(axis=-1, name="normalization")(x)
    x = layers.ZeroPadding2D(correct_pad(x.shape[1:3], 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(scaling.stem(), 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=CONV_INIT, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn", **bn)(x)
    x = layers.Activation(act, name="stem_activation")(x)
    plan = stage_plan(scaling)
    counts: dict[int, int] = {}
    for b, (stage, row, f_in, f_out) in enumerate(plan):
        j = counts.get(stage, 0)
        counts[stage] = j + 1
        row = row if not lite else row._replace(se_ratio=0.0)
        x = _block(x, row, f_in, f_out, act, drop_connect * b / len(plan),
                   f"block{stage + 1}{_letters(j)}_", opts)
    x = layers.Conv2D(scaling.head(), 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_INIT, name="top_conv")(x)
    x = layers.BatchNormalization(name="top_bn", **bn)(x)
    x = layers.Activation(act, name="top_activation")(x)
    x = dense_head(x, opts, dropout=dropout, kernel_initializer=DENSE_INIT)
    return keras.Model(inputs, x, name=opts.name.replace("_", "") or "efficientnet")


def _letters(j: int) -> str:
    """Block letters as keras.applications: a, b, ..., z, then aa, ab, ... for deep variants."""
    if j < 26:
        return chr(97 + j)
    return _letters(j // 26 - 1) + chr(97 + j % 26)


def compound_coefficients(phi: float, alpha: float = 1.2, beta: float = 1.1,
                          gamma: float = 1.15, base_resolution: int = 224) -> tuple[float, float, int]:
    """(width, depth, resolution) for a compound coefficient phi (paper eq. 3)."""
    return (beta ** phi, alpha ** phi, int(math.ceil(base_resolution * gamma ** phi)))


def plan_counts(width: float = 1.0, depth: float = 1.0, lite: bool = False, size: int = 224,
                num_classes: int = 1000, channels: int = 3) -> tuple[int, int]:
    """(MACs, parameters) of ``build_efficientnet`` with the top, from :func:`stage_plan` alone.

    Why a count without a build: Keras spends about a second creating the layers of one
    EfficientNet, and ``edgekit scale`` counts a grid of twenty of them. The figures follow
    :mod:`.counting`'s conventions and equal ``count_model`` of the built model exactly
    (tests/test_scale.py checks B and Lite at even and odd sizes); ``count_model`` stays the
    reference. Parameters: convolutions without bias except the SE pair, 4 per BatchNorm
    channel, 7 for B's input Normalization, the dense classifier. Every stride-2 step
    (``correct_pad`` before a valid convolution) gives ceil(n / 2).
    """
    scaling = Scaling(float(width), float(depth), bool(lite))
    n = -(-int(size) // 2)
    stem = scaling.stem()
    macs = 9 * channels * stem * n * n
    params = 9 * channels * stem + 4 * stem + (0 if lite else 2 * channels + 1)
    for _, row, f_in, f_out in stage_plan(scaling):
        filters = f_in * row.expand
        if row.expand != 1:
            macs += f_in * filters * n * n
            params += f_in * filters + 4 * filters
        n = -(-n // 2) if row.stride == 2 else n
        macs += row.kernel * row.kernel * filters * n * n
        params += row.kernel * row.kernel * filters + 4 * filters
        if not lite and 0 < row.se_ratio <= 1:
            se = max(1, int(f_in * row.se_ratio))
            macs += 2 * filters * se
            params += 2 * filters * se + se + filters
        macs += filters * f_out * n * n
        params += filters * f_out + 4 * f_out
    head = scaling.head()
    f_last = round_filters(B0_STAGES[-1].filters_out, scaling.width)
    macs += f_last * head * n * n + head * num_classes
    params += f_last * head + 4 * head + head * num_classes + num_classes
    return int(macs), int(params)
