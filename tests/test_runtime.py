"""Tests of edgekit.runtime: loading, predict, quantization, batching, metadata, classify, errors.

Tiny Keras models are built and converted once per module (TFLite fp32 and full-int8 with the
TFLite converter, ONNX with tf2onnx); TensorFlow is used only to make and check the files.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.runtime import (  # noqa: E402
    METADATA_KEY,
    Model,
    ModelMetadata,
    PreprocessSpec,
    QuantParams,
    RuntimeModelError,
    TensorInfo,
    read_metadata,
    write_metadata,
)
from edgekit.runtime.flatbuf import parse_tflite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZE = 16
META = ModelMetadata(
    preprocess=PreprocessSpec(size=(SIZE, SIZE), channels=3, mean=(127.5,), std=(127.5,)),
    class_names=("cat", "dog", "fox"),
    architecture="tiny",
)




# -- building the test files (reused by the export engineer's recipe) ------------------------


def _tiny_classifier(softmax: bool = True):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax" if softmax else None, name="probs")(x)
    return keras.Model(inp, out)


def _two_in_two_out():
    import keras

    keras.utils.set_random_seed(1)
    a = keras.Input((8,), name="a")
    b = keras.Input((6, 6, 1), name="b")
    flat = keras.layers.Flatten()(b)
    joined = keras.layers.Concatenate()([a, flat])
    first = keras.layers.Dense(2, name="first")(joined)
    second = keras.layers.Dense(5, activation="softmax", name="second")(keras.layers.Dense(7)(joined))
    return keras.Model([a, b], [first, second])


def _to_tflite(model, int8: bool = False) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        shapes = [tuple(d or 1 for d in t.shape) for t in model.inputs]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes] for _ in range(16)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": they come from the data
        warnings.simplefilter("ignore", UserWarning)
        return converter.convert()


def _to_onnx(model, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = tuple(tf.TensorSpec((None, *t.shape[1:]), tf.float32, name=t.name) for t in model.inputs)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=str(path))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Keras models, their converted files, and copies that carry edgekit metadata."""
    out = tmp_path_factory.mktemp("runtime")
    clf, logits, multi = _tiny_classifier(), _tiny_classifier(softmax=False), _two_in_two_out()
    paths = {
        "fp32": out / "fp32.tflite",
        "int8": out / "int8.tflite",
        "logits": out / "logits.tflite",
        "multi": out / "multi.tflite",
        "onnx": out / "fp32.onnx",
        "multi_onnx": out / "multi.onnx",
    }
    paths["fp32"].write_bytes(_to_tflite(clf))
    paths["int8"].write_bytes(_to_tflite(clf, int8=True))
    paths["logits"].write_bytes(_to_tflite(logits))
    paths["multi"].write_bytes(_to_tflite(multi))
    _to_onnx(clf, paths["onnx"])
    _to_onnx(multi, paths["multi_onnx"])
    for key in ("fp32", "int8", "logits", "onnx"):
        tagged = paths[key].with_name("meta_" + paths[key].name)
        shutil.copy(paths[key], tagged)
        write_metadata(tagged, META)
        paths["meta_" + key] = tagged
    return {"paths": paths, "clf": clf, "logits": logits, "multi": multi, "dir": out}


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype(np.float32)


def _multi_inputs(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {"a": rng.normal(size=(n, 8)).astype(np.float32), "b": rng.normal(size=(n, 6, 6, 1)).astype(np.float32)}


# -- loading and tensor descriptions -----------------------------------------------------------


@pytest.mark.parametrize("key", ["fp32", "onnx"])
def test_inputs_outputs_describe_the_file(files, key):
    model = Model(files["paths"][key])
    assert model.inputs == [TensorInfo("image", (None, SIZE, SIZE, 3), np.dtype(np.float32), None)]
    (out,) = model.outputs
    assert out.shape == (None, 3) and out.dtype == np.float32 and out.quantization is None
    assert model.metadata is None
    assert model.raw is not None


def test_int8_tensors_carry_quant_params(files):
    model = Model(files["paths"]["int8"])
    (inp,), (out,) = model.inputs, model.outputs
    assert inp.dtype == np.int8 and isinstance(inp.quantization, QuantParams) and inp.quantization.scale > 0
    assert out.dtype == np.int8 and out.quantization is not None


# -- predict -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["fp32", "onnx"])
@pytest.mark.parametrize("batch", [1, 5])
def test_fp32_predict_matches_keras(files, key, batch):
    x = _images(batch)
    expected = files["clf"].predict(x, verbose=0)
    got = Model(files["paths"][key]).predict(x)
    assert got.dtype == np.float32 and got.shape == (batch, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_batches_of_changing_size_on_one_model(files):
    model = Model(files["paths"]["fp32"])
    for n in (3, 1, 5, 2):
        x = _images(n, seed=n)
        np.testing.assert_allclose(model.predict(x), files["clf"].predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("key", ["fp32", "int8", "onnx"])
def test_float64_and_non_contiguous_inputs(files, key):
    model = Model(files["paths"][key])
    x = _images(2)
    strided = np.asfortranarray(x.astype(np.float64))
    np.testing.assert_array_equal(model.predict(strided), model.predict(x))


def test_int8_predict_quantizes_and_dequantizes(files):
    model = Model(files["paths"]["int8"])
    x = _images(5)
    got = model.predict(x)
    assert got.dtype == np.float32 and got.shape == (5, 3)
    np.testing.assert_allclose(got, files["clf"].predict(x, verbose=0), atol=0.03)
    # The same numbers as quantizing by hand with the file's parameters, sample by sample.
    interp = model.raw
    (i,), (o,) = interp.get_input_details(), interp.get_output_details()
    (s_in, z_in), (s_out, z_out) = i["quantization"], o["quantization"]
    for sample, row in zip(x, got):
        interp.resize_tensor_input(i["index"], [1, SIZE, SIZE, 3])
        interp.allocate_tensors()
        q = np.clip(np.rint(sample[None] / s_in + z_in), -128, 127).astype(np.int8)
        interp.set_tensor(i["index"], q)
        interp.invoke()
        np.testing.assert_allclose(row, (interp.get_tensor(o["index"])[0].astype(np.float32) - z_out) * s_out)


def test_int8_input_clips_out_of_range_values(files):
    model = Model(files["paths"]["int8"])
    huge = np.full((1, SIZE, SIZE, 3), 1e6, np.float32)
    assert np.isfinite(model.predict(huge)).all()


@pytest.mark.parametrize("key", ["multi", "multi_onnx"])
def test_multi_input_output_model_without_metadata(files, key):
    model = Model(files["paths"][key])
    assert model.metadata is None and len(model.inputs) == 2 and len(model.outputs) == 2
    by_rank = {len(t.shape): t.name for t in model.inputs}  # a: rank 2, b: rank 4
    data = _multi_inputs(4)
    named = {by_rank[2]: data["a"], by_rank[4]: data["b"]}
    expected = files["multi"].predict([data["a"], data["b"]], verbose=0)
    from_dict = model.predict(named)
    from_list = model.predict([named[t.name] for t in model.inputs])
    assert set(from_dict) == {t.name for t in model.outputs}
    for result in (from_dict, from_list):
        by_width = {v.shape[-1]: v for v in result.values()}
        np.testing.assert_allclose(by_width[2], expected[0], atol=1e-5)
        np.testing.assert_allclose(by_width[5], expected[1], atol=1e-5)


def test_fixed_batch_model_loops_over_chunks(files, tmp_path):
    import tensorflow as tf
    import tf2onnx

    clf = files["clf"]
    spec = (tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32, name="image"),)
    path = tmp_path / "batch1.onnx"
    tf2onnx.convert.from_keras(clf, input_signature=spec, opset=13, output_path=str(path))
    model = Model(path)
    assert model.inputs[0].shape[0] == 1
    x = _images(3)
    np.testing.assert_allclose(model.predict(x), clf.predict(x, verbose=0), atol=1e-5)


@pytest.mark.filterwarnings("ignore::UserWarning")  # tf.lite.Interpreter's deprecation notice
def test_tensorflow_backend_agrees_with_litert(files):
    x = _images(2)
    lite = Model(files["paths"]["fp32"], backend="litert")
    tf_model = Model(files["paths"]["fp32"], backend="tensorflow", threads=1)
    assert tf_model.backend == "tensorflow"
    np.testing.assert_allclose(tf_model.predict(x), lite.predict(x), atol=1e-6)


@pytest.mark.parametrize("key", ["fp32", "int8", "onnx"])
def test_threads_share_one_model(files, key):
    model = Model(files["paths"][key], threads=1)
    batches = [_images(1 + i % 3, seed=i) for i in range(24)]  # varying sizes force resizes
    serial = [model.predict(x) for x in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(model.predict, batches))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


# -- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["fp32", "onnx"])
def test_metadata_round_trip_and_replace(files, key, tmp_path):
    path = tmp_path / files["paths"][key].name
    shutil.copy(files["paths"][key], path)
    os.chmod(path, 0o640)
    before = Model(path).predict(_images(2))
    assert read_metadata(path) is None
    write_metadata(path, META)
    assert read_metadata(path) == META
    other = ModelMetadata(PreprocessSpec((8, 8), channels=1), class_names=("x", "y", "z"), precision="int8")
    write_metadata(path, other)
    assert read_metadata(path) == other
    assert _count_edgekit_entries(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left
    assert path.stat().st_mode & 0o777 == 0o640
    model = Model(path)
    assert model.metadata == other
    np.testing.assert_array_equal(model.predict(_images(2)), before)


def _count_edgekit_entries(path: Path) -> int:
    if path.suffix == ".onnx":
        import onnx

        return sum(p.key == METADATA_KEY for p in onnx.load(str(path)).metadata_props)
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    return sum(m.name in (METADATA_KEY, METADATA_KEY.encode()) for m in model.metadata)


def test_tflite_metadata_write_keeps_converter_entries_and_alignment(files):
    original = files["paths"]["fp32"].read_bytes()
    written = files["paths"]["meta_fp32"].read_bytes()
    before, after = parse_tflite(original), parse_tflite(written)
    assert set(before.metadata) | {METADATA_KEY} == set(after.metadata)
    for name in before.metadata:
        assert before.metadata_bytes(original, name) == after.metadata_bytes(written, name)
    assert all(ref.start % 16 == 0 for ref in after.buffers if ref.size)


def test_invalid_metadata_json_is_refused(files, tmp_path):
    import onnx

    path = tmp_path / "bad.onnx"
    model = onnx.load(str(files["paths"]["onnx"]))
    model.metadata_props.add(key=METADATA_KEY, value="{not json")
    onnx.save(model, str(path))
    with pytest.raises(RuntimeModelError, match="invalid edgekit metadata"):
        read_metadata(path)
    with pytest.raises(RuntimeModelError, match="invalid edgekit metadata"):
        Model(path)


# -- images and classify -------------------------------------------------------------------------


def _photo(h: int = 40, w: int = 30) -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("key", ["meta_fp32", "meta_int8", "meta_onnx"])
def test_classify_uses_metadata(files, key):
    model = Model(files["paths"][key])
    image = _photo()
    top = model.classify(image, top_k=2)
    assert len(top) == 2 and all(label in META.class_names for label, _ in top)
    probs = np.asarray(model.predict(model.preprocess(image)[None]))[0]
    assert top[0] == (META.class_names[int(np.argmax(probs))], pytest.approx(float(probs.max())))
    assert top[0][1] >= top[1][1]
    assert len(model.classify(image, top_k=10)) == 3


def test_classify_applies_softmax_to_logits(files):
    model = Model(files["paths"]["meta_logits"])
    image = _photo()
    logits = model.predict(model.preprocess(image)[None])[0].astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    top = model.classify(image, top_k=3)
    assert sum(p for _, p in top) == pytest.approx(1.0)
    assert dict(top) == {n: pytest.approx(p) for n, p in zip(META.class_names, expected)}


def test_classify_reads_image_files(files, tmp_path):
    from PIL import Image

    image = _photo()
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    model = Model(files["paths"]["meta_fp32"])
    assert model.classify(path) == model.classify(image)
    assert model.classify(str(path), top_k=1) == model.classify(image, top_k=1)
    with pytest.raises(RuntimeModelError, match="does not exist"):
        model.classify(tmp_path / "missing.png")


def test_preprocess_follows_metadata_layout(files, tmp_path):
    path = tmp_path / "nchw.onnx"
    shutil.copy(files["paths"]["onnx"], path)
    write_metadata(path, ModelMetadata(PreprocessSpec((12, 10)), layout="NCHW"))
    x = Model(path).preprocess(_photo())
    assert x.shape == (3, 12, 10) and x.dtype == np.float32
    hwc = Model(files["paths"]["meta_onnx"]).preprocess(_photo())
    assert hwc.shape == (SIZE, SIZE, 3) and -1 <= hwc.min() and hwc.max() <= 1


def test_classify_needs_metadata_and_valid_top_k(files):
    with pytest.raises(RuntimeModelError, match="no edgekit metadata"):
        Model(files["paths"]["fp32"]).classify(_photo())
    with pytest.raises(RuntimeModelError, match="top_k got 0"):
        Model(files["paths"]["meta_fp32"]).classify(_photo(), top_k=0)


# -- errors --------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(RuntimeModelError, match="does not exist"):
        Model(tmp_path / "nope.tflite")
    with pytest.raises(RuntimeModelError, match="does not exist"):
        read_metadata(tmp_path / "nope.onnx")


def test_unknown_suffix_and_directory(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(RuntimeModelError, match=r"suffix '\.bin'; expected one of \.tflite, \.onnx"):
        Model(tmp_path / "model.bin")
    (tmp_path / "dir.tflite").mkdir()
    with pytest.raises(RuntimeModelError, match="not a regular file"):
        Model(tmp_path / "dir.tflite")


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_empty_and_random_files(tmp_path, suffix):
    empty = tmp_path / ("empty" + suffix)
    empty.write_bytes(b"")
    with pytest.raises(RuntimeModelError, match="is empty"):
        Model(empty)
    noise = tmp_path / ("noise" + suffix)
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(RuntimeModelError, match="not a TFLite file|not an ONNX"):
        Model(noise)


@pytest.mark.parametrize("key", ["fp32", "int8", "onnx"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_copy_is_refused(files, tmp_path, key, keep):
    data = files["paths"][key].read_bytes()
    path = tmp_path / files["paths"][key].name
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(RuntimeModelError, match="truncated"):
        Model(path)
    with pytest.raises(RuntimeModelError, match="truncated"):
        read_metadata(path)


@pytest.mark.parametrize("key", ["fp32", "int8", "onnx"])
def test_wrong_shape_and_dtype(files, key):
    model = Model(files["paths"][key])
    with pytest.raises(RuntimeModelError, match=r"got shape \(1, 15, 16, 3\); expected \(None, 16, 16, 3\)"):
        model.predict(np.zeros((1, 15, SIZE, 3), np.float32))
    with pytest.raises(RuntimeModelError, match="got shape"):
        model.predict(np.zeros((SIZE, SIZE, 3), np.float32))
    with pytest.raises(RuntimeModelError, match="got shape"):
        model.predict(np.zeros((0, SIZE, SIZE, 3), np.float32))
    with pytest.raises(RuntimeModelError, match="got dtype uint8; expected floating point"):
        model.predict(np.zeros((1, SIZE, SIZE, 3), np.uint8))


def test_unknown_backend(files):
    with pytest.raises(RuntimeModelError, match="backend got 'tpu'; expected one of auto, litert, tflite_runtime"):
        Model(files["paths"]["fp32"], backend="tpu")
    with pytest.raises(RuntimeModelError, match="cannot run .onnx files; expected auto or one of onnxruntime"):
        Model(files["paths"]["onnx"], backend="litert")


@pytest.mark.skipif(importlib.util.find_spec("tflite_runtime") is not None, reason="tflite_runtime is installed here")
def test_missing_backend_is_named(files):
    with pytest.raises(RuntimeModelError, match="install one of tflite_runtime"):
        Model(files["paths"]["fp32"], backend="tflite_runtime")


def test_bad_threads(files):
    with pytest.raises(RuntimeModelError, match="threads got 0"):
        Model(files["paths"]["fp32"], threads=0)


@pytest.mark.parametrize("key", ["multi", "multi_onnx"])
def test_wrong_number_or_names_of_inputs(files, key):
    model = Model(files["paths"][key])
    data = list(_multi_inputs(1).values())
    with pytest.raises(RuntimeModelError, match="got 3 input arrays; the model has 2 inputs"):
        model.predict(data + data[:1])
    with pytest.raises(RuntimeModelError, match="got 1 input array; the model has 2 inputs"):
        model.predict(data[0])
    with pytest.raises(RuntimeModelError, match=r"missing .*unknown \['c'\]"):
        model.predict({model.inputs[0].name: data[0], "c": data[1]})


# -- the device path: no TensorFlow, no Keras --------------------------------------------------

_DEVICE_SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = {"tensorflow", "keras", "tf2onnx", "tf_keras"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    try:
        import tensorflow  # noqa: F401
        raise SystemExit("the blocker did not block tensorflow")
    except ImportError:
        pass

    import numpy as np
    from edgekit.runtime import Model

    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    for path in sys.argv[1:]:
        model = Model(path)
        out = model.predict(model.preprocess(image)[None])
        assert out.shape == (1, 3), out.shape
        top = model.classify(image, top_k=1)
        print(path, top)
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("device ok")
    """
)


def test_runs_without_tensorflow_or_keras(files):
    paths = [str(files["paths"][k]) for k in ("meta_fp32", "meta_int8", "meta_onnx")]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", _DEVICE_SCRIPT, *paths], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "device ok" in result.stdout


# edgekit's standard-library-only helper modules (issue 15, item 5), which the runtime may import:
# each is checked below to import the standard library only.
STDLIB_HELPERS = ("edgekit.messages", "edgekit.tempfiles", "edgekit.devices")


def test_runtime_sources_import_only_numpy_stdlib_and_backends():
    import ast

    allowed = set(sys.stdlib_module_names) | {"numpy"}
    backends = {"ai_edge_litert", "tflite_runtime", "tensorflow", "onnxruntime", "onnx", "flatbuffers", "PIL"}
    lazy_allowed = allowed | backends  # imported inside functions only
    for helper in STDLIB_HELPERS:
        tree = ast.parse((REPO / (helper.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not getattr(node, "level", 0), f"{helper} imports relative {names}"
                for name in names:
                    assert name.partition(".")[0] in sys.stdlib_module_names, f"{helper} imports {name}"
    for source in (REPO / "edgekit" / "runtime").glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            top_level = node in tree.body
            for name in names:
                if name in STDLIB_HELPERS:
                    continue
                root = name.partition(".")[0]
                assert root in (allowed if top_level else lazy_allowed), f"{source.name} imports {name}"
