"""Writing the standard TFLite Model Metadata into exported .tflite files.

Format: TFLite Model Metadata (tensorflow/tflite-support ``metadata_schema.fbs``, schema 1.5,
file identifier ``M001``), stored as TFLite Support's ``MetadataPopulator`` stores it: a
``Model.metadata`` entry named ``TFLITE_METADATA`` pointing at a buffer that holds the
``ModelMetadata`` flatbuffer, and the associated files (here ``labels.txt``) appended to the
model file as an uncompressed zip archive. MediaPipe Tasks (``ImageClassifier``,
``ImageEmbedder``), the LiteRT Task/Support libraries and Android Studio ML Model Binding read
it; MediaPipe refuses a float input without NormalizationOptions.

Everything written is derived from edgekit's :class:`ModelMetadata` and the file's own tensors;
edgekit's private ``edgekit`` entry stays (it also says the resize method, layout and
quantization notes that the standard cannot). The flatbuffer classes come from the generated
``metadata_schema_py_generated.py`` that the ``mediapipe`` package ships, loaded by file path:
importing ``mediapipe`` itself is slow and its ``metadata_writers`` fail to import in 1.2.3.
Export side only: the runtime reads the entry with :mod:`edgekit.runtime.std_metadata`.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from edgekit.runtime import Model, ModelMetadata
from edgekit.runtime.backends import TensorInfo
from edgekit.runtime.metadata import write_tflite_entry
from edgekit.runtime.std_metadata import METADATA_IDENTIFIER, METADATA_NAME

from .writer import ExportError

LABELS_FILE = "labels.txt"
# The fields written here all exist since schema 1.0.0 (metadata_schema.fbs history), which is
# what MetadataPopulator's GetMinimumMetadataParserVersion computes for them.
MIN_PARSER_VERSION = "1.0.0"
_PIXEL_MIN, _PIXEL_MAX = 0.0, 255.0
_SCHEMA_FILE = ("tasks", "metadata", "metadata_schema_py_generated.py")


@lru_cache(maxsize=1)
def metadata_schema():
    """The generated metadata_schema module shipped with mediapipe, loaded without importing mediapipe."""
    found = importlib.util.find_spec("mediapipe")  # locates the package; does not run its __init__
    locations = list(found.submodule_search_locations or []) if found is not None else []
    for folder in locations:
        path = Path(folder, *_SCHEMA_FILE)
        if path.is_file():
            spec = importlib.util.spec_from_file_location("edgekit_tflite_metadata_schema", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    where = f"; looked in {', '.join(locations)}" if locations else ""
    raise ExportError("writing TFLite Model Metadata needs the 'mediapipe' package (for metadata_schema.fbs), "
                      f"which is not installed{where}; pip install 'edgekit[train]'")


def write_standard_metadata(path: str | os.PathLike, meta: ModelMetadata, *, embedding: bool = False) -> None:
    """Add (or replace) the TFLITE_METADATA entry of the .tflite file at ``path``; atomic.

    ``embedding``: the output is a feature vector (ImageEmbedder) rather than class scores
    (ImageClassifier, with ``meta.class_names`` packed as ``labels.txt``). Raises ValueError when
    the class names do not match the output size or cannot be one per line, when the file's
    input is not the NHWC image ``meta.preprocess`` describes, or when the file does not have
    exactly one input and one output.
    """
    if not isinstance(meta, ModelMetadata):
        raise TypeError(f"meta got {type(meta).__name__}; expected edgekit.runtime.ModelMetadata")
    model = Model(path)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"{str(path)!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "TFLite Model Metadata for an image model needs one of each")
    schema = metadata_schema()
    labels = () if embedding else _check_labels(meta.class_names, model.outputs[0])
    root = schema.ModelMetadataT()
    root.name = meta.architecture or "edgekit model"
    kind = "image embedder" if embedding else f"image classifier ({len(labels)} classes)"
    root.description = (f"{meta.architecture or 'CNN'} {kind}, {meta.precision or 'unknown'} precision, "
                        f"made by edgekit {meta.edgekit_version}".rstrip())
    root.version = meta.edgekit_version
    root.author = "edgekit"
    root.minParserVersion = MIN_PARSER_VERSION
    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [_input_metadata(schema, meta, model.inputs[0])]
    subgraph.outputTensorMetadata = [_output_metadata(schema, model.outputs[0], labels, embedding)]
    root.subgraphMetadata = [subgraph]
    files = {LABELS_FILE: ("\n".join(labels) + "\n").encode("utf-8") if labels else None}
    write_tflite_entry(path, METADATA_NAME, pack(schema, root), files)


def pack(schema, root) -> bytes:
    """A ModelMetadataT as its flatbuffer, with the M001 file identifier."""
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(root.Pack(builder), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _check_labels(names: tuple[str, ...], output: TensorInfo) -> tuple[str, ...]:
    """The class names, if any, checked against the output size; () means no labels file."""
    size = output.shape[-1] if output.shape else None
    if names and size is not None and len(names) != size:
        raise ValueError(f"class_names has {len(names)} names but output {output.name!r} has {size} scores "
                         f"(shape {list(output.shape)})")
    for name in names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"class name {name!r} contains a line break; labels.txt holds one name per line")
    return tuple(names)


def _input_metadata(schema, meta: ModelMetadata, info: TensorInfo):
    spec = meta.preprocess
    shape = info.shape
    expected = (spec.size[0], spec.size[1], spec.channels)
    if len(shape) != 4 or tuple(shape[1:]) != expected:
        raise ValueError(f"input {info.name!r} has shape {list(shape)}; TFLite Model Metadata describes an NHWC "
                         f"image and the preprocess spec says (batch, {', '.join(map(str, expected))})")
    channels = spec.channels
    mean = _per_channel(spec.mean, channels)
    std = _per_channel(spec.std, channels)
    tensor = schema.TensorMetadataT()
    tensor.name = "image"
    tensor.description = (f"{spec.size[1]}x{spec.size[0]} {'RGB' if channels == 3 else 'grayscale'} image, "
                          f"resized {spec.resize}, x = (pixel - mean) / std")
    image = schema.ImagePropertiesT()
    image.colorSpace = schema.ColorSpaceType.RGB if channels == 3 else schema.ColorSpaceType.GRAYSCALE
    tensor.content = _content(schema, schema.ContentProperties.ImageProperties, image)
    # NormalizationOptions for every input: required for a float one; on a quantized one it
    # records the float domain (as TFLite Support's writer does) and readers feed raw uint8 pixels.
    unit = schema.ProcessUnitT()
    unit.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    unit.options = schema.NormalizationOptionsT()
    unit.options.mean, unit.options.std = list(mean), list(std)
    tensor.processUnits = [unit]
    if info.dtype.kind == "f":
        low = [(_PIXEL_MIN - m) / s for m, s in zip(mean, std)]
        high = [(_PIXEL_MAX - m) / s for m, s in zip(mean, std)]
    else:  # the raw pixel range the quantized input takes, as the Support writers record it
        low, high = _dtype_range(info)
    tensor.stats = _stats(schema, low, high)
    return tensor


def _output_metadata(schema, info: TensorInfo, labels: tuple[str, ...], embedding: bool):
    tensor = schema.TensorMetadataT()
    size = info.shape[-1] if info.shape else None
    tensor.content = _content(schema, schema.ContentProperties.FeatureProperties, schema.FeaturePropertiesT())
    if embedding:
        tensor.name = "embedding"
        tensor.description = f"Image embedding, a feature vector of {size} values."
        return tensor
    tensor.name = "probability"
    tensor.description = f"Probabilities of the {size} classes."
    tensor.stats = _stats(schema, *(([0.0], [1.0]) if info.dtype.kind == "f" else _dtype_range(info)))
    if labels:
        labels_file = schema.AssociatedFileT()
        labels_file.name = LABELS_FILE
        labels_file.description = "Labels for categories that the model can recognize."
        labels_file.type = schema.AssociatedFileType.TENSOR_AXIS_LABELS
        tensor.associatedFiles = [labels_file]
    return tensor


def _content(schema, kind: int, properties):
    content = schema.ContentT()
    content.contentPropertiesType = kind
    content.contentProperties = properties
    return content


def _stats(schema, low: list[float], high: list[float]):
    stats = schema.StatsT()
    stats.min, stats.max = list(low), list(high)
    return stats


def _dtype_range(info: TensorInfo) -> tuple[list[float], list[float]]:
    import numpy as np

    limits = np.iinfo(info.dtype)
    return [float(limits.min)], [float(limits.max)]


def _per_channel(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    return values * channels if len(values) == 1 else values
