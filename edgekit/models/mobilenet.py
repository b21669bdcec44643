"""MobileNet v1 and v2 as block tables walked by one builder each.

- MobileNet v1: Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for
  Mobile Vision Applications" (arXiv:1704.04861), Table 1. Depthwise-separable blocks
  (dw3x3-BN-ReLU6, pw1x1-BN-ReLU6); width multiplier alpha uses int(c * alpha) with no
  divisible-by-8 rounding, like keras.applications.MobileNet.
- MobileNet v2: Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
  (arXiv:1801.04381), Table 2: the (t, c, n, s) rows below. Channel rounding by
  ``make_divisible``; the 1280-channel head is only scaled for alpha > 1.

Layer names and weight shapes equal keras.applications' own, so its weight files load.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
from keras import layers

from .heads import bn_kwargs, check_channels, dense_head, model_input, pool_features
from .registry import BuildOptions
from .scaling import correct_pad, make_divisible


class DwStage(NamedTuple):
    """MobileNet v1: ``repeats`` depthwise-separable blocks, the first with ``stride``."""

    filters: int
    repeats: int
    stride: int


class Bottleneck(NamedTuple):
    """MobileNet v2 (t, c, n, s): expansion, output channels, repeats, first stride."""

    t: int
    c: int
    n: int
    s: int


V1_STEM = 32
V1_STAGES = (DwStage(64, 1, 1), DwStage(128, 2, 2), DwStage(256, 2, 2),
             DwStage(512, 6, 2), DwStage(1024, 2, 2))

V2_STEM = 32
V2_HEAD = 1280
V2_BLOCKS = (Bottleneck(1, 16, 1, 1), Bottleneck(6, 24, 2, 2), Bottleneck(6, 32, 3, 2),
             Bottleneck(6, 64, 4, 2), Bottleneck(6, 96, 3, 1), Bottleneck(6, 160, 3, 2),
             Bottleneck(6, 320, 1, 1))


def _v1_block(x, filters: int, stride: int, block_id: int, depth_multiplier: int,
              opts: BuildOptions):
    bn = bn_kwargs(opts, momentum=0.99)
    if stride == 2:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid",
                               depth_multiplier=depth_multiplier, use_bias=False,
                               name=f"conv_dw_{block_id}")(x)
    x = layers.BatchNormalization(name=f"conv_dw_{block_id}_bn", **bn)(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(name=f"conv_pw_{block_id}_bn", **bn)(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


def build_mobilenet_v1(opts: BuildOptions, alpha: float = 1.0,
                       depth_multiplier: int = 1) -> keras.Model:
    if int(depth_multiplier) != depth_multiplier:
        raise ValueError(f"depth_multiplier got {depth_multiplier!r}; expected an integer >= 1")
    depth_multiplier = int(depth_multiplier)
    check_channels(opts.name, stem=int(V1_STEM * alpha), stage1=int(V1_STAGES[0].filters * alpha))
    bn = bn_kwargs(opts, momentum=0.99)
    inputs = model_input(opts)
    x = layers.Conv2D(int(V1_STEM * alpha), 3, strides=2, padding="same", use_bias=False,
                      name="conv1")(inputs)
    x = layers.BatchNormalization(name="conv1_bn", **bn)(x)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    block_id = 1
    for stage in V1_STAGES:
        for i in range(stage.repeats):
            x = _v1_block(x, int(stage.filters * alpha), stage.stride if i == 0 else 1,
                          block_id, depth_multiplier, opts)
            block_id += 1
    if opts.include_top:
        # keras.applications' head: a 1x1 conv on the pooled map, then reshape.
        x = layers.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
        x = layers.Dropout(1e-3 if opts.dropout is None else opts.dropout, name="dropout")(x)
        x = layers.Conv2D(opts.num_classes, 1, padding="same", name="conv_preds")(x)
        x = layers.Reshape((opts.num_classes,), name="reshape_2")(x)
        x = layers.Activation(opts.classifier_activation, name="predictions")(x)
    else:
        x = pool_features(x, opts)
    return keras.Model(inputs, x, name=f"mobilenet_{alpha:0.2f}_{opts.input_shape[0]}")


def _v2_block(x, t: int, filters: int, stride: int, block_id: int, opts: BuildOptions):
    bn = bn_kwargs(opts, momentum=0.999)
    in_channels = x.shape[-1]
    inputs = x
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = layers.Conv2D(t * in_channels, 1, padding="same", use_bias=False,
                          name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(name=f"{prefix}expand_BN", **bn)(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    if stride == 2:
        x = layers.ZeroPadding2D(correct_pad(x.shape[1:3], 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(name=f"{prefix}depthwise_BN", **bn)(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(name=f"{prefix}project_BN", **bn)(x)
    if in_channels == filters and stride == 1:
        x = layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def build_mobilenet_v2(opts: BuildOptions, alpha: float = 1.0, expansion: int = 6) -> keras.Model:
    if int(expansion) != expansion:
        raise ValueError(f"expansion got {expansion!r}; expected an integer >= 1")
    bn = bn_kwargs(opts, momentum=0.999)
    inputs = model_input(opts)
    x = layers.Conv2D(make_divisible(V2_STEM * alpha), 3, strides=2, padding="same",
                      use_bias=False, name="Conv1")(inputs)
    x = layers.BatchNormalization(name="bn_Conv1", **bn)(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    block_id = 0
    for row in V2_BLOCKS:
        t = row.t if row.t == 1 else int(expansion)
        filters = make_divisible(int(row.c * alpha))
        for i in range(row.n):
            x = _v2_block(x, t, filters, row.s if i == 0 else 1, block_id, opts)
            block_id += 1
    head = make_divisible(V2_HEAD * alpha) if alpha > 1.0 else V2_HEAD
    x = layers.Conv2D(head, 1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(name="Conv_1_bn", **bn)(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    x = dense_head(x, opts, dropout=0.0)
    return keras.Model(inputs, x, name=f"mobilenetv2_{alpha:0.2f}_{opts.input_shape[0]}")


def _ceil_half(n: int) -> int:
    return -(-n // 2)


def plan_counts_v1(alpha: float = 1.0, depth_multiplier: int = 1, size: int = 224, num_classes: int = 1000,
                   channels: int = 3) -> tuple[int, int]:
    """(MACs, parameters) of ``build_mobilenet_v1`` with the top, from the stage table alone
    (``edgekit scale`` counts grids of them; building one costs Keras about half a second).
    Equal to ``count_model`` of the built model (tests/test_scale.py); that stays the reference.
    Its stride-2 blocks pad one row and column after, then a valid 3x3: floor(n / 2)."""
    stem = int(V1_STEM * alpha)
    n = _ceil_half(int(size))  # conv1: "same", stride 2
    macs, params = 9 * channels * stem * n * n, 9 * channels * stem + 4 * stem
    c_in = stem
    for stage in V1_STAGES:
        filters = int(stage.filters * alpha)
        for i in range(stage.repeats):
            n = n // 2 if stage.stride == 2 and i == 0 else n
            dw = c_in * depth_multiplier
            macs += 9 * dw * n * n + dw * filters * n * n
            params += 9 * dw + 4 * dw + dw * filters + 4 * filters
            c_in = filters
    return int(macs + c_in * num_classes), int(params + c_in * num_classes + num_classes)


def plan_counts_v2(alpha: float = 1.0, expansion: int = 6, size: int = 224, num_classes: int = 1000,
                   channels: int = 3) -> tuple[int, int]:
    """(MACs, parameters) of ``build_mobilenet_v2`` with the top, from the (t, c, n, s) table
    alone, as :func:`plan_counts_v1`; stride-2 steps (``correct_pad``) give ceil(n / 2)."""
    stem = make_divisible(V2_STEM * alpha)
    n = _ceil_half(int(size))
    macs, params = 9 * channels * stem * n * n, 9 * channels * stem + 4 * stem
    c_in, block_id = stem, 0
    for row in V2_BLOCKS:
        t = row.t if row.t == 1 else int(expansion)
        filters = make_divisible(int(row.c * alpha))
        for i in range(row.n):
            hidden = t * c_in if block_id else c_in
            if block_id:
                macs += c_in * hidden * n * n
                params += c_in * hidden + 4 * hidden
            n = _ceil_half(n) if row.s == 2 and i == 0 else n
            macs += 9 * hidden * n * n + hidden * filters * n * n
            params += 9 * hidden + 4 * hidden + hidden * filters + 4 * filters
            c_in, block_id = filters, block_id + 1
    head = make_divisible(V2_HEAD * alpha) if alpha > 1.0 else V2_HEAD
    macs += c_in * head * n * n + head * num_classes
    params += c_in * head + 4 * head + head * num_classes + num_classes
    return int(macs), int(params)
