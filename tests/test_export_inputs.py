"""Camera-ready inputs (issue 12): the input adapter's arithmetic against edgekit's own
preprocessing, the I/O forms of int8 TFLite, RGB input for grayscale models, embeddings, the
uint8 frame fast path, and the one-line refusals of options a file cannot take."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from export_helpers import SAMPLE


def _forms():
    from edgekit.export import InputColor, InputForm
    from edgekit.runtime import PreprocessSpec

    gray = PreprocessSpec(size=(8, 6), channels=1)
    imagenet = PreprocessSpec(size=(8, 6), channels=3, mean=(123.68, 116.78, 103.94), std=(58.4, 57.12, 57.38))
    return [InputForm.choose(gray, InputColor.RGB, pixels=False), InputForm.choose(gray, InputColor.RGB, pixels=True),
            InputForm.choose(gray, InputColor.NATIVE, pixels=True), InputForm.choose(imagenet, InputColor.RGB, pixels=True),
            InputForm.choose(imagenet, InputColor.RGB, pixels=False)]


@pytest.mark.parametrize("form", _forms(), ids=lambda f: f"{f.native.channels}ch-{f.key}")
def test_adapter_computes_what_edgekit_preprocessing_computes(form):
    """The file's input prepared by its own metadata, through the adapter's 1x1 convolution,
    equals the trained model's input prepared by edgekit's preprocessing from the same image."""
    from edgekit.runtime.preprocess import preprocess

    image = np.random.default_rng(1).integers(0, 256, (8, 6, form.channels), dtype=np.uint8)
    file_input = preprocess(image, form.spec())
    kernel, bias = form.adapter_weights()
    adapted = file_input @ kernel[0, 0].astype(np.float64) + bias
    want = preprocess(image, form.native)
    np.testing.assert_allclose(adapted, want, atol=2e-5)
    np.testing.assert_allclose(form.to_native(file_input[None])[0], want, atol=2e-5)


@pytest.mark.parametrize("form", _forms(), ids=lambda f: f"{f.native.channels}ch-{f.key}")
def test_from_native_gives_the_file_input_of_the_same_image(form):
    """Calibration and validation images converted to a form equal what the runtime prepares
    from the same image (a gray image repeated to RGB, as Pillow converts it)."""
    from edgekit.runtime.preprocess import convert_channels, preprocess

    gray_or_rgb = np.random.default_rng(2).integers(0, 256, (8, 6, form.native.channels), dtype=np.uint8)
    native = preprocess(gray_or_rgb, form.native)
    as_file_image = convert_channels(gray_or_rgb.astype(np.float32), form.channels).astype(np.uint8)
    np.testing.assert_allclose(form.from_native(native[None])[0], preprocess(as_file_image, form.spec()), atol=1e-4)


def test_cli_choices_are_the_enums():
    """A new Enum member (an I/O type, a quantization format) is a new CLI choice with no other edit."""
    import click

    from edgekit.cli.export_cmd import export_command
    from edgekit.export import InputColor, IoType
    from edgekit.export.options import ActivationType, CalibrationMethod, Int8Head, OnnxQuantFormat

    choices = {p.name: list(p.type.choices) for p in export_command.params if isinstance(p.type, click.Choice)}
    assert choices == {"calibration_method": [m.value for m in CalibrationMethod], "io": [m.value for m in IoType],
                       "input_color": [m.value for m in InputColor], "int8_head": [m.value for m in Int8Head],
                       "onnx_quant_format": [m.value for m in OnnxQuantFormat],
                       "onnx_activation_type": [m.value for m in ActivationType]}


@pytest.mark.parametrize("kwargs, message", [
    ({"io": "int4"}, "--io got 'int4'; expected one of auto, uint8, int8, float"),
    ({"input_color": "bgr"}, "--input-color got 'bgr'; expected one of rgb, native"),
    ({"io": "int8", "float_io": True}, "--float-io and --io int8 contradict"),
])
def test_options_refuse_bad_values(kwargs, message):
    from edgekit.export import ExportOptions

    with pytest.raises(ValueError, match=message):
        ExportOptions(**kwargs)


@pytest.fixture(scope="module")
def default_int8(run_dir, tmp_path_factory):  # noqa: F811
    from edgekit.export import ExportOptions, Precision, export_model

    out = tmp_path_factory.mktemp("int8")
    report = export_model(run_dir, ExportOptions(precisions=(Precision.FP32, Precision.INT8), out_dir=out),
                          log=lambda line: None)
    return {f.target.precision.value: f for f in report.files}


def test_uint8_frame_goes_in_with_no_float_conversion(default_int8, monkeypatch):
    """A frame of the input's size reaches the interpreter as the same uint8 array: neither
    preprocess nor the quantizer runs, and the scores equal the float path's."""
    from edgekit.runtime import Model
    from edgekit.runtime import model as model_module

    m = Model(default_int8["int8"].path)
    frame = np.random.default_rng(3).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    assert m.prepare(frame) is frame
    float_path = m.predict(m.preprocess(frame)[None])
    monkeypatch.setattr(Model, "preprocess", lambda *a: pytest.fail("a frame must not be preprocessed"))
    monkeypatch.setattr(model_module._Input, "_quantize", lambda *a: pytest.fail("a frame must not be quantized"))
    fed = []
    run = m._engine.run
    monkeypatch.setattr(m._engine, "run", lambda arrays: fed.append(arrays[0]) or run(arrays))
    scores = m.predict(m.prepare(frame)[None])
    assert fed[0].dtype == np.uint8 and np.shares_memory(fed[0], frame)
    np.testing.assert_array_equal(scores, float_path)
    assert m.classify(frame)[0][0] in m.metadata.class_names


def test_gray_image_file_classifies_the_same_through_every_form(default_int8):
    """A grayscale PNG read for the RGB input: the int8 and fp32 files agree with the Keras
    model's class on real sample images far more often than not (validated in the export)."""
    from edgekit.runtime import Model

    fp32, int8 = Model(default_int8["fp32"].path), Model(default_int8["int8"].path)
    images = sorted((SAMPLE / "test").glob("*/*.png"))[::10]
    same = [fp32.classify(p, top_k=1)[0][0] == int8.classify(p, top_k=1)[0][0] for p in images]
    assert np.mean(same) >= 0.85
    assert default_int8["int8"].validation.agreement >= 0.9


@pytest.mark.parametrize("io, color, want_in, want_out, channels", [
    ("int8", "rgb", "int8", "int8", 3),
    ("float", "native", "float32", "float32", 1),
    ("uint8", "native", "uint8", "float32", 1),
])
def test_io_and_color_options_give_those_tensors(run_dir, tmp_path, io, color, want_in, want_out, channels):  # noqa: F811
    from edgekit.export import ExportOptions, Precision, export_model
    from edgekit.runtime import Model

    report = export_model(run_dir, ExportOptions(precisions=(Precision.INT8,), io=io, input_color=color,
                                                 out_dir=tmp_path), log=lambda line: None)
    (f,) = report.files
    m = Model(f.path)
    assert (str(m.inputs[0].dtype), str(m.outputs[0].dtype), m.inputs[0].shape[-1]) == (want_in, want_out, channels)
    assert f.validation.agreement >= 0.9 and m.metadata.preprocess.channels == channels


def test_embedding_export_gives_the_pooled_features(run_dir, tmp_path):  # noqa: F811
    import keras

    from edgekit.export import ExportOptions, Format, Precision, export_model
    from edgekit.runtime import Model, RuntimeModelError

    report = export_model(run_dir, ExportOptions(formats=(Format.TFLITE, Format.ONNX), embedding=True,
                                                 precisions=(Precision.FP32, Precision.INT8), out_dir=tmp_path),
                          log=lambda line: None)
    width = keras.models.load_model(run_dir / "model.keras", compile=False).get_layer("gap").output.shape[-1]
    for f in report.files:
        m = Model(f.path)
        assert m.is_embedding and m.outputs[0].shape[-1] == width and m.metadata.class_names == ()
        want = 0.99999 if f.target.precision.value == "fp32" else 0.98
        assert f.validation.min_cosine >= want and f.validation.accuracy is None, (f.target.key, f.validation)
        vector = m.embed(next((SAMPLE / "test").glob("*/*.png")))
        assert vector.shape == (width,) and vector.dtype == np.float32
        with pytest.raises(RuntimeModelError, match="embedding model .* use embed"):
            m.classify(np.zeros((28, 28, 3), np.uint8))


def _edgekit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)},
                          timeout=600)


def _assert_one_line_error(p, *fragments):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and p.stdout == "", p.stderr
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: ") and "Traceback" not in p.stderr, p.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_io_for_files_that_cannot_take_it_is_refused(run_dir, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    p = _edgekit("export", run_dir, "--format", "tflite,onnx", "--quantize", "fp32", "--io", "uint8", "--out", out)
    _assert_one_line_error(p, "--io uint8", "tflite/fp32, onnx/fp32")
    p = _edgekit("export", run_dir, "--io", "int16", "--out", out)
    _assert_one_line_error(p, "int16")
    assert not out.exists()


def test_class_names_that_do_not_fit_the_output_are_refused(run_dir, tmp_path):  # noqa: F811
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    info = json.loads((run / "edgekit.json").read_text())
    info["class_names"] = info["class_names"][:7]
    (run / "edgekit.json").write_text(json.dumps(info))
    before = sorted(os.listdir(run))
    p = _edgekit("export", run)
    _assert_one_line_error(p, "7 class names", "outputs 10 scores")
    assert sorted(os.listdir(run)) == before


def test_model_with_two_inputs_or_a_non_image_input_is_refused(tmp_path):
    import keras

    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(a + b)))
    two.save(tmp_path / "two.keras")
    vec = keras.Input((10,))
    flat = keras.Model(vec, keras.layers.Dense(2)(vec))
    flat.save(tmp_path / "flat.keras")
    before = sorted(os.listdir(tmp_path))
    _assert_one_line_error(_edgekit("export", tmp_path / "two.keras"), "2 inputs")
    _assert_one_line_error(_edgekit("export", tmp_path / "flat.keras"), "input shape")
    assert sorted(os.listdir(tmp_path)) == before


def _upsampling_forms():
    """Forms of a gray model trained on 28x28 images resized to 32x32 and normalised to
    [-1, 1]: bilinear upsampling makes pixels that fall halfway between two integers."""
    from edgekit.export import InputColor, InputForm
    from edgekit.runtime import PreprocessSpec

    native = PreprocessSpec(size=(32, 32), channels=1, mean=(127.5,), std=(127.5,))
    return [InputForm.choose(native, color, pixels) for color in InputColor for pixels in (True, False)]


@pytest.mark.parametrize("form", _upsampling_forms(), ids=lambda f: f"{f.native.channels}ch-{f.key}")
def test_validation_inputs_are_what_the_runtime_makes_of_each_image(form):
    """Issue 13, item 0: the inputs export validates a file on are, bit for bit, the ones
    ``edgekit.runtime`` prepares from the same images (what ``edgekit evaluate FILE`` feeds it),
    so the report's accuracy is the file's. Recovering pixels from the normalised inputs in float
    would miss ties (x.5) by an ulp, which a uint8 input then rounds the other way."""
    from edgekit.data import load_split
    from edgekit.export.datasets import load_validation
    from edgekit.runtime import load_image
    from edgekit.runtime.preprocess import preprocess

    validation = load_validation(str(SAMPLE), form.native, 200, 10)
    paths = load_split(str(SAMPLE), "test").sample(200, seed=0).images  # read as edgekit evaluate reads them

    def prepared(spec):
        return np.stack([preprocess(load_image(p, spec.channels), spec) for p in paths])

    want = prepared(form.spec())
    got = form.from_pixels(validation.pixels)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
    assert np.array_equal(validation.inputs, prepared(form.native))
    if form.pixels:  # the ties this guards against are there: pixels exactly halfway
        assert np.any(np.modf(want)[0] == 0.5)
