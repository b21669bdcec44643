"""``edgekit predict``: top-k against the Keras model, the JSON schema, --raw, one-line errors,
and the device path (a subprocess in which TensorFlow, and in one case Pillow, cannot be
imported).

The model is a tiny 28x28x1 classifier (tests/device_helpers.py) run on the shipped
Fashion-MNIST sample images, whose size it takes as is, so the reference needs no resizing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import REPO
from device_helpers import BLOCKED_MARK, CLASS_NAMES, SIZE, no_tensorflow_env, sample_images, tiny_fashion_files
from edgekit.cli.main import main

# Probability tolerance against Keras: float files agree to rounding; int8 is off by a few steps.
ATOL = {"fp32": 1e-5, "onnx": 1e-5, "int8": 0.05}
BACKEND = {"fp32": "litert", "int8": "litert", "onnx": "onnxruntime"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tiny_fashion_files(tmp_path_factory.mktemp("predict"))


@pytest.fixture(scope="module")
def images():
    return sample_images(per_class=1)  # one per class, label order


def _edgekit(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _keras_probs(files, paths) -> np.ndarray:
    """The reference: pixels read with Pillow, normalised by hand, through the Keras model."""
    pixels = np.stack([np.asarray(Image.open(p), np.float32) for p in paths])[..., None]
    return files["keras"].predict((pixels - 127.5) / 127.5, verbose=0)


def test_backend_choices_are_the_runtime_table():
    from edgekit.cli.predict_cmd import BACKENDS
    from edgekit.runtime.backends import ALL_BACKENDS

    assert BACKENDS == ALL_BACKENDS


@pytest.mark.parametrize("key", ["fp32", "int8", "onnx"])
def test_json_top_k_follows_the_keras_model(files, images, key):
    result = _edgekit("predict", files["paths"][key], *images, "--top-k", 3, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)  # the whole stdout is one document
    assert set(doc) == {"model", "backend", "results"}
    assert doc["model"] == str(files["paths"][key]) and doc["backend"] == BACKEND[key]
    assert [r["image"] for r in doc["results"]] == [str(p) for p in images]
    reference = _keras_probs(files, images)
    for r, expected in zip(doc["results"], reference):
        assert set(r) == {"image", "top_k", "ms"} and isinstance(r["ms"], float) and r["ms"] > 0
        top = r["top_k"]
        assert len(top) == 3 and all(set(t) == {"label", "index", "probability"} for t in top)
        assert [t["label"] for t in top] == [CLASS_NAMES[t["index"]] for t in top]
        probs = [t["probability"] for t in top]
        assert probs == sorted(probs, reverse=True)
        np.testing.assert_allclose(probs, expected[[t["index"] for t in top]], atol=ATOL[key])
        # The first entry is a best class of the reference, within the file's tolerance.
        assert expected[top[0]["index"]] >= expected.max() - 2 * ATOL[key]
    if key != "int8":  # float files rank exactly as Keras does
        ranked = [[t["index"] for t in r["top_k"]] for r in doc["results"]]
        assert ranked == [list(np.argsort(-p, kind="stable")[:3]) for p in reference]


def test_table_output_shows_the_same_ranking(files, images):
    model, image = files["paths"]["fp32"], images[7]
    doc = json.loads(_edgekit("predict", model, image, "--top-k", 4, "--json").stdout)
    result = _edgekit("predict", model, image, "--top-k", 4)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{image}  (litert, ")
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines()
            if line.startswith("│")]
    expected = [[t["label"], str(t["index"]), f"{t['probability']:.4f}"] for t in doc["results"][0]["top_k"]]
    assert rows == expected


def test_top_k_larger_than_the_classes_lists_them_all(files, images):
    doc = json.loads(_edgekit("predict", files["paths"]["fp32"], images[0], "--top-k", 50, "--json").stdout)
    top = doc["results"][0]["top_k"]
    assert sorted(t["index"] for t in top) == list(range(len(CLASS_NAMES)))
    assert sum(t["probability"] for t in top) == pytest.approx(1.0, abs=1e-5)


def test_uint8_npy_image_is_prepared_like_the_png(files, images, tmp_path):
    array = tmp_path / "image.npy"
    np.save(array, np.asarray(Image.open(images[3])))
    from_png = json.loads(_edgekit("predict", files["paths"]["fp32"], images[3], "--json").stdout)
    from_npy = json.loads(_edgekit("predict", files["paths"]["fp32"], array, "--json").stdout)
    assert from_npy["results"][0]["top_k"] == from_png["results"][0]["top_k"]


@pytest.mark.parametrize("batch_axis", [False, True])
def test_raw_runs_a_file_without_metadata(files, images, tmp_path, batch_axis):
    pixels = np.asarray(Image.open(images[2]), np.float32)[..., None]
    prepared = (pixels - 127.5) / 127.5
    array = tmp_path / "prepared.npy"
    np.save(array, prepared[None] if batch_axis else prepared)
    result = _edgekit("predict", files["paths"]["plain"], array, "--raw", "--top-k", 2, "--json")
    assert result.exit_code == 0, result.stderr
    top = json.loads(result.stdout)["results"][0]["top_k"]
    expected = _keras_probs(files, [images[2]])[0]
    assert [t["label"] for t in top] == [str(t["index"]) for t in top]  # no metadata: indices as labels
    assert [t["index"] for t in top] == list(np.argsort(-expected)[:2])
    np.testing.assert_allclose([t["probability"] for t in top], np.sort(expected)[::-1][:2], atol=1e-5)


def test_raw_int8_array_is_fed_unquantized(files, images, tmp_path):
    from edgekit.runtime import Model

    (inp,) = Model(files["paths"]["int8"]).inputs
    scale, zero_point = inp.quantization.scale, inp.quantization.zero_point
    prepared = (np.asarray(Image.open(images[5]), np.float32)[..., None] - 127.5) / 127.5
    quantized = np.clip(np.rint(prepared / np.float32(scale) + zero_point), -128, 127).astype(np.int8)
    np.save(tmp_path / "float.npy", prepared)
    np.save(tmp_path / "int8.npy", quantized)
    np.save(tmp_path / "off_by_one.npy", np.clip(quantized.astype(np.int16) + 40, -128, 127).astype(np.int8))
    runs = {name: json.loads(_edgekit("predict", files["paths"]["int8"], tmp_path / f"{name}.npy", "--raw",
                                      "--top-k", 10, "--json").stdout)["results"][0]["top_k"]
            for name in ("float", "int8", "off_by_one")}
    assert runs["int8"] == runs["float"]
    assert runs["off_by_one"] != runs["int8"]  # the int8 array really is what the model sees


def _bad_png(folder):
    path = folder / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return path


def _truncated_png(folder):
    data = sample_images()[0].read_bytes()
    path = folder / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _float_npy(folder):
    path = folder / "float.npy"
    np.save(path, np.zeros((SIZE, SIZE), np.float32))
    return path


def _bad_npy(folder):
    path = folder / "bad.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    return path


def _npy_of_shape(shape, dtype=np.float32):
    def make(folder):
        path = folder / "prepared.npy"
        np.save(path, np.zeros(shape, dtype))
        return path
    return make


def _not_a_model(folder):
    path = folder / "noise.tflite"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _folder_png(folder):
    (folder / "dir.png").mkdir()
    return folder / "dir.png"


def _gif(folder):
    path = folder / "image.gif"
    path.write_bytes(b"GIF89a")
    return path


# (model key or a maker of a bad model file, input maker or None for a good image, extra args, needle)
ERRORS = {
    "missing model": (lambda d: d / "nope.tflite", None, [], "does not exist"),
    "not a model": (_not_a_model, None, [], "not a TFLite file"),
    "model suffix": (lambda d: d / "model.bin", None, [], "suffix '.bin'; expected one of .tflite, .onnx, .ort"),
    "no metadata": ("plain", None, [], "carries no edgekit metadata"),
    "missing image": ("fp32", lambda d: d / "missing.png", [], "image file .*missing.png' does not exist"),
    "image is a folder": ("fp32", _folder_png, [], "image .*dir.png' is not a regular file"),
    "image without suffix": ("fp32", lambda d: d / "image", [], "image .*image' has no suffix; expected one of"),
    "corrupt png": ("fp32", _bad_png, [], "cannot read image .*bad.png"),
    "truncated png": ("fp32", _truncated_png, [], "cannot read image .*truncated.png"),
    "gif": ("fp32", _gif, [], r"suffix '\.gif'; expected one of \.png, \.jpg, \.jpeg, \.bmp, \.npy"),
    "float npy without --raw": ("fp32", _float_npy, [], "holds a float32 array .*expected a uint8 image"),
    "corrupt npy": ("fp32", _bad_npy, [], "cannot read array .*bad.npy"),
    "--raw with a png": ("fp32", None, ["--raw"], "--raw takes .npy arrays"),
    "--raw wrong shape": ("fp32", _npy_of_shape((2, SIZE, SIZE, 1)), ["--raw"],
                          r"shape \(2, 28, 28, 1\); --raw expects one sample of input 'image', shape \(28, 28, 1\)"),
    "--raw wrong size": ("fp32", _npy_of_shape((SIZE, 20, 1)), ["--raw"], r"got shape \(1, 28, 20, 1\)"),
    "--raw wrong dtype": ("fp32", _npy_of_shape((SIZE, SIZE, 1), np.int32), ["--raw"], "got dtype int32"),
    "top-k 0": ("fp32", None, ["--top-k", "0"], "Invalid value for '--top-k'"),
    "unknown backend": ("fp32", None, ["--backend", "tpu"], "Invalid value for '--backend'"),
    "backend for the other format": ("fp32", None, ["--backend", "onnxruntime"], "cannot run .tflite files"),
    "threads 0": ("fp32", None, ["--threads", "0"], "Invalid value for '--threads'"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_is_one_line_and_exit_2(files, images, tmp_path, case):
    model, make_input, extra, needle = ERRORS[case]
    model_path = files["paths"][model] if isinstance(model, str) else model(tmp_path)
    image = images[0] if make_input is None else make_input(tmp_path)
    result = _edgekit("predict", model_path, image, *extra, "--json")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:"), result.stderr
    assert re.search(needle, lines[0]), lines[0]


def test_no_images_is_a_usage_error(files):
    result = _edgekit("predict", files["paths"]["fp32"])
    assert result.exit_code == 2 and "Missing argument 'IMAGES...'" in result.stderr


def test_a_bad_image_among_good_ones_prints_nothing(files, images, tmp_path):
    result = _edgekit("predict", files["paths"]["fp32"], *images[:3], _bad_png(tmp_path), *images[3:])
    assert result.exit_code == 2 and result.stdout == ""


# -- the device path: no TensorFlow (and no Pillow) in the process ------------------------------


def _device_run(env, *args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_the_blocker_blocks(tmp_path):
    env = no_tensorflow_env(tmp_path / "site")
    result = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode != 0 and f"{BLOCKED_MARK} tensorflow" in result.stderr


@pytest.mark.parametrize("key", ["int8", "onnx"])
def test_predict_runs_without_tensorflow(files, images, tmp_path, key):
    env = no_tensorflow_env(tmp_path / "site")
    result = _device_run(env, "predict", files["paths"][key], *images[:4], "--top-k", 3, "--json")
    assert result.returncode == 0, result.stderr
    assert BLOCKED_MARK not in result.stderr
    in_process = json.loads(_edgekit("predict", files["paths"][key], *images[:4], "--top-k", 3, "--json").stdout)
    device = json.loads(result.stdout)
    assert [r["top_k"] for r in device["results"]] == [r["top_k"] for r in in_process["results"]]
    # An error found after the model loaded: still one line (the backend's start-up note is silenced).
    bad = _device_run(env, "predict", files["paths"][key], _bad_png(tmp_path))
    assert bad.returncode == 2
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith(f"edgekit: error: cannot read image '{tmp_path / 'bad.png'}'")


def test_without_pillow_png_is_one_line_and_npy_works(files, images, tmp_path):
    env = no_tensorflow_env(tmp_path / "site", also_block=("PIL",))
    png = _device_run(env, "predict", files["paths"]["fp32"], images[0])
    assert png.returncode == 2
    (line,) = [x for x in png.stderr.strip().splitlines() if not x.startswith(f"{BLOCKED_MARK} PIL")]
    assert line.startswith("edgekit: error:") and "needs Pillow, which is not installed" in line
    array = tmp_path / "image.npy"
    np.save(array, np.asarray(Image.open(images[0])))
    npy = _device_run(env, "predict", files["paths"]["fp32"], array, "--json")
    assert npy.returncode == 0, npy.stderr
    assert BLOCKED_MARK not in npy.stderr  # .npy images need neither Pillow nor TensorFlow
    assert json.loads(npy.stdout)["results"][0]["top_k"][0]["label"] in CLASS_NAMES
