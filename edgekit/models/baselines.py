"""Classic baselines for comparison.

- LeNet-5: LeCun et al. 1998, "Gradient-Based Learning Applied to Document Recognition"
  (C1 6@5x5, S2, C3 16@5x5, S4, C5 120@5x5, F6 84, output); tanh, average pooling; 32x32x1.
  61,706 parameters for 10 classes.
- AlexNet: Krizhevsky et al. 2012, "ImageNet Classification with Deep Convolutional Neural
  Networks", as one tower (no grouped convolutions, no LRN: Keras has no LRN layer and later
  work found it adds little); 227x227x3, 62,378,344 parameters for 1000 classes.
- VGG-16 (Simonyan & Zisserman 2014), ResNet-50 (He et al. 2015), Inception v3 (Szegedy et
  al. 2015): keras.applications' own builders with ``weights=None``.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
from keras import layers

from .registry import BuildOptions
from .heads import model_input


class ConvRow(NamedTuple):
    """A convolution (optionally followed by a pooling window) of a plain feed-forward net."""

    name: str
    filters: int
    kernel: int
    stride: int = 1
    padding: str = "valid"
    pool: int = 0  # pooling window (0: none)
    pool_stride: int = 2


LENET5_CONVS = (ConvRow("c1", 6, 5, pool=2), ConvRow("c3", 16, 5, pool=2), ConvRow("c5", 120, 5))
LENET5_DENSE = (("f6", 84),)
ALEXNET_CONVS = (ConvRow("conv1", 96, 11, 4, pool=3), ConvRow("conv2", 256, 5, padding="same", pool=3),
                 ConvRow("conv3", 384, 3, padding="same"), ConvRow("conv4", 384, 3, padding="same"),
                 ConvRow("conv5", 256, 3, padding="same", pool=3))
ALEXNET_DENSE = (("fc6", 4096), ("fc7", 4096))


def _plain_net(opts: BuildOptions, convs, dense, act: str, pool_layer, dropout: float,
               model_name: str) -> keras.Model:
    """Walk a table of conv rows, then dense rows: LeNet-5 and AlexNet."""
    inputs = model_input(opts)
    x = inputs
    for row in convs:
        x = layers.Conv2D(row.filters, row.kernel, strides=row.stride, padding=row.padding,
                          activation=act, name=row.name)(x)
        if row.pool:
            x = pool_layer(row.pool, strides=row.pool_stride, name=f"{row.name}_pool")(x)
    if not opts.include_top:
        from .heads import pool_features
        return keras.Model(inputs, pool_features(x, opts), name=model_name)
    x = layers.Flatten(name="flatten")(x)
    rate = dropout if opts.dropout is None else opts.dropout
    for name, units in dense:
        x = layers.Dense(units, activation=act, name=name)(x)
        if rate > 0:
            x = layers.Dropout(rate, name=f"{name}_dropout")(x)
    x = layers.Dense(opts.num_classes, activation=opts.classifier_activation, name="predictions")(x)
    return keras.Model(inputs, x, name=model_name)


def build_lenet5(opts: BuildOptions) -> keras.Model:
    return _plain_net(opts, LENET5_CONVS, LENET5_DENSE, "tanh", layers.AveragePooling2D, 0.0, "lenet5")


def build_alexnet(opts: BuildOptions) -> keras.Model:
    return _plain_net(opts, ALEXNET_CONVS, ALEXNET_DENSE, "relu", layers.MaxPooling2D, 0.5, "alexnet")


def _keras_app(fn_name: str):
    def build(opts: BuildOptions) -> keras.Model:
        fn = getattr(keras.applications, fn_name)
        return fn(include_top=opts.include_top, weights=None, input_shape=opts.input_shape,
                  pooling=opts.pooling, classes=opts.num_classes,
                  classifier_activation=opts.classifier_activation)
    build.__name__ = f"build_{fn_name.lower()}"
    return build


build_vgg16 = _keras_app("VGG16")
build_resnet50 = _keras_app("ResNet50")
build_inception_v3 = _keras_app("InceptionV3")
