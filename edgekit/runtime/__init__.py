"""edgekit's on-device runtime: load a .tflite/.onnx/.ort file, prepare images, run, classify.

Imports numpy and an inference backend only (LiteRT, tflite_runtime or tf.lite for .tflite;
onnxruntime for .onnx and ORT format .ort), never TensorFlow at import time, Keras or other edgekit layers, so that
it runs on a device with nothing else installed.
"""

from .backends import QuantParams, TensorInfo
from .engines import EngineSettings, GraphOptimization, Spinning
from .errors import RuntimeModelError
from .metadata import read_metadata, write_metadata, write_onnx_metadata, write_ort_metadata, write_tflite_metadata
from .model import Model, load_image
from .preprocess import preprocess
from .spec import METADATA_KEY, ModelMetadata, PreprocessSpec
from .std_metadata import StandardMetadata, read_standard_metadata

__all__ = [
    "EngineSettings",
    "GraphOptimization",
    "METADATA_KEY",
    "Model",
    "ModelMetadata",
    "PreprocessSpec",
    "QuantParams",
    "RuntimeModelError",
    "Spinning",
    "StandardMetadata",
    "TensorInfo",
    "load_image",
    "preprocess",
    "read_metadata",
    "read_standard_metadata",
    "write_metadata",
    "write_onnx_metadata",
    "write_ort_metadata",
    "write_tflite_metadata",
]
