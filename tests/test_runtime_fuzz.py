"""Fuzzing the pure-Python file readers: malformed bytes raise ValueError, nothing else."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.runtime import METADATA_KEY, ModelMetadata, PreprocessSpec, RuntimeModelError  # noqa: E402
from edgekit.runtime.files import open_model_file  # noqa: E402
from edgekit.runtime.flatbuf import TfliteLayout, parse_tflite  # noqa: E402
from edgekit.runtime.metadata import write_metadata  # noqa: E402
from edgekit.runtime.onnxproto import OnnxLayout, parse_onnx  # noqa: E402

_QUIET = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
FUZZ = settings(max_examples=150, **_QUIET)




@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, bytes]:
    """A small .tflite and .onnx, both with edgekit metadata."""
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), name="image")
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inp)))
    model = keras.Model(inp, out)
    folder = tmp_path_factory.mktemp("fuzz")
    tflite, onnx_path = folder / "m.tflite", folder / "m.onnx"
    tflite.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    spec = (tf.TensorSpec((None, 8, 8, 3), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=str(onnx_path))
    meta = ModelMetadata(PreprocessSpec((8, 8)), class_names=("a", "b"))
    write_metadata(tflite, meta)
    write_metadata(onnx_path, meta)
    return {"tflite": tflite.read_bytes(), "onnx": onnx_path.read_bytes()}


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for position, value in edits:
        buf[position % len(buf)] = value
    return bytes(buf if cut is None else buf[: cut % (len(buf) + 1)])


_edits = st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), max_size=8)
_cut = st.none() | st.integers(0, 2**31)


def _parses_or_value_error(parse, data: bytes):
    try:
        return parse(data)
    except ValueError:
        return None


def test_valid_files_parse(valid):
    layout = parse_tflite(valid["tflite"])
    assert METADATA_KEY in layout.metadata and layout.subgraphs == 1
    assert ModelMetadata.from_json(layout.metadata_bytes(valid["tflite"], METADATA_KEY)).class_names == ("a", "b")
    assert parse_onnx(valid["onnx"]).has_graph
    assert METADATA_KEY in parse_onnx(valid["onnx"]).metadata_props


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes(data):
    for candidate in (data, data[:4] + b"TFL3" + data[8:]):
        assert isinstance(_parses_or_value_error(parse_tflite, candidate), (TfliteLayout, type(None)))
    assert isinstance(_parses_or_value_error(parse_onnx, data), (OnnxLayout, type(None)))


@FUZZ
@given(edits=_edits, cut=_cut)
def test_mutated_tflite(valid, edits, cut):
    _parses_or_value_error(parse_tflite, _mutate(valid["tflite"], edits, cut))


@FUZZ
@given(edits=_edits, cut=_cut)
def test_mutated_onnx(valid, edits, cut):
    _parses_or_value_error(parse_onnx, _mutate(valid["onnx"], edits, cut))


@settings(max_examples=40, **_QUIET)
@given(edits=_edits, cut=_cut, suffix=st.sampled_from([".tflite", ".onnx"]))
def test_mutated_files_give_runtime_model_error_or_metadata(valid, tmp_path, edits, cut, suffix):
    path = tmp_path / ("m" + suffix)
    path.write_bytes(_mutate(valid[suffix[1:]], edits, cut))
    try:
        open_model_file(path)
    except RuntimeModelError:
        pass


def test_deeply_bogus_offsets_are_bounded():
    # A hand-made Model table holding only a version field, then the same bytes cut short.
    data = bytearray(64)
    data[4:8] = b"TFL3"
    data[0:4] = (8).to_bytes(4, "little")
    data[8:12] = (np.int32(-4)).tobytes()  # vtable at 12
    data[12:14] = (8).to_bytes(2, "little")
    data[14:16] = (8).to_bytes(2, "little")
    data[16:18] = (4).to_bytes(2, "little")  # version field at table + 4
    with pytest.raises(ValueError):
        parse_tflite(bytes(data[:10]))
    parse_tflite(bytes(data))  # a table with a version only: valid, no buffers
