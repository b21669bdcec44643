"""Property tests of the edgekit metadata document and its reader/writer (issue 7, fuzzing).

Format: the JSON document of :mod:`edgekit.runtime.spec`, stored in a TFLite ``metadata`` entry
(schema.fbs) or an ONNX ``metadata_props`` entry (onnx.proto), see :mod:`edgekit.runtime.metadata`.
Properties, for both containers:

- any metadata the constructors accept (unicode class names, lone surrogates included; odd but
  finite normalisation values; input sizes from 1 to MAX_SIDE; quantization parameters and
  other JSON in ``extra``) is read back from the file exactly, and the file still runs;
- any other payload (random text and bytes, random JSON, a valid document with one field
  replaced by a value of another JSON type, absurd nesting or numbers) makes ``read_metadata``
  and ``Model`` raise RuntimeModelError with one short line naming the file, or, where the
  payload happens to be valid, gives metadata that says exactly what the payload says (no
  coercion: no ``"3"`` read as 3, no ``true`` as 1).
"""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.runtime import Model, ModelMetadata, PreprocessSpec, RuntimeModelError, read_metadata  # noqa: E402
from edgekit.runtime import metadata as metadata_io  # noqa: E402
from edgekit.runtime import std_metadata  # noqa: E402
from edgekit.runtime.flatbuf import parse_tflite  # noqa: E402
from edgekit.runtime.spec import LAYOUTS, MAX_SIDE, RESIZE_METHODS  # noqa: E402

_QUIET = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
PURE = settings(max_examples=300, **_QUIET)  # no file: cheap
FILES = settings(max_examples=50, **_QUIET)  # one file write and read per example and format
FORMATS = ["tflite", "onnx"]
SIZE = 8

# -- strategies ------------------------------------------------------------------------------------

_any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
_text = st.text(_any_char, max_size=12)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_json_scalar = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _floats | _text
_json = st.recursive(_json_scalar, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_text, kids, max_size=4),
                     max_leaves=12)
_f32 = float(np.finfo(np.float32).max)
_norm = st.floats(-_f32, _f32, allow_nan=False) | st.sampled_from([0.0, -0.0, 5e-324, 1e-45, 1e38, -3.4e38])
_std = _norm.filter(lambda v: np.float32(v) != 0)
_quant = st.fixed_dictionaries({"name": _text, "dtype": st.sampled_from(["int8", "uint8", "float32"]),
                                "scale": st.none() | _floats, "zero_point": st.none() | st.integers(-(2**31), 2**31)})


@st.composite
def specs(draw) -> PreprocessSpec:
    channels = draw(st.sampled_from([1, 3]))
    side = st.integers(1, MAX_SIDE)

    def values(strategy):  # one value for all channels, or one per channel
        n = draw(st.sampled_from([1, channels]))
        return tuple(draw(st.lists(strategy, min_size=n, max_size=n)))

    return PreprocessSpec(size=(draw(side), draw(side)), channels=channels, mean=values(_norm), std=values(_std),
                          resize=draw(st.sampled_from(RESIZE_METHODS)))


@st.composite
def metadatas(draw) -> ModelMetadata:
    extra = draw(st.dictionaries(_text, _json, max_size=4))
    if draw(st.booleans()):  # what the exporter stores: the tensors' quantization parameters
        tensors = st.lists(_quant, max_size=2)
        extra["quantization"] = {"input": draw(tensors), "output": draw(tensors)}
    return ModelMetadata(preprocess=draw(specs()), class_names=tuple(draw(st.lists(_text, max_size=12))),
                         architecture=draw(_text), layout=draw(st.sampled_from(LAYOUTS)), precision=draw(_text),
                         edgekit_version=draw(_text), extra=extra)


# Each field of a document and the JSON type it must have; a value of any other type is refused.
_FIELD_TYPES = {
    ("schema",): int, ("preprocess",): dict, ("preprocess", "size"): list, ("preprocess", "channels"): int,
    ("preprocess", "mean"): list, ("preprocess", "std"): list, ("preprocess", "resize"): str,
    ("class_names",): list, ("architecture",): str, ("layout",): str, ("precision",): str,
    ("edgekit_version",): str, ("extra",): dict,
}


def _json_type(value) -> type:
    return type(value)  # json gives exactly dict, list, str, int, float, bool or NoneType


# -- files -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> dict:
    """A tiny .tflite and .onnx without metadata, and their outputs on a fixed input."""
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inp)))
    model = keras.Model(inp, out)
    folder = tmp_path_factory.mktemp("metadata_fuzz")
    paths = {"tflite": folder / "plain.tflite", "onnx": folder / "plain.onnx"}
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    spec = (tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=str(paths["onnx"]))
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    return {"paths": paths, "x": x, "y": {fmt: Model(p).predict(x) for fmt, p in paths.items()}}


class _Scratch:
    """A fresh copy of a plain model file per hypothesis example (function-scoped tmp_path is
    shared by all examples of one test)."""

    def __init__(self, folder, plain: dict) -> None:
        self.folder, self.plain, self.count = folder, plain, 0

    def copy(self, fmt: str):
        self.count += 1
        path = self.folder / f"m{self.count}.{fmt}"
        shutil.copy(self.plain["paths"][fmt], path)
        return path


@pytest.fixture
def scratch(tmp_path, plain) -> _Scratch:
    return _Scratch(tmp_path, plain)


def _write_payload(path, fmt: str, payload: str | bytes) -> None:
    if fmt == "tflite":
        metadata_io._write_tflite_payload(path, payload if isinstance(payload, bytes) else payload.encode("utf-8"))
    else:
        metadata_io._write_onnx_payload(path, payload)


# -- round trips -----------------------------------------------------------------------------------


@PURE
@given(meta=metadatas())
def test_json_round_trip_is_exact(meta):
    text = meta.to_json()
    back = ModelMetadata.from_json(text)
    assert back == meta and back.to_json() == text
    assert json.loads(text) == json.loads(text.encode("ascii"))  # plain ASCII: survives any container
    p = back.preprocess
    assert all(type(v) is int for v in (*p.size, p.channels))
    assert all(type(v) is float for v in (*p.mean, *p.std)) and type(back.class_names) is tuple


@pytest.mark.parametrize("fmt", FORMATS)
@FILES
@given(meta=metadatas(), second=metadatas())
def test_file_round_trip_is_exact_and_replaces(scratch, fmt, meta, second):
    path = scratch.copy(fmt)
    metadata_io.write_metadata(path, meta)
    assert read_metadata(path) == meta
    metadata_io.write_metadata(path, second)  # replaces the entry
    assert read_metadata(path) == second
    if fmt == "tflite":
        assert list(parse_tflite(path.read_bytes()).metadata).count("edgekit") == 1


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=5, **_QUIET)
@given(meta=metadatas())
@example(meta=ModelMetadata(PreprocessSpec((MAX_SIDE, 1), channels=1, mean=(-3.4e38,), std=(1e-45,)),
                            class_names=("\ud800", "\u2028", "", "猫"), layout="NCHW",
                            extra={"quantization": {"input": [{"scale": 5e-324, "zero_point": -128}]}}))
def test_files_with_odd_metadata_still_run(scratch, fmt, meta):
    path = scratch.copy(fmt)
    metadata_io.write_metadata(path, meta)
    model = Model(path)
    assert model.metadata == meta
    np.testing.assert_array_equal(model.predict(scratch.plain["x"]), scratch.plain["y"][fmt])


def test_constructors_normalise_numpy_and_list_values():
    spec = PreprocessSpec([np.int64(96), np.int32(80)], np.int8(3), [np.float32(0.5)], (np.float64(2),))
    assert spec == PreprocessSpec((96, 80), 3, (0.5,), (2.0,))
    assert spec.to_dict() == {"size": [96, 80], "channels": 3, "mean": [0.5], "std": [2.0], "resize": "bilinear"}
    meta = ModelMetadata(spec, class_names=["a", "b"], extra={"shape": (1, 2), "nested": {"t": ((1,),)}})
    assert meta.class_names == ("a", "b") and meta.extra == {"shape": [1, 2], "nested": {"t": [[1]]}}
    assert ModelMetadata.from_json(meta.to_json()) == meta


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": (96,)}, "size got"), ({"size": (96, 96, 3)}, "size got"), ({"size": (0, 96)}, "size got"),
        ({"size": (96.0, 96)}, "size got"), ({"size": (True, 96)}, "size got"), ({"size": "96"}, "size got"),
        ({"size": (MAX_SIDE + 1, 1)}, "size got"), ({"channels": 2}, "channels got 2"),
        ({"channels": 3.0}, "channels got 3.0"), ({"mean": 127.5}, "mean got 127.5"),
        ({"mean": (float("nan"),)}, "finite"), ({"std": (float("inf"),)}, "finite"), ({"mean": (1e39,)}, "finite"),
        ({"mean": (10**400,)}, "finite"), ({"std": (0.0,)}, "non-zero"), ({"std": (1e-46,)}, "non-zero"),
        ({"mean": ("0",)}, "mean got"), ({"mean": (1.0, 2.0)}, "expected 1 or 3"), ({"resize": "cubic"}, "resize got"),
    ],
)
def test_bad_preprocess_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreprocessSpec(**{"size": (96, 96), **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"class_names": "ab"}, "class_names got"), ({"class_names": ("a", 1)}, "class_names got"),
        ({"layout": "nchw"}, "layout got"), ({"architecture": None}, "architecture got None"),
        ({"extra": {1: "a"}}, "extra got"), ({"extra": {"a": float("nan")}}, "extra got"),
        ({"extra": {"a": object()}}, "extra got"), ({"preprocess": {"size": [1, 1]}}, "preprocess got"),
    ],
)
def test_bad_metadata_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelMetadata(**{"preprocess": PreprocessSpec((8, 8)), **kwargs})


# -- garbage in the file -----------------------------------------------------------------------------


def _valid_doc() -> dict:
    return json.loads(ModelMetadata(PreprocessSpec((8, 8)), class_names=("a", "b")).to_json())


def _same_json(a, b) -> bool:
    """Equal JSON, where bools are not numbers (True == 1 in Python) and 3 == 3.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _read_garbage(path) -> ModelMetadata | None:
    """read_metadata's answer, or None after checking that its error is one short line."""
    try:
        return read_metadata(path)
    except RuntimeModelError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1 and str(path) in message, message
        assert len(message) < 800 + len(str(path)), message
        return None


def _check_accepted(meta: ModelMetadata, payload: str) -> None:
    """Accepted garbage must say exactly what the payload says, for every field it has."""
    doc, written = json.loads(payload), json.loads(meta.to_json())
    for key, value in doc.items():
        if key == "preprocess":
            assert all(_same_json(value[k], written["preprocess"][k]) for k in value if k in written["preprocess"])
        elif key in written:
            assert _same_json(value, written[key]), (key, value, written[key])
    assert ModelMetadata.from_json(meta.to_json()) == meta


@st.composite
def retyped_docs(draw) -> tuple[str, tuple[str, ...]]:
    """A valid document with one field replaced by a JSON value of another type."""
    doc = _valid_doc()
    field_path = draw(st.sampled_from(sorted(_FIELD_TYPES)))
    wanted = _FIELD_TYPES[field_path]
    value = draw(_json.filter(lambda v: _json_type(v) is not wanted))
    target = doc
    for key in field_path[:-1]:
        target = target[key]
    target[field_path[-1]] = value
    return json.dumps(doc), field_path


_garbage_text = st.one_of(
    _text,
    st.text(max_size=200),
    _json.map(json.dumps),
    st.builds(lambda d: json.dumps({**_valid_doc(), **d}),
              st.dictionaries(st.sampled_from(sorted(_valid_doc())), _json)),
    st.sampled_from(["", "{", "null", "[]", "{}", '{"preprocess": {}}', "[" * 100_000, '{"a":' * 50_000,
                     json.dumps({**_valid_doc(), "schema": True}), json.dumps({**_valid_doc(), "schema": 1.0}),
                     json.dumps({**_valid_doc(), "preprocess": {"size": [8, 8], "mean": [10**400]}}),
                     '{"schema": 1, "preprocess": {"size": [8, 8]}, "extra": {"x": NaN}}',
                     '{"schema": 1, "preprocess": {"size": [8, 8], "std": [Infinity]}}',
                     '{"schema": 1, "preprocess": {"size": [1e400, 8]}}',
                     '{"schema": 1, "preprocess": {"size": [' + "9" * 5000 + ", 8]}}"]),
)


@pytest.mark.parametrize("fmt", FORMATS)
@FILES
@given(payload=_garbage_text)
def test_garbage_payload_is_one_line_error_or_exact(scratch, fmt, payload):
    path = scratch.copy(fmt)
    _write_payload(path, fmt, payload)
    meta = _read_garbage(path)
    if meta is not None:
        _check_accepted(meta, payload)


@pytest.mark.parametrize("fmt", FORMATS)
@FILES
@given(case=retyped_docs())
def test_wrong_json_types_are_refused(scratch, fmt, case):
    payload, field_path = case
    path = scratch.copy(fmt)
    _write_payload(path, fmt, payload)
    assert _read_garbage(path) is None, f"{'.'.join(field_path)} accepted in {payload}"


@FILES
@given(payload=st.binary(max_size=64) | _text.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_non_utf8_tflite_payload_is_one_line_error(scratch, payload):
    path = scratch.copy("tflite")
    _write_payload(path, "tflite", payload)
    meta = _read_garbage(path)
    if meta is not None:
        _check_accepted(meta, payload.decode("utf-8"))


def _point_edgekit_entry_at(path, index: int) -> None:
    """Rewrite a .tflite so that an edgekit entry names buffer ``index`` (say, a tensor's weights)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    model.metadata = [*(model.metadata or []), schema.MetadataT(name="edgekit", buffer=index)]
    model.buffers = [metadata_io._AlignedBuffer(b, schema) for b in model.buffers]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


@settings(max_examples=20, **_QUIET)
@given(index=st.integers(0, 100), meta=metadatas())
def test_writing_never_overwrites_a_buffer_the_model_uses(scratch, index, meta):
    path = scratch.copy("tflite")
    index %= len(parse_tflite(path.read_bytes()).buffers)
    _point_edgekit_entry_at(path, index)
    try:
        metadata_io.write_metadata(path, meta)
    except RuntimeModelError as exc:  # the old entry is not UTF-8 (weights): a clean refusal
        assert len(str(exc).splitlines()) == 1 and "not UTF-8" in str(exc)
        return
    assert read_metadata(path) == meta
    np.testing.assert_array_equal(Model(path).predict(scratch.plain["x"]), scratch.plain["y"]["tflite"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_model_refuses_bad_metadata_in_one_line(scratch, fmt):
    path = scratch.copy(fmt)
    _write_payload(path, fmt, json.dumps({**_valid_doc(), "layout": 4}))
    with pytest.raises(RuntimeModelError, match="layout got 4") as info:
        Model(path)
    assert len(str(info.value).splitlines()) == 1


def test_finite_float32_bounds_are_exact():
    top = float(np.finfo(np.float32).max)
    assert PreprocessSpec((1, 1), mean=(top,), std=(-top,)).mean == (top,)
    with pytest.raises(ValueError, match="finite"):
        PreprocessSpec((1, 1), mean=(math.nextafter(top, math.inf) * 2,))


# -- the standard TFLite Model Metadata flatbuffer (metadata_schema.fbs) ----------------------------


def _standard_payload() -> bytes:
    """A ModelMetadata flatbuffer using every table the runtime reads."""
    from edgekit.export.tflite_metadata import metadata_schema, pack

    schema = metadata_schema()
    root, sub, image, scores = (schema.ModelMetadataT(), schema.SubGraphMetadataT(), schema.TensorMetadataT(),
                                schema.TensorMetadataT())
    root.name, image.name, scores.name = "m", "image", "probability"
    image.content = schema.ContentT()
    image.content.contentPropertiesType = schema.ContentProperties.ImageProperties
    image.content.contentProperties = schema.ImagePropertiesT()
    unit = schema.ProcessUnitT()
    unit.optionsType, unit.options = schema.ProcessUnitOptions.NormalizationOptions, schema.NormalizationOptionsT()
    unit.options.mean, unit.options.std = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    image.processUnits = [unit]
    scores.stats = schema.StatsT()
    scores.stats.min, scores.stats.max = [0.0], [1.0]
    labels = schema.AssociatedFileT()
    labels.name, labels.type = "labels.txt", schema.AssociatedFileType.TENSOR_AXIS_LABELS
    scores.associatedFiles = [labels]
    sub.inputTensorMetadata, sub.outputTensorMetadata = [image], [scores]
    root.subgraphMetadata = [sub]
    return pack(schema, root)


@pytest.fixture(scope="module")
def standard_payload() -> bytes:
    return _standard_payload()


def test_standard_payload_reads_back(standard_payload):
    std = std_metadata.parse_standard_metadata(standard_payload)
    assert (std.inputs[0].mean, std.inputs[0].std) == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    assert std.outputs[0].labels_file().name == "labels.txt"


@PURE
@given(data=st.data())
def test_damaged_standard_payload_raises_only_value_error(standard_payload, data):
    """Any bytes of the payload overwritten, or the payload cut: a result or ValueError, never
    another exception (an IndexError, a struct.error, a hang)."""
    payload = bytearray(standard_payload)
    for _ in range(data.draw(st.integers(1, 8))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    payload = bytes(payload[: data.draw(st.integers(0, len(payload)))])
    try:
        std_metadata.parse_standard_metadata(payload)
    except ValueError:
        pass


@PURE
@given(root=st.binary(min_size=4, max_size=4), body=st.binary(max_size=256))
def test_random_standard_payload_raises_only_value_error(root, body):
    """Random bytes behind the right identifier (so the reader goes past its first check)."""
    try:
        std_metadata.parse_standard_metadata(root + std_metadata.METADATA_IDENTIFIER + body)
    except ValueError:
        pass
