"""Standard TFLite Model Metadata (issue 12, items 1 and 5): written on export, read by the runtime.

Format: TFLite Model Metadata (metadata_schema.fbs, ``TFLITE_METADATA`` entry, identifier
``M001``, associated files in an appended zip). The writer is
:mod:`edgekit.export.tflite_metadata`, the reader :mod:`edgekit.runtime.std_metadata`. Judges:
MediaPipe Tasks' ImageClassifier and ImageEmbedder open what the writer writes; files labelled
by TFLite Support's own writer (tests/fixtures/tfls_*.tflite, see
scripts/make_tflite_support_fixture.py) classify through edgekit.runtime and ``edgekit predict``
without TensorFlow. mediapipe is a dependency of the ``train`` extra (the writer needs its
schema module), so these tests do not skip without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import REPO
from device_helpers import BLOCKED_MARK, CLASS_NAMES, no_tensorflow_env, sample_images
from edgekit.export.tflite_metadata import LABELS_FILE, metadata_schema, pack, write_standard_metadata
from edgekit.runtime import Model, ModelMetadata, PreprocessSpec, RuntimeModelError, read_metadata
from edgekit.runtime import metadata as metadata_io
from edgekit.runtime import std_metadata
from edgekit.runtime.flatbuf import parse_tflite

SIDE, NAMES = 16, ("cat", "dog", "ox", "émeu")
FIXTURES = REPO / "tests" / "fixtures"
META = ModelMetadata(PreprocessSpec((SIDE, SIDE), channels=3, mean=(127.5,), std=(64.0,)), class_names=NAMES,
                     architecture="tiny", precision="fp32", edgekit_version="9.9.9")


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> dict:
    """Float .tflite files without metadata: a 16x16x3 -> 4 classifier and its 8-wide backbone."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIDE, SIDE, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp))
    dense = keras.layers.Dense(len(NAMES), activation="softmax")
    classifier = keras.Model(inp, dense(features))
    dense.set_weights([np.random.default_rng(0).normal(0, 4, (8, len(NAMES))).astype(np.float32),
                       np.linspace(-1, 1, len(NAMES)).astype(np.float32)])
    folder = tmp_path_factory.mktemp("bare")
    out = {}
    for key, model in (("classifier", classifier), ("embedder", keras.Model(inp, features))):
        out[key] = folder / f"{key}.tflite"
        out[key].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return out


def _copy(bare, tmp_path, key="classifier", edgekit=True):
    path = tmp_path / f"{key}.tflite"
    shutil.copy(bare[key], path)
    if edgekit:
        metadata_io.write_metadata(path, META)
    return path


# -- the writer, read back ----------------------------------------------------------------------


def test_round_trip(bare, tmp_path):
    path = _copy(bare, tmp_path)
    write_standard_metadata(path, META)
    std = std_metadata.read_standard_metadata(path)
    assert (std.name, std.version, std.author, std.min_parser_version) == ("tiny", "9.9.9", "edgekit", "1.0.0")
    assert all(word in std.description for word in ("tiny", "fp32", "edgekit"))
    (image,), (probability,) = std.inputs, std.outputs
    assert (image.name, image.content, image.color_space) == ("image", "ImageProperties", "RGB")
    assert (image.mean, image.std) == ((127.5,) * 3, (64.0,) * 3)
    assert image.stats_min == pytest.approx((-127.5 / 64,) * 3) and image.stats_max == pytest.approx((127.5 / 64,) * 3)
    assert (probability.name, probability.content) == ("probability", "FeatureProperties")
    assert (probability.stats_min, probability.stats_max) == ((0.0,), (1.0,))
    assert probability.labels_file().name == LABELS_FILE
    assert std_metadata.read_labels(path, LABELS_FILE) == NAMES
    with zipfile.ZipFile(path) as archive:  # MediaPipe's extractor reads stored files only
        assert [(i.filename, i.compress_type) for i in archive.infolist()] == [(LABELS_FILE, zipfile.ZIP_STORED)]
    model = Model(path)
    derived = std_metadata.to_model_metadata(path, std, model.inputs, model.outputs)
    assert derived.preprocess == PreprocessSpec((SIDE, SIDE), channels=3, mean=(127.5,) * 3, std=(64.0,) * 3)
    assert derived.class_names == NAMES


def test_edgekit_entry_kept_and_preferred(bare, tmp_path):
    path = _copy(bare, tmp_path)
    write_standard_metadata(path, META)
    assert read_metadata(path) == META
    assert Model(path).metadata == META  # edgekit's entry wins over the standard one


def test_standard_entry_alone_classifies_like_edgekit_entry(bare, tmp_path):
    ours = _copy(bare, tmp_path)
    standard = tmp_path / "standard" / "classifier.tflite"
    standard.parent.mkdir()
    shutil.copy(bare["classifier"], standard)
    write_standard_metadata(standard, META)
    assert read_metadata(standard) is None
    image = np.random.default_rng(1).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    assert dict(Model(standard).classify(image, top_k=4)) == pytest.approx(dict(Model(ours).classify(image, top_k=4)))


def test_buffer_alignment_kept(bare, tmp_path):
    path = _copy(bare, tmp_path)
    write_standard_metadata(path, META)
    metadata_io.write_metadata(path, META)
    data = path.read_bytes()
    layout = parse_tflite(data)
    assert {"edgekit", std_metadata.METADATA_NAME} <= set(layout.metadata)
    assert all(ref.start % 16 == 0 for ref in layout.buffers if ref.size)


@pytest.mark.parametrize("order", ["standard first", "edgekit first"])
def test_either_writer_order_keeps_both_entries_and_the_zip(bare, tmp_path, order):
    path = _copy(bare, tmp_path, edgekit=False)
    writers = [lambda: write_standard_metadata(path, META), lambda: metadata_io.write_tflite_metadata(path, META)]
    for write in writers if order == "standard first" else writers[::-1]:
        write()
    assert read_metadata(path) == META
    assert std_metadata.read_standard_metadata(path).outputs[0].labels_file().name == LABELS_FILE
    assert std_metadata.read_labels(path, LABELS_FILE) == NAMES
    first = path.read_bytes()
    metadata_io.write_tflite_metadata(path, META)  # rewriting again changes nothing, duplicates nothing
    write_standard_metadata(path, META)
    assert path.read_bytes() == first
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [LABELS_FILE]


def test_third_party_packed_files_survive(tmp_path):
    path = tmp_path / "tfls.tflite"
    shutil.copy(FIXTURES / "tfls_float.tflite", path)
    metadata_io.write_tflite_metadata(path, META.__class__(PreprocessSpec((28, 28), 3), class_names=CLASS_NAMES))
    assert std_metadata.read_labels(path, "class_names.txt") == CLASS_NAMES


def test_quantized_input_stats_and_raw_pixels(tmp_path):
    path = tmp_path / "uint8.tflite"
    shutil.copy(FIXTURES / "tfls_uint8.tflite", path)  # its TFLITE_METADATA entry is replaced
    meta = ModelMetadata(PreprocessSpec((28, 28), 3), class_names=CLASS_NAMES, precision="int8")
    write_standard_metadata(path, meta)
    std = std_metadata.read_standard_metadata(path)
    (image,), (probability,) = std.inputs, std.outputs
    assert (image.stats_min, image.stats_max) == ((0.0,), (255.0,))  # the raw uint8 pixel range
    assert (probability.stats_min, probability.stats_max) == ((0.0,), (255.0,))
    assert std_metadata.read_labels(path, LABELS_FILE) == CLASS_NAMES
    model = Model(path)  # no edgekit entry: the runtime reads the standard one
    assert std.author == "edgekit" and model.metadata.preprocess.mean == (model.inputs[0].quantization.zero_point,)


def test_embedding(bare, tmp_path):
    path = _copy(bare, tmp_path, key="embedder")
    write_standard_metadata(path, META, embedding=True)
    (output,) = std_metadata.read_standard_metadata(path).outputs
    assert (output.name, output.content, output.files, output.stats_min) == ("embedding", "FeatureProperties", (), ())
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(path)


def test_wrong_class_name_count_refused(bare, tmp_path):
    path = _copy(bare, tmp_path)
    before = path.read_bytes()
    three = ModelMetadata(META.preprocess, class_names=NAMES[:3])
    with pytest.raises(ValueError, match=r"class_names has 3 names but output .* has 4 scores"):
        write_standard_metadata(path, three)
    with pytest.raises(ValueError, match="line break"):
        write_standard_metadata(path, ModelMetadata(META.preprocess, class_names=("a", "b\nc", "d", "e")))
    with pytest.raises(ValueError, match=r"has shape \[None, 16, 16, 3\]"):
        write_standard_metadata(path, ModelMetadata(PreprocessSpec((8, 8), 3), class_names=NAMES))
    assert path.read_bytes() == before


def test_schema_is_loaded_without_importing_mediapipe():
    code = ("import sys; from edgekit.export.tflite_metadata import metadata_schema; metadata_schema(); "
            "print(sorted(m for m in sys.modules if m.startswith('mediapipe')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_mediapipe_is_one_line(monkeypatch):
    import importlib.util

    from edgekit.export import ExportError

    metadata_schema.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    try:
        with pytest.raises(ExportError, match="needs the 'mediapipe' package") as info:
            metadata_schema()
        assert "\n" not in str(info.value)
    finally:
        monkeypatch.undo()
        metadata_schema.cache_clear()


# -- garbage in the standard entry: one-line errors ------------------------------------------------


def _valid_payload() -> bytes:
    schema = metadata_schema()
    root = schema.ModelMetadataT()
    root.name = "x"
    sub = schema.SubGraphMetadataT()
    tensor = schema.TensorMetadataT()
    tensor.name = "image"
    sub.inputTensorMetadata = [tensor]
    root.subgraphMetadata = [sub]
    return pack(schema, root)


GARBAGE = {
    "empty": b"",
    "text": b"not a flatbuffer at all",
    "wrong identifier": b"\x10\x00\x00\x00TFL3" + bytes(16),
    "root past the end": b"\xff\xff\xff\x7fM001" + bytes(8),
    "truncated": None,  # the valid payload cut in half
    "vtable garbage": None,  # the valid payload with its root's vtable offset overwritten
}


@pytest.mark.parametrize("case", GARBAGE)
def test_garbage_standard_entry_is_one_line(bare, tmp_path, case):
    payload = GARBAGE[case]
    if case == "truncated":
        payload = _valid_payload()[:20]
    elif case == "vtable garbage":
        valid = bytearray(_valid_payload())
        root = int.from_bytes(valid[:4], "little")
        valid[root : root + 4] = (0x7FFFFFF0).to_bytes(4, "little")
        payload = bytes(valid)
    path = _copy(bare, tmp_path, edgekit=False)
    metadata_io.write_tflite_entry(path, std_metadata.METADATA_NAME, payload)
    for read in (Model, std_metadata.read_standard_metadata):
        with pytest.raises(RuntimeModelError) as info:
            read(path)
        (line,) = str(info.value).splitlines()
        assert "invalid TFLite Model Metadata" in line and str(path) in line


def test_labels_missing_or_damaged_zip_is_one_line(bare, tmp_path):
    path = _copy(bare, tmp_path, edgekit=False)
    write_standard_metadata(path, META)
    data = path.read_bytes()
    flatbuffer_end = data.index(b"PK\x03\x04")
    for name, damaged in (("no zip", data[:flatbuffer_end]), ("cut zip", data[:-10])):
        path.write_bytes(damaged)
        with pytest.raises(RuntimeModelError) as info:
            Model(path)
        (line,) = str(info.value).splitlines()
        assert "associated file 'labels.txt'" in line, name


def test_trailing_zip_passes_file_checks_and_truncation_still_refused(bare, tmp_path):
    path = _copy(bare, tmp_path)
    write_standard_metadata(path, META)
    Model(path)  # the zip after the flatbuffer does not trip the checks
    path.write_bytes(path.read_bytes()[: len(bare["classifier"].read_bytes()) // 2])
    with pytest.raises(RuntimeModelError, match="truncated or corrupt"):
        Model(path)


# -- judges: MediaPipe Tasks open what edgekit writes ---------------------------------------------


def test_mediapipe_image_classifier_reads_labels_and_normalisation(bare, tmp_path):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    path = _copy(bare, tmp_path)
    write_standard_metadata(path, META)
    image = np.random.default_rng(2).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    got = {c.category_name: c.score for c in result.classifications[0].categories}
    assert set(got) == set(NAMES)
    expected = dict(Model(path).classify(image, top_k=len(NAMES)))  # same pixels, same normalisation
    assert got == pytest.approx(expected, abs=1e-4)


def test_mediapipe_image_embedder_opens_embedding_file(bare, tmp_path):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    path = _copy(bare, tmp_path, key="embedder")
    write_standard_metadata(path, META, embedding=True)
    image = np.random.default_rng(3).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    options = vision.ImageEmbedderOptions(base_options=BaseOptions(model_asset_path=str(path)))
    with vision.ImageEmbedder.create_from_options(options) as embedder:
        result = embedder.embed(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    embedding = result.embeddings[0].embedding
    expected = Model(path).predict(Model(path).preprocess(image)[None])[0]
    assert embedding == pytest.approx(expected, abs=1e-4)


# -- files labelled by TFLite Support's own writer -------------------------------------------------


@pytest.mark.parametrize("name", ["tfls_float", "tfls_uint8"])
def test_tflite_support_fixture_metadata(name):
    model = Model(FIXTURES / f"{name}.tflite")
    assert model.metadata.class_names == CLASS_NAMES
    spec = model.metadata.preprocess
    assert (spec.size, spec.channels) == ((28, 28), 3)
    if name == "tfls_float":
        assert (spec.mean, spec.std) == ((127.5,), (127.5,))
    else:  # uint8 input: raw pixels, as the Support and MediaPipe libraries feed them
        q = model.inputs[0].quantization
        assert spec.mean == (q.zero_point,) and spec.std == pytest.approx((1 / q.scale,))


@pytest.mark.parametrize("name", ["tfls_float", "tfls_uint8"])
def test_tflite_support_fixture_classifies_like_the_bare_interpreter(name):
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    path = FIXTURES / f"{name}.tflite"
    image_path = sample_images()[1]
    pixels = np.asarray(Image.open(image_path).convert("RGB"))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    if name == "tfls_float":  # the file's NormalizationOptions, 127.5 / 127.5
        x = ((pixels.astype(np.float32) - 127.5) / 127.5)[None]
    else:
        x = pixels[None]
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    scores = interpreter.get_tensor(out["index"])[0].astype(np.float32)
    if out["dtype"] == np.uint8:
        scale, zero_point = out["quantization"]
        scores = (scores - zero_point) * scale
    order = np.argsort(-scores, kind="stable")[:3]
    got = Model(path).classify(image_path, top_k=3)
    assert [label for label, _ in got] == [CLASS_NAMES[i] for i in order]
    assert [p for _, p in got] == pytest.approx(scores[order], abs=1e-6)


def test_tflite_support_fixture_predict_without_tensorflow(tmp_path):
    env = no_tensorflow_env(tmp_path / "site")
    images = sample_images()[:3]
    for name in ("tfls_float", "tfls_uint8"):
        path = FIXTURES / f"{name}.tflite"
        result = subprocess.run([sys.executable, "-m", "edgekit.cli", "predict", str(path), *map(str, images),
                                 "--top-k", "2", "--json"], capture_output=True, text=True, env=env, cwd=REPO,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert BLOCKED_MARK not in result.stderr
        device = [[(k["label"], k["probability"]) for k in r["top_k"]] for r in json.loads(result.stdout)["results"]]
        in_process = [Model(path).classify(image, top_k=2) for image in images]
        assert device == [[(label, pytest.approx(p, abs=1e-6)) for label, p in row] for row in in_process]
