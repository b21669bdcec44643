"""Quantization-aware training in plain Keras 3 (``keras.ops``): fake-quantized twins of zoo
models that match what the TFLite converter and onnxruntime's quantizer do, and ``qat``, which
fine-tunes a trained run with them (``edgekit qat``). Uses edgekit.models, edgekit.data and
edgekit.train."""

from .run import QatConfig, qat

__all__ = ["QatConfig", "qat"]
