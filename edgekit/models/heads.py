"""Pieces every family shares: the input, a classifier head and feature pooling."""

from __future__ import annotations

import keras
from keras import layers

from .registry import BuildOptions


def model_input(opts: BuildOptions) -> keras.KerasTensor:
    return keras.Input(shape=opts.input_shape, name="input_layer")


def check_channels(name: str, **channels: int) -> None:
    """Refuse a width multiplier so small that a layer would have no channels."""
    for label, value in channels.items():
        if value < 1:
            raise ValueError(f"{name}: {label} rounds to {value} channels; increase alpha/width")


def pool_features(x: keras.KerasTensor, opts: BuildOptions) -> keras.KerasTensor:
    """include_top=False: optional global pooling, names as keras.applications."""
    if opts.pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if opts.pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def dense_head(x: keras.KerasTensor, opts: BuildOptions, dropout: float,
               kernel_initializer: str | dict = "glorot_uniform") -> keras.KerasTensor:
    """GAP -> (dropout) -> Dense 'predictions', the head of MobileNetV2 and EfficientNet."""
    if not opts.include_top:
        return pool_features(x, opts)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    rate = dropout if opts.dropout is None else opts.dropout
    if rate > 0:
        x = layers.Dropout(rate, name="top_dropout")(x)
    return layers.Dense(opts.num_classes, activation=opts.classifier_activation,
                        kernel_initializer=kernel_initializer, name="predictions")(x)


def bn_kwargs(opts: BuildOptions, momentum: float, epsilon: float = 1e-3) -> dict:
    return {"axis": -1, "epsilon": epsilon,
            "momentum": momentum if opts.bn_momentum is None else opts.bn_momentum}
