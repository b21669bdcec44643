"""edgekit's quantize-and-export layer: a Keras model to .tflite (fp32, fp16, dynamic-range,
full-integer int8), .onnx (fp32, static int8) and .ort (the same ONNX graphs in ONNX Runtime
Mobile's ORT format) files that carry edgekit metadata and are validated against the Keras
model through ``edgekit.runtime`` after they are written.

Uses TensorFlow's TFLite converter and QuantizationDebugger, tf2onnx and onnxruntime's
quantization; calibration data comes from ``edgekit.data``.
"""

from .budget import DEFAULT_MAX_DROP_PP, DEFAULT_MIN_AGREEMENT
from .cpu import OnnxQuantChoice, default_onnx_quant
from .errors import ConverterError
from .exporter import ExportReport, export_model
from .inputs import InputColor, InputForm, IoType, embedding_model
from .options import (
    ActivationType,
    CalibrationMethod,
    ExportOptions,
    Format,
    OnnxQuantFormat,
    Precision,
    parse_choice,
    parse_choices,
)
from .targets import TARGETS, UNSUPPORTED, Target, get_target, select_targets
from .writer import ExportError, FileResult

__all__ = [
    "DEFAULT_MAX_DROP_PP", "DEFAULT_MIN_AGREEMENT", "ActivationType", "CalibrationMethod", "ConverterError", "ExportError",
    "ExportOptions", "ExportReport", "FileResult",
    "Format", "InputColor", "InputForm", "IoType", "OnnxQuantChoice", "OnnxQuantFormat", "Precision", "TARGETS", "Target", "UNSUPPORTED",
    "default_onnx_quant", "embedding_model", "export_model", "get_target", "parse_choice", "parse_choices", "select_targets",
]
