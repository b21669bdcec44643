"""``edgekit filters`` (issue 17): the reference filters, the notes' 6x6 example, kernels read
from every format in the right layout (int8 dequantized), similarity 1.0 for a layer set to
the references, low similarity and no dead kernels at random initialisation, dead and
duplicate flags, response maps, and one-line refusals that leave no file behind.

The reference kernels are those of the course notes behind edgekit (Andrew Ng, "Convolutional
Neural Networks", week 1: "Edge detection" and "More edge detection"), as issue 17 quotes them
(/work/shared/REFERENCE.md has the convolution arithmetic, not these kernels): vertical edge
[[1, 0, -1]] x 3, Sobel x [[1, 0, -1], [2, 0, -2], [1, 0, -1]], Scharr x
[[3, 0, -3], [10, 0, -10], [3, 0, -3]], each y filter the transpose. The 45-degree Sobel
kernels are the diagonal Sobel masks of Gonzalez & Woods, "Digital Image Processing"
(up to sign).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from edgekit.cli.main import main
from edgekit.filters import (REFERENCES, ConvKernels, correlate2d, filter_report, match_kernels, notes_example,
                             read_conv, reference_filters, resize_kernel, rotate45)
from edgekit.filters.analysis import chance_similarity, dead_kernels, most_edge_like, response_maps

NAMES = list(REFERENCES)
SIZE = 16  # input side of the test models
FORMATS = ["keras", "tflite", "tflite_fp16", "tflite_int8", "onnx", "onnx_int8", "onnx_qop"]
STORAGE = {"tflite_fp16": "float16", "tflite_int8": "int8 per-channel", "onnx_int8": "int8 per-channel",
           "onnx_qop": "int8 per-channel"}


# -- the reference filters and the notes' example (numpy only) ------------------------------

def test_reference_filters_equal_the_published_kernels():
    edge = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]
    sobel = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    scharr = [[3, 0, -3], [10, 0, -10], [3, 0, -3]]
    published = {"vertical": edge, "horizontal": np.transpose(edge), "sobel_x": sobel, "sobel_y": np.transpose(sobel),
                 "scharr_x": scharr, "scharr_y": np.transpose(scharr),
                 "sobel_x_45": [[2, 1, 0], [1, 0, -1], [0, -1, -2]], "sobel_y_45": [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
                 "scharr_x_45": [[10, 3, 0], [3, 0, -3], [0, -3, -10]],
                 "vertical_45": [[1, 1, 0], [1, 0, -1], [0, -1, -1]]}
    assert len(REFERENCES) == 12 and all(k.shape == (3, 3) and k.dtype == np.float32 for k in REFERENCES.values())
    for name, kernel in published.items():
        np.testing.assert_array_equal(REFERENCES[name], np.asarray(kernel, np.float32), err_msg=name)
    for name in NAMES[:6]:  # two 45-degree turns are one 90-degree turn: x -> y
        turned = rotate45(rotate45(REFERENCES[name]))
        twin = name.replace("_x", "_y") if "_x" in name else "horizontal" if name == "vertical" else None
        if twin:
            np.testing.assert_array_equal(turned, REFERENCES[twin])
    eight = REFERENCES["sobel_x"]
    for _ in range(8):
        eight = rotate45(eight)
    np.testing.assert_array_equal(eight, REFERENCES["sobel_x"])


def test_notes_6x6_example_gives_the_bright_band():
    image, kernel = notes_example()
    np.testing.assert_array_equal(image, [[10, 10, 10, 0, 0, 0]] * 6)
    np.testing.assert_array_equal(correlate2d(image, kernel), [[0, 30, 30, 0]] * 4)
    np.testing.assert_array_equal(correlate2d(image, kernel, stride=2), [[0, 30]] * 2)


def test_correlate2d_is_what_keras_calls_convolution():
    import keras

    rng = np.random.default_rng(1)
    image, kernel = rng.standard_normal((7, 9, 3)).astype(np.float32), rng.standard_normal((3, 3, 3)).astype(np.float32)
    want = keras.ops.convert_to_numpy(keras.ops.conv(image[None], kernel[..., None], strides=2, padding="valid"))
    np.testing.assert_allclose(correlate2d(image, kernel, stride=2), want[0, ..., 0], rtol=1e-5, atol=1e-5)


def test_resized_references_keep_their_shape():
    big = reference_filters((5, 5))
    np.testing.assert_allclose(big["sobel_x"][2], [2, 1, 0, -1, -2])
    np.testing.assert_array_equal(big["vertical"][:, 2], 0)
    np.testing.assert_array_equal(resize_kernel(REFERENCES["scharr_y"], (3, 3)), REFERENCES["scharr_y"])
    assert reference_filters((7, 3))["horizontal"].shape == (7, 3)


def test_random_kernels_score_chance_and_a_zeroed_kernel_is_dead():
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((32, 3, 3, 1)).astype(np.float32)
    weights[5] = 0
    matches = match_kernels(ConvKernels("conv", weights))
    assert [m.index for m in matches if m.dead] == [5] and matches[5].reference is None
    live = [m.cosine for m in matches if not m.dead]
    assert np.mean(live) < 0.65 and abs(np.mean(live) - chance_similarity((3, 3))) < 0.1
    assert all(m.duplicate_of is None for m in matches)
    assert dead_kernels(np.zeros((4, 3, 3, 1))).all()  # an all-zero layer: every kernel dead


def test_duplicates_point_at_the_first_copy():
    sobel = REFERENCES["sobel_x"][..., None]
    weights = np.stack([sobel, REFERENCES["horizontal"][..., None], 3 * sobel, -sobel])
    matches = match_kernels(ConvKernels("conv", weights))
    assert [m.duplicate_of for m in matches] == [None, None, 0, None]  # the negated one detects the other polarity
    assert [m.sign for m in matches] == [1, 1, 1, -1]
    assert [m.index for m in most_edge_like(matches, 6)] == [0, 1, 3]


# -- models in every format -----------------------------------------------------------------

def _stem_kernel() -> np.ndarray:
    """(3, 3, 3, 12): input channel c of kernel k is reference (k + c) % 12, so that a swap of
    any two axes shows."""
    refs = np.stack(list(REFERENCES.values()))
    return np.stack([np.stack([refs[(k + c) % 12] for c in range(3)], -1) for k in range(12)], -1)


def _model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(12, 3, strides=2, name="stem")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(8, 1, name="pw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(3, name="fc")(x))
    model.get_layer("stem").kernel.assign(_stem_kernel())
    model.get_layer("dw").kernel.assign(np.stack(list(REFERENCES.values()), -1)[:, :, :, None])
    return model


def _convert(model, folder: Path, name: str) -> dict[str, Path]:
    """NAME.keras, fp32, fp16 and int8 .tflite (through a SavedModel, as edgekit export does),
    fp32 and int8 (QDQ and QOperator) .onnx."""
    import tensorflow as tf
    from onnxruntime import quantization as q

    from edgekit.export.onnx_convert import INPUT_NAME, keras_to_onnx

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    paths = {"keras": folder / f"{name}.keras", "tflite": folder / f"{name}.tflite",
             "tflite_int8": folder / f"{name}_int8.tflite", "onnx": folder / f"{name}.onnx",
             "onnx_int8": folder / f"{name}_int8.onnx", "onnx_qop": folder / f"{name}_qop.onnx",
             "tflite_fp16": folder / f"{name}_fp16.tflite"}
    model.save(paths["keras"])
    saved = folder / f"{name}_saved"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    paths["tflite_fp16"].write_bytes(converter.convert())
    rng = np.random.default_rng(0)
    samples = [rng.uniform(-1, 1, (1, *shape)).astype(np.float32) for _ in range(4)]
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    paths["tflite_int8"].write_bytes(converter.convert())
    paths["onnx"].write_bytes(keras_to_onnx(model, shape, nchw=False))

    class Reader:
        def __init__(self):
            self.batches = iter([{INPUT_NAME: s} for s in samples])

        def get_next(self):
            return next(self.batches, None)

    for key, fmt in (("onnx_int8", q.QuantFormat.QDQ), ("onnx_qop", q.QuantFormat.QOperator)):
        q.quantize_static(str(paths["onnx"]), str(paths[key]), Reader(), quant_format=fmt,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, per_channel=True)
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("filters")
    paths = _convert(_model(), folder, "ref")
    inp = keras.Input((8,))
    keras.Model(inp, keras.layers.Dense(2, name="fc")(inp)).save(folder / "dense.keras")
    paths["dense"] = folder / "dense.keras"
    return paths


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_kernels_in_the_same_layout(files, fmt):
    conv = read_conv(files[fmt])
    assert conv.source == fmt.split("_")[0] and conv.stride == (2, 2) and not conv.depthwise
    assert conv.weights.shape == (12, 3, 3, 3) and conv.kernel_size == (3, 3) and conv.in_channels == 3
    assert conv.storage == STORAGE.get(fmt, "float32")
    want = _stem_kernel().transpose(3, 0, 1, 2)
    scale = np.abs(want).reshape(12, -1).max(axis=1)[:, None, None, None]
    if fmt in ("keras", "tflite", "tflite_fp16", "onnx"):  # the references are exact in float16 too
        np.testing.assert_array_equal(conv.weights, want)
    else:  # within half an int8 step of each kernel's per-channel scale
        np.testing.assert_allclose(conv.weights / scale, want / scale, atol=0.5 / 127 + 1e-6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_layer_set_to_the_references_scores_one(files, fmt):
    for channel in range(3):
        matches = match_kernels(read_conv(files[fmt]), channel=channel)
        assert [m.reference for m in matches] == [NAMES[(k + channel) % 12] for k in range(12)]
        assert min(m.cosine for m in matches) > (0.999 if fmt in STORAGE else 0.999999)
        assert all(m.sign == 1 and not m.dead for m in matches)


@pytest.mark.parametrize("fmt", FORMATS)
def test_layer_picks_a_depthwise_convolution(files, fmt):
    conv = read_conv(files[fmt], layer="dw")
    assert conv.depthwise and conv.weights.shape == (12, 3, 3, 1) and conv.stride == (1, 1)
    matches = match_kernels(conv)
    assert [m.reference for m in matches] == NAMES and min(m.cosine for m in matches) > 0.999


@pytest.mark.parametrize("fmt", ["tflite_fp16", "tflite_int8", "onnx_int8", "onnx_qop"])
def test_int8_files_match_their_float_figures(files, fmt):
    # the channel mean of this layer sits between references, so its best match is a near tie
    fp32 = match_kernels(read_conv(files[fmt.split("_")[0]]), channel=0)
    int8 = match_kernels(read_conv(files[fmt]), channel=0)
    assert [m.reference for m in int8] == [m.reference for m in fp32]
    assert max(abs(a.cosine - b.cosine) for a, b in zip(fp32, int8)) < 0.02


def test_random_init_mobilenet_reports_low_similarity_and_no_dead_kernels(tmp_path):
    from edgekit.models import create_model

    path = tmp_path / "random.keras"
    create_model("mobilenet_v2", alpha=0.35, input_shape=(32, 32, 3), num_classes=10).save(path)
    report = filter_report(path, None)
    assert report.conv.name == "Conv1" and report.conv.stride == (2, 2) and report.conv.weights.shape == (16, 3, 3, 3)
    summary = report.summary()
    assert summary["dead"] == 0 and summary["duplicates"] == 0
    assert summary["mean_cosine"] < 0.65


def test_a_zeroed_kernel_is_flagged_dead(files, tmp_path):
    from edgekit.models.safe_load import load_keras_model

    model = load_keras_model(files["keras"])
    kernel = model.get_layer("stem").get_weights()
    kernel[0][..., 4] = 0
    model.get_layer("stem").set_weights(kernel)
    model.save(tmp_path / "dead.keras")
    matches = match_kernels(read_conv(tmp_path / "dead.keras"))
    assert [m.index for m in matches if m.dead] == [4]


def test_response_maps_of_the_most_edge_like_kernels(files):
    conv = read_conv(files["tflite"])
    image = np.zeros((10, 12, 3), np.uint8)
    image[:, :6] = 200  # bright left half: a vertical edge
    maps = dict(response_maps(image, conv, most_edge_like(match_kernels(conv, channel=0), 6)))
    assert list(maps)[-2:] == ["sobel_x", "sobel_y"] and len(maps) == 8
    np.testing.assert_allclose(maps["sobel_x"][:, 4:6], 800)  # 200 x (1 + 2 + 1), in the band only
    np.testing.assert_array_equal(maps["sobel_x"][:, :4], 0)
    np.testing.assert_array_equal(maps["sobel_y"], 0)


def test_tflite_and_onnx_run_where_tensorflow_cannot_be_imported(files, tmp_path):
    """As on a device: ``edgekit filters`` in a process where importing TensorFlow fails."""
    from device_helpers import BLOCKED_MARK, no_tensorflow_env

    env = no_tensorflow_env(tmp_path / "site")
    image = tmp_path / "grey.png"
    from PIL import Image

    Image.fromarray(np.arange(400, dtype=np.uint8).reshape(20, 20)).save(image)
    for fmt in ("tflite_int8", "onnx_int8"):
        out = subprocess.run([sys.executable, "-m", "edgekit.cli", "filters", str(files[fmt]), "--image", str(image),
                              "--out", str(tmp_path / f"{fmt}.png"), "--json"],
                             capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
        assert out.returncode == 0 and BLOCKED_MARK not in out.stderr, out.stderr
        assert json.loads(out.stdout)["storage"] == "int8 per-channel"


# -- the command line -----------------------------------------------------------------------

def _edgekit(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_json_is_one_document_and_the_png_is_written(files, tmp_path):
    image = tmp_path / "edge.png"
    from PIL import Image

    pixels = np.zeros((20, 20), np.uint8)
    pixels[:, :10] = 255
    Image.fromarray(pixels).save(image)
    result = _edgekit("filters", files["onnx_int8"], "--out", tmp_path / "f.png", "--image", image,
                      "--channel", 1, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "edgekit.filters/1" and doc["stride"] == [2, 2] and doc["storage"] == "int8 per-channel"
    assert [k["reference"] for k in doc["kernels"]] == [NAMES[(k + 1) % 12] for k in range(12)]
    assert doc["summary"]["dead"] == 0 and doc["summary"]["duplicates"] == 0  # alike in one channel, not in all
    assert len(doc["responses"]) == 8 and doc["picture"] == str(tmp_path / "f.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.png", "f.png"]
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_says_the_layer_is_strided(files, tmp_path):
    result = _edgekit("filters", files["keras"], "--layer", "stem", "--out", tmp_path / "sub" / "f.png")
    assert result.exit_code == 0, result.stderr
    assert "strided (2x2)" in result.stdout and "stem: 12 kernels 3x3x3" in result.stdout
    assert "0 dead, 0 duplicate" in result.stdout
    assert (tmp_path / "sub" / "f.png").is_file()


def _refused(args, tmp_path, needle: str) -> str:
    before = sorted(tmp_path.rglob("*"))
    result = _edgekit("filters", *args, "--out", tmp_path / "out" / "f.png", "--json")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: ") and result.stdout == "", result.stderr
    assert needle in lines[0], lines[0]
    assert sorted(tmp_path.rglob("*")) == before, "files were left behind"
    return lines[0]


@pytest.mark.parametrize("case", ["no conv keras", "no conv tflite", "layer is dense", "no such layer",
                                  "layer is 1x1", "unreadable image", "missing image", "channel out of range"])
def test_bad_input_is_one_line_exit_2_and_no_file(files, tmp_path, case):
    bad_image = tmp_path / "bad.png"
    bad_image.write_bytes(b"not a png at all")
    args, needle = {
        "no conv keras": ([files["dense"]], "has no 2-D convolution"),
        "no conv tflite": ([files["tflite"], "--layer", "fc"], "not a 2-D convolution"),
        "layer is dense": ([files["keras"], "--layer", "fc"], "'fc' is a Dense, not a 2-D convolution"),
        "no such layer": ([files["onnx"], "--layer", "nosuch"], "names no layer"),
        "layer is 1x1": ([files["tflite_int8"], "--layer", "pw"], "1x1 convolution"),
        "unreadable image": ([files["tflite"], "--image", bad_image], f"cannot read image {str(bad_image)!r}"),
        "missing image": ([files["onnx"], "--image", tmp_path / "nope.png"], "does not exist"),
        "channel out of range": ([files["tflite"], "--channel", 3], "input channels 0..2"),
    }[case]
    _refused(args, tmp_path, needle)


def test_dc_share_caps_the_similarity():
    """A kernel = Sobel x + a brightness part: its similarity is sqrt(1 - dc_share)."""
    blob = np.ones((3, 3), np.float32)
    weights = np.stack([REFERENCES["sobel_x"], REFERENCES["sobel_x"] + blob, blob])[..., None]
    matches = match_kernels(ConvKernels("conv", weights))
    assert [m.dc_share for m in matches] == pytest.approx([0, 9 / (12 + 9), 1])
    assert matches[1].reference == "sobel_x" and matches[1].cosine == pytest.approx(np.sqrt(1 - 9 / 21))
    assert matches[2].cosine == pytest.approx(0, abs=1e-9)
