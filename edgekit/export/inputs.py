"""The input a file takes: camera-ready forms chosen per target, built in front of the model.

Phone stacks feed what a camera gives: uint8 RGB frames. MediaPipe Tasks' ImageClassifier takes
uint8 input tensors as raw pixels, float32 ones normalised by the file's NormalizationOptions,
and only 3- or 4-channel images (mediapipe/tasks/cc/vision/utils/image_tensor_specs.cc). So:

- ``--input-color rgb`` (default) gives a model trained on grayscale images an RGB input; the
  conversion to gray is part of the graph, with the luma weights of edgekit's preprocessing
  (``tf.image.rgb_to_grayscale``: 0.2989, 0.5870, 0.1140), so an app feeds RGB frames and the
  file computes what ``edgekit.runtime`` would compute from the same frame;
- ``--io uint8`` (default for int8 TFLite) makes the input tensor the raw pixels 0..255
  (scale 1, zero point 0) and puts the normalisation in the graph too, so a camera frame goes
  in with no float conversion at all; per-channel means and deviations work as well, which a
  single input zero point could not hold.

Both are one 1x1 convolution with fixed weights (``input_adapter``) in front of the trained
model: kernel ``M * a / std`` and bias ``(M b - mean) / std``, where ``M`` is the colour map
(identity, or the luma row for RGB -> gray) and pixels are ``a * x + b`` of the file's input
``x`` (``a = 1, b = 0`` for raw pixels, ``a = std, b = mean`` for normalised input). A 1x1
convolution is a CONV_2D in TFLite (quantized like the body, unlike a Dense layer, which the
float classifier head keeps float) and a Conv in ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from edgekit.runtime.preprocess import GRAY_WEIGHTS
from edgekit.runtime.spec import PreprocessSpec

ADAPTER_NAME = "input_adapter"


class IoType(str, Enum):
    """Input/output tensor types of an int8 TFLite file."""

    AUTO = "auto"  # uint8 for TFLite int8
    UINT8 = "uint8"  # raw pixels in; float scores (float head) or uint8 scores out
    INT8 = "int8"  # int8 in and out, the input quantized from normalised values
    FLOAT = "float"  # float32 in and out, quantize/dequantize ops inside the file


class InputColor(str, Enum):
    RGB = "rgb"  # a grayscale model gets an RGB input with the conversion in the graph
    NATIVE = "native"  # the channels the model was trained on


@dataclass(frozen=True)
class InputForm:
    """What one file's input tensor holds, relative to the trained model's input."""

    native: PreprocessSpec  # how the trained model's input is prepared
    channels: int  # channels of the file's input
    pixels: bool  # raw pixels 0..255 (normalisation in the graph) or normalised values

    @classmethod
    def choose(cls, native: PreprocessSpec, color: InputColor, pixels: bool) -> "InputForm":
        channels = 3 if color is InputColor.RGB else native.channels
        return cls(native, channels, pixels)

    @property
    def key(self) -> str:
        return f"{'pixels' if self.pixels else 'normalised'}/{self.channels}"

    @property
    def converts_color(self) -> bool:
        return self.channels != self.native.channels

    @property
    def needs_adapter(self) -> bool:
        return self.pixels or self.converts_color

    def spec(self) -> PreprocessSpec:
        """The preprocessing of the file's own input, as its metadata states it."""
        mean, std = ((0.0,), (1.0,)) if self.pixels else (self.native.mean, self.native.std)
        return PreprocessSpec(size=self.native.size, channels=self.channels, mean=mean, std=std,
                              resize=self.native.resize)

    def describe(self) -> dict:
        return {"values": "pixels 0..255" if self.pixels else "normalised (x - mean) / std",
                "color": {1: "gray", 3: "rgb"}[self.channels],
                "in_graph": (["rgb to gray (luma 0.2989, 0.5870, 0.1140)"] if self.converts_color else [])
                + (["normalisation"] if self.pixels else []),
                "trained_preprocess": self.native.to_dict()}

    # -- the affine map from the file's input to the trained model's input ---------------------

    def _color_matrix(self) -> np.ndarray:
        """(native channels, file channels): pixels of the model from pixels of the file."""
        if not self.converts_color:
            return np.eye(self.channels, dtype=np.float64)
        if (self.channels, self.native.channels) == (3, 1):
            return GRAY_WEIGHTS.astype(np.float64)[None, :]
        raise ValueError(f"no colour conversion from {self.channels} to {self.native.channels} channels")

    def _native_stats(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.native.channels
        return (np.broadcast_to(np.asarray(self.native.mean, np.float64), (n,)),
                np.broadcast_to(np.asarray(self.native.std, np.float64), (n,)))

    def _file_to_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) per file channel: pixel = a * x + b."""
        if self.pixels:
            return np.ones(self.channels), np.zeros(self.channels)
        mean, std = self.spec().mean, self.spec().std
        return (np.broadcast_to(np.asarray(std, np.float64), (self.channels,)),
                np.broadcast_to(np.asarray(mean, np.float64), (self.channels,)))

    def adapter_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Kernel (1, 1, file channels, native channels) and bias (native channels,), float32."""
        m = self._color_matrix()
        a, b = self._file_to_pixels()
        mean, std = self._native_stats()
        kernel = (m * a[None, :]) / std[:, None]  # (native, file)
        bias = (m @ b - mean) / std
        return kernel.T[None, None].astype(np.float32), bias.astype(np.float32)

    # -- data in the file's form ---------------------------------------------------------------

    def from_native(self, x: np.ndarray) -> np.ndarray:
        """Native-prepared (normalised) inputs N x H x W x C -> the same images in this form.

        A gray image becomes RGB by repeating its channel, as the runtime reads a gray file for
        an RGB input; pixels come back unrounded (the uint8 input rounds them)."""
        mean, std = self._native_stats()
        pixels = x.astype(np.float64) * std + mean
        if self.converts_color:
            pixels = np.repeat(pixels, self.channels // self.native.channels, axis=-1)
        if self.pixels:
            return pixels.astype(np.float32)
        a, b = self._file_to_pixels()
        return ((pixels - b) / a).astype(np.float32)

    def from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Resized, unnormalised pixels of the trained model's channels N x H x W x C -> this
        form's inputs, as ``edgekit.runtime.preprocess`` computes them from the same images (gray
        repeated to RGB, then ``(x - mean) / std`` of this form in float32): bit for bit what
        ``edgekit evaluate FILE`` feeds the file."""
        x = pixels.astype(np.float32, copy=False)
        if self.converts_color:
            x = np.repeat(x, self.channels // self.native.channels, axis=-1)
        spec = self.spec()
        mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
        return ((x - mean) / std).astype(np.float32, copy=False)

    def to_native(self, x: np.ndarray) -> np.ndarray:
        """Inputs in this form -> what the trained model gets for the same images (float32, as
        edgekit's preprocessing computes it: luma of the pixels, then normalised)."""
        a, b = self._file_to_pixels()
        pixels = x.astype(np.float32) * a.astype(np.float32) + b.astype(np.float32)
        if self.converts_color:
            pixels = pixels @ self._color_matrix().T.astype(np.float32)
        mean, std = self._native_stats()
        return ((pixels - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32)

    # -- the Keras graph -----------------------------------------------------------------------

    def wrap(self, model):
        """``model`` behind this form's input adapter (``model`` itself when none is needed)."""
        if not self.needs_adapter:
            return model
        import keras

        h, w = self.native.size
        image = keras.Input(shape=(h, w, self.channels), name="image")
        adapter = keras.layers.Conv2D(self.native.channels, 1, name=ADAPTER_NAME, trainable=False)
        x = adapter(image)
        adapter.set_weights(list(self.adapter_weights()))
        # ``model.call`` re-applies the model's own layers to the adapter's output (a flat graph
        # sharing the trained weights); ``model(x)`` would nest it and prefix every tensor name
        # in the converted file with the wrapper's name (+18 KB on MobileNetV2 0.35).
        return keras.Model(image, model.call(x), name=model.name)


def has_adapter(model) -> bool:
    """Whether ``model`` contains edgekit's input adapter layer (:data:`ADAPTER_NAME`)."""
    return any(layer.name == ADAPTER_NAME for layer in model.layers)


def embedding_model(model):
    """The pooled features of a classifier: ``model`` up to its last global pooling layer.

    A model whose output already is a feature vector (built with ``include_top=False,
    pooling="avg"``) is returned as it is; ValueError when there is no such layer.
    """
    import keras

    pools = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    found = [layer for layer in model.layers if isinstance(layer, pools)]
    if not found:
        raise ValueError(f"--embedding needs a model with a global pooling layer before its classifier; "
                         f"{model.name!r} has none")
    pool = found[-1]
    if pool.output is model.outputs[0] or len(model.outputs[0].shape) == 2 and pool is model.layers[-1]:
        return model
    return keras.Model(model.inputs, pool.output, name=model.name)
