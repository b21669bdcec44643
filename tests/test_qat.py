"""Quantization-aware training (``edgekit qat``): the fake quantization, the QAT run folder,
resume, the learned ranges in the int8 TFLite and ONNX files, and bad input.

One tiny MobileNetV2 (alpha 0.35, 32x32) trained for a few seconds on the shipped real
Fashion-MNIST sample, fine-tuned with QAT for two epochs of two steps.

Each QAT run traces its training graph (tens of seconds on a 2-core box), so the default tests
share one uninterrupted run (``qat_run``: the run contract, the TFLite and ONNX scales, the
Keras-vs-file closeness) and resume from the checkpoint that run wrote after its first epoch;
the full kill-and-resume path is ``slow``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO
from run_helpers import assert_same_weights, interrupt_after_first_epoch
from export_helpers import SAMPLE, train_run

SPEC = dict(size=(32, 32), channels=1)
QAT = dict(epochs=2, batch_size=32, limit=64, lr=1e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from edgekit.models import create_model
    from edgekit.runtime import PreprocessSpec

    # BN momentum 0.9: a few dozen steps must give usable moving statistics.
    model = create_model("mobilenet_v2", (32, 32, 1), 10, alpha=0.35, bn_momentum=0.9)
    return train_run(tmp_path_factory.mktemp("runs") / "mnv2", model, PreprocessSpec(**SPEC), "mobilenet_v2", epochs=4)


@pytest.fixture(scope="module")
def qat_run_and_first_epoch(trained, tmp_path_factory):
    """The uninterrupted QAT run, and a copy of its work folder as its first epoch's checkpoint
    left it: byte for byte what a run killed after epoch 1 leaves behind."""
    from edgekit.qat import QatConfig, qat
    from edgekit.qat.run import partial_dir
    from edgekit.train import runstate

    out = tmp_path_factory.mktemp("qat") / "mnv2_qat"
    snapshot = tmp_path_factory.mktemp("cut") / partial_dir(out).name
    original = runstate.EpochCheckpoint.on_epoch_end

    def keep_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            shutil.copytree(partial_dir(out), snapshot)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runstate.EpochCheckpoint, "on_epoch_end", keep_first)
        qat(QatConfig(run=str(trained), out=str(out), **QAT))
    return out, snapshot


@pytest.fixture(scope="module")
def qat_run(qat_run_and_first_epoch):
    return qat_run_and_first_epoch[0]


@pytest.fixture(scope="module")
def qat_files(qat_run, tmp_path_factory):
    """int8 TFLite and ONNX of the QAT run with float I/O on the model's own input (so the
    Keras simulation takes the same tensors as the files)."""
    from edgekit.export import ExportOptions, Format, Precision, export_model

    out = tmp_path_factory.mktemp("qat_files")
    options = ExportOptions(formats=(Format.TFLITE, Format.ONNX), precisions=(Precision.INT8,), out_dir=out,
                            io="float", input_color="native", num_validation=32, num_calibration=16)
    report = export_model(qat_run, options, log=lambda line: None)
    return report, {f.target.format.value: f.path for f in report.files}


def _ranges(run) -> dict:
    return json.loads((run / "edgekit.json").read_text())["qat"]["ranges"]


def _qparams(low: float, high: float) -> tuple[float, int]:
    """int8 scale and zero point of [low, high], as the int8 spec computes them."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0
    return scale, int(np.clip(round(-128 - low / scale), -128, 127))


def _zero_points(r: dict) -> set[int]:
    """The zero point of a range; both neighbours when -128 - min/scale is (within float32
    error) half-way between two integers, where rounding half-even and half-away differ."""
    low, high = min(r["min"], 0.0), max(r["max"], 0.0)
    raw = -128 - low / ((high - low) / 255.0)
    tie = abs(abs(raw - np.floor(raw)) - 0.5) < 1e-3
    return {int(np.clip(v, -128, 127)) for v in ((np.floor(raw), np.ceil(raw)) if tie else (round(raw),))}


# -- the fake quantization itself -----------------------------------------------------------------

@pytest.mark.parametrize("low, high", [(-0.9, 1.3), (0.0, 6.0), (-3.7, 0.2), (0.5, 2.0)])  # no zero-point ties
def test_fake_quant_activation_is_int8_round_trip_with_straight_through_gradient(low, high):
    import tensorflow as tf

    from edgekit.qat.fake_quant import fake_quant_activation

    x = tf.constant(np.linspace(low - 1, high + 1, 1001, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fake_quant_activation(x, low, high)
    grad = tape.gradient(y, x).numpy()
    scale, zp = _qparams(low, high)
    expected = (np.clip(np.round(x.numpy() / scale) + zp, -128, 127) - zp) * scale
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-5 * max(1.0, abs(high)))
    lowest, highest = (-128 - zp) * scale, (127 - zp) * scale
    inside = (x.numpy() > lowest + 1e-4) & (x.numpy() < highest - 1e-4)
    assert np.all(grad[inside] == 1.0) and np.all(grad[(x.numpy() < lowest - 1e-4) | (x.numpy() > highest + 1e-4)] == 0)


def test_fake_quant_weights_symmetric_per_output_channel():
    from edgekit.qat.fake_quant import fake_quant_weights

    w = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32) * np.arange(1, 6, dtype=np.float32)
    q = np.asarray(fake_quant_weights(w, -1))
    scale = np.abs(w).max(axis=(0, 1, 2)) / 127
    steps = q / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # on each channel's own grid
    assert np.abs(steps).max() <= 127.001 and np.allclose(np.abs(steps).max(axis=(0, 1, 2)), 127, atol=1e-3)


# -- the QAT run ----------------------------------------------------------------------------------

def test_qat_run_is_an_edgekit_run_with_its_ranges(trained, qat_run):
    import keras

    for name in ("model.keras", "edgekit.json", "history.csv"):
        assert (qat_run / name).is_file()
    assert not any(p.name.startswith(".") for p in qat_run.parent.iterdir())  # no partial folder left
    info = json.loads((qat_run / "edgekit.json").read_text())
    assert info["architecture"] == "mobilenet_v2" and len(info["history"]["loss"]) == 2
    ranges = info["qat"]["ranges"]
    source = keras.models.load_model(trained / "model.keras", compile=False)
    convs = [layer.name for layer in source.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D")]
    adds = [layer.name for layer in source.layers if type(layer).__name__ == "Add"]
    covered = {name for r in ranges.values() for name in r["layers"]}
    assert set(convs) <= covered and set(adds) <= set(ranges) and "input_layer" in ranges
    assert all(r["min"] <= 0.0 <= r["max"] or r["min"] < r["max"] for r in ranges.values())
    assert ranges["Conv1_relu"]["min"] >= 0.0 and ranges["Conv1_relu"]["max"] <= 6.0  # a ReLU6 output
    # model.keras is the zoo's float model with the fine-tuned weights (the converters' input).
    tuned = keras.models.load_model(qat_run / "model.keras", compile=False)
    assert [layer.name for layer in tuned.layers] == [layer.name for layer in source.layers]
    assert not np.allclose(tuned.get_layer("Conv1").get_weights()[0], source.get_layer("Conv1").get_weights()[0])


def _assert_same_run(a, b):
    assert_same_weights(a, b)
    assert set(_ranges(a)) == set(_ranges(b))
    for key, r in _ranges(a).items():
        assert _ranges(b)[key]["min"] == pytest.approx(r["min"], rel=1e-5, abs=1e-6), key
        assert _ranges(b)[key]["max"] == pytest.approx(r["max"], rel=1e-5, abs=1e-6), key


def test_distillation_targets_are_the_source_runs_probabilities(trained, qat_run):
    """The default target: each training batch's soft targets are the original model's
    probabilities on that very (augmented) batch, and the metric QAT reports is the top-1
    agreement with it."""
    import keras

    from edgekit.data import load_split
    from edgekit.qat.run import _batches
    from edgekit.runtime import PreprocessSpec
    from edgekit.train.dataset import EpochData

    teacher = keras.models.load_model(trained / "model.keras", compile=False)
    feed = EpochData(load_split(SAMPLE, "train"), PreprocessSpec(**SPEC), 16, None, None, 0)
    x, soft = next(iter(_batches(feed, 0, 1, teacher)))
    np.testing.assert_allclose(soft.numpy(), np.asarray(teacher(x, training=False)), rtol=1e-5, atol=1e-6)
    x_plain, labels = next(iter(_batches(feed, 0, 1, None)))
    np.testing.assert_array_equal(x_plain.numpy(), x.numpy())
    assert labels.shape == (16,)
    info = json.loads((qat_run / "edgekit.json").read_text())
    assert "agreement" in info["history"] and "accuracy" not in info["history"]
    assert "distillation" in info["qat"]["target"]


def test_labels_target_fits_the_labels(trained, tmp_path):
    from edgekit.qat import QatConfig, qat

    meta = qat(QatConfig(run=str(trained), out=str(tmp_path / "labels"), target="labels",
                         **{**QAT, "epochs": 1}))
    assert "accuracy" in meta["history"] and "agreement" not in meta["history"]
    assert meta["qat"]["target"] == "the training labels"
    with pytest.raises(ValueError, match="--target got 'teacher'"):
        QatConfig(run=str(trained), out=str(tmp_path / "x"), target="teacher")


def test_resume_from_first_epoch_checkpoint_equals_uninterrupted(trained, qat_run_and_first_epoch, tmp_path):
    """--resume from the checkpoint the uninterrupted run wrote after epoch 1 ends where that
    run ended (weights and ranges); the kill itself is exercised by the slow test below."""
    from edgekit.qat import QatConfig, qat
    from edgekit.qat.run import partial_dir
    from edgekit.train import runstate

    qat_run, snapshot = qat_run_and_first_epoch
    out = tmp_path / "cut"
    shutil.copytree(snapshot, partial_dir(out))
    assert runstate.read_state(partial_dir(out))["epoch"] == 1
    with pytest.raises(ValueError, match="--resume"):
        qat(QatConfig(run=str(trained), out=str(out), **QAT))
    meta = qat(QatConfig(run=str(trained), out=str(out), resume=True, **QAT))
    assert len(meta["history"]["loss"]) == 1 and not partial_dir(out).exists()
    _assert_same_run(qat_run, out)


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted(trained, qat_run, tmp_path, monkeypatch):
    from edgekit.qat import QatConfig, qat
    from edgekit.qat.run import partial_dir
    from edgekit.train import runstate

    out = tmp_path / "cut"
    interrupt_after_first_epoch(monkeypatch, lambda: qat(QatConfig(run=str(trained), out=str(out), **QAT)))
    assert not out.exists() and runstate.read_state(partial_dir(out))["epoch"] == 1
    with pytest.raises(ValueError, match="--resume"):
        qat(QatConfig(run=str(trained), out=str(out), **QAT))
    meta = qat(QatConfig(run=str(trained), out=str(out), resume=True, **QAT))
    assert len(meta["history"]["loss"]) == 1 and not partial_dir(out).exists()
    _assert_same_run(qat_run, out)


# -- the learned ranges in the int8 files ---------------------------------------------------------

def test_tflite_tensor_scales_are_the_learned_ranges(qat_run, qat_files):
    from tensorflow.lite.tools import flatbuffer_utils

    report, paths = qat_files
    ranges = _ranges(qat_run)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(paths["tflite"].read_bytes()))
    checked = 0
    for tensor in model.subgraphs[0].tensors:
        name = tensor.name.decode()
        q = tensor.quantization
        if q is None or q.scale is None or len(q.scale) != 1 or not ("Relu6" in name or name.endswith("/Add")):
            continue
        layer = name.split(";")[0].split("/")[1].rsplit("_", 1)[0]  # model/block_2_add_1/Add -> block_2_add
        key = next(k for k, r in ranges.items() if layer in r["layers"])
        scale, zp = _qparams(ranges[key]["min"], ranges[key]["max"])
        assert q.scale[0] == pytest.approx(scale, rel=1e-5) and q.zeroPoint[0] in _zero_points(ranges[key]), name
        checked += 1
    assert checked >= 35  # every ReLU6 output and Add of MobileNetV2
    notes = report.files[0].notes
    assert notes["qat"]["learned_ranges"] == len(ranges) and notes["budget"]["applied"] is False
    assert "QAT" in notes["budget"]["why"] and notes["calibration_method"] == "ranges learned by QAT"


def _onnx_scales(path) -> dict[str, float]:
    """{tensor: activation scale} of an int8 ONNX file in either format onnxruntime writes: QDQ
    (QuantizeLinear's scale input) or QOperator (the ``<tensor>_scale`` initializer)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    scales = {n[:-len("_scale")]: float(v) for n, v in inits.items() if n.endswith("_scale") and v.size == 1}
    scales.update({n.input[0]: float(inits[n.input[1]]) for n in graph.node if n.op_type == "QuantizeLinear"})
    return scales


def test_onnx_activation_scales_are_the_learned_ranges(qat_run, qat_files):
    """Either int8 format onnxruntime writes: QDQ (QuantizeLinear's scale input) or QOperator
    (QLinear* ops reading the ``<tensor>_scale`` initializer)."""
    report, paths = qat_files
    ranges = _ranges(qat_run)
    scales = _onnx_scales(paths["onnx"])
    checked = 0
    for tensor, scale in scales.items():
        # ReLU6 outputs, Adds, and depthwise outputs (tf2onnx names them after the batch norm)
        if not any(tag in tensor for tag in ("Relu6:0", "/Add:0", "batchnorm/add_1:0")):
            continue
        layer = tensor.split("/")[1].rsplit("_", 1)[0]
        key = next(k for k, r in ranges.items() if layer in r["layers"])
        assert scale == pytest.approx(_qparams(ranges[key]["min"], ranges[key]["max"])[0], rel=1e-5), tensor
        checked += 1
    assert checked >= 20, checked  # MobileNetV2 0.35: 10 Adds, 17 depthwise convolutions
    assert report.files[1].notes["qat"]["learned_ranges"] >= len(ranges) - 1  # the logits: float head
    assert report.files[1].notes["budget"]["applied"] is False


def test_keras_simulation_matches_the_int8_files(qat_run, qat_files):
    """The fake-quantized Keras model's scores are closer to each int8 file's than the float
    model's are: it computes what the files compute (up to integer rounding)."""
    import keras

    from edgekit.data import load_split
    from edgekit.qat.transform import load_qat_model
    from edgekit.runtime import Model
    from edgekit.runtime.spec import PreprocessSpec
    from edgekit.train.dataset import EpochData

    data = load_split(SAMPLE, "test")
    x = np.concatenate([b[0].numpy() for b in EpochData(data, PreprocessSpec(**SPEC), 64).once()])[:64]
    # Eager calls: predict() would trace each model for one batch.
    simulated = np.asarray(load_qat_model(qat_run)(x, training=False))
    floating = np.asarray(keras.models.load_model(qat_run / "model.keras", compile=False)(x, training=False))
    for fmt, path in qat_files[1].items():
        model = Model(path)
        scores = np.concatenate([model.predict(x[i:i + 1]) for i in range(len(x))])
        sim_gap, float_gap = np.abs(scores - simulated).mean(), np.abs(scores - floating).mean()
        assert sim_gap < float_gap, (fmt, sim_gap, float_gap)


# -- EfficientNet: swish, squeeze-and-excitation, input preprocessing, ReLU6 ---------------------

def _efficientnet_qat(name, tmp_path_factory, formats):
    from edgekit.export import ExportOptions, Format, Precision, export_model
    from edgekit.models import create_model
    from edgekit.qat import QatConfig, qat
    from edgekit.runtime import PreprocessSpec

    root = tmp_path_factory.mktemp(name)
    # Scaled down (every block kind kept: swish, squeeze-excite, sigmoid gates): the full B0 made
    # this the slowest test of the suite.
    model = create_model(name, (32, 32, 1), 10, bn_momentum=0.9, width=0.25, depth=0.1)
    trained_run = train_run(root / "run", model, PreprocessSpec(**SPEC), name, epochs=1)
    out = root / "qat"
    qat(QatConfig(run=str(trained_run), out=str(out), epochs=1, batch_size=32, limit=64, lr=1e-3))
    # The default uint8 input behind an input adapter, as `edgekit export` writes it.
    options = ExportOptions(formats=tuple(Format(f) for f in formats), precisions=(Precision.INT8,),
                            out_dir=root / "files", num_validation=16, num_calibration=16)
    report = export_model(out, options, log=lambda line: None)
    return trained_run, out, report


def _check_efficientnet_files(trained_run, out, report):
    """Every int8 tensor a learned range covers has that range's scale (TFLite and ONNX); the
    swish products, SE gates and sigmoid outputs are among them; the files run."""
    import keras
    from tensorflow.lite.tools import flatbuffer_utils

    from edgekit.export.qat_ranges import is_fixed, key_of, layer_index
    from edgekit.runtime import Model

    ranges = _ranges(out)
    index = layer_index(ranges)
    source = keras.models.load_model(trained_run / "model.keras", compile=False)
    swish = [layer.name for layer in source.layers if getattr(getattr(layer, "activation", None), "__name__", "")
             in ("swish", "silu")]
    excite = [layer.name for layer in source.layers if type(layer).__name__ == "Multiply"]
    assert set(excite) <= set(ranges) and all(n in ranges or f"{n}/mul" in ranges for n in swish)
    paths = {f.target.format.value: f.path for f in report.files}
    assert all(f.error is None for f in report.files), [f.error for f in report.files]

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(paths["tflite"].read_bytes()))
    products = sigmoids = 0
    for tensor in model.subgraphs[0].tensors:
        name, q = tensor.name.decode(), tensor.quantization
        if q is None or q.scale is None or len(q.scale) != 1 or tensor.type != 9:  # int8 per-tensor
            continue
        if is_fixed(name):
            assert q.scale[0] == pytest.approx(1 / 256) and q.zeroPoint[0] == -128, name
            sigmoids += 1
            continue
        key = key_of(name, index)
        if key is None or name.endswith(("/Mean", "/Reshape")):  # the converter gives these their input's scale
            continue
        scale, zp = _qparams(ranges[key]["min"], ranges[key]["max"])
        assert q.scale[0] == pytest.approx(scale, rel=1e-5) and q.zeroPoint[0] in _zero_points(ranges[key]), name
        products += name.split(";")[0].rsplit("/", 1)[-1].split("_")[0].lower() == "mul"
    assert products >= len(swish) + len(excite), (products, len(swish), len(excite))
    assert sigmoids >= len(swish) + len(excite)
    notes = report.files[0].notes["qat"]
    assert notes["ranges_without_tensor"] == [] or set(notes["ranges_without_tensor"]) <= {
        k for k, r in ranges.items() if not r["applied"]}, notes

    for fmt, path in paths.items():
        model = Model(path)
        want = "uint8" if fmt == "tflite" else "float32"  # uint8 pixels in: TFLite int8 only (--io auto)
        assert model.inputs[0].dtype == want, model
        pixels = np.random.default_rng(0).integers(0, 256, (4, *model.inputs[0].shape[1:])).astype(want)
        scores = model.predict(pixels)
        assert scores.shape == (4, 10) and np.isfinite(scores).all()
    if "onnx" not in paths:
        return notes
    scales = _onnx_scales(paths["onnx"])
    onnx_products = 0
    for tensor, scale in scales.items():
        key = key_of(tensor, index)
        # The products a range covers (swish, squeeze-excite); a BatchNormalization's own
        # scale-multiply (".../batchnorm/mul_1") is an internal step inside the layer, calibrated.
        if key is None or "/batchnorm/" in tensor or not tensor.split(":")[0].rsplit("/", 1)[-1].lower().startswith("mul"):
            continue
        assert scale == pytest.approx(_qparams(ranges[key]["min"], ranges[key]["max"])[0], rel=1e-5), tensor
        onnx_products += 1
    assert onnx_products >= len(excite), onnx_products

    return notes


def test_efficientnet_b0_qat_ranges_cover_swish_and_se(tmp_path_factory):
    """TFLite and ONNX (the B0's Normalization constants, once extra graph inputs that
    onnxruntime's calibrator could not feed, are folded since issue 13)."""
    trained_run, out, report = _efficientnet_qat("efficientnet_b0", tmp_path_factory, ("tflite", "onnx"))
    assert "input_layer" not in _ranges(out)  # Rescaling/Normalization: calibrated (module docstring)
    _check_efficientnet_files(trained_run, out, report)


@pytest.mark.slow
def test_efficientnet_lite0_qat_ranges_cover_relu6(tmp_path_factory):
    trained_run, out, report = _efficientnet_qat("efficientnet_lite0", tmp_path_factory, ("tflite", "onnx"))
    assert "input_layer" in _ranges(out)
    _check_efficientnet_files(trained_run, out, report)


# -- bad input ------------------------------------------------------------------------------------

def _cli(*args):
    from click.testing import CliRunner

    from edgekit.cli.main import main

    return CliRunner().invoke(main, list(map(str, args)))


def _one_line_exit_2(result, *words):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """A run whose architecture has layers QAT cannot wrap (pooling, Dense with ReLU)."""
    from edgekit.models import create_model
    from edgekit.runtime import PreprocessSpec

    folder = tmp_path_factory.mktemp("lenet") / "lenet"
    folder.mkdir()
    create_model("lenet5", (32, 32, 1), 10).save(folder / "model.keras")
    (folder / "edgekit.json").write_text(json.dumps({
        "architecture": "lenet5", "preprocess": PreprocessSpec(**SPEC).to_dict(),
        "class_names": [str(i) for i in range(10)], "data": {"path": str(SAMPLE)}}))
    return folder


@pytest.mark.parametrize("case", ["missing", "empty folder", "file", "no edgekit.json", "unsupported layers"])
def test_bad_run_is_one_line_exit_2_and_writes_nothing(case, trained, lenet_run, tmp_path):
    run = {"missing": tmp_path / "nope", "empty folder": tmp_path / "empty", "file": tmp_path / "x.txt",
           "no edgekit.json": tmp_path / "half", "unsupported layers": lenet_run}[case]
    if case == "empty folder":
        run.mkdir()
    elif case == "file":
        run.write_text("not a run")
    elif case == "no edgekit.json":
        run.mkdir()
        (run / "model.keras").write_bytes((trained / "model.keras").read_bytes())
    out = tmp_path / "out" / "qat"
    result = _cli("qat", run, "--out", out, "--epochs", "1")
    if case == "unsupported layers":
        _one_line_exit_2(result, "layer '", "cannot be fake-quantized")
    else:
        _one_line_exit_2(result, repr(str(run)))
    assert not (tmp_path / "out").exists()


def test_export_refuses_calibration_for_a_qat_run(qat_run, tmp_path):
    out = tmp_path / "files"
    result = _cli("export", qat_run, "--quantize", "int8", "--calibration", SAMPLE, "--out", out)
    _one_line_exit_2(result, "QAT run", "--calibration")
    assert not out.exists()


MIRRORED_SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from edgekit.qat import QatConfig, qat
    meta = qat(QatConfig(run=sys.argv[1], out=sys.argv[2], strategy="mirrored", **json.loads(sys.argv[3])))
    print(json.dumps({"replicas": meta["replicas"], "history": meta["history"]}))
""")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(trained, qat_run, tmp_path):
    """Two replicas train on the halves of the same global batches: the same losses as one device
    (to float tolerance), and ranges averaged over the replicas."""
    out = tmp_path / "m"
    p = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(trained), str(out), json.dumps(QAT)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    one = json.loads((qat_run / "edgekit.json").read_text())["history"]
    np.testing.assert_allclose(result["history"]["loss"], one["loss"], rtol=0.05)
    mirrored, single = _ranges(out), _ranges(qat_run)
    assert set(mirrored) == set(single)
    assert all(np.isfinite([r["min"], r["max"]]).all() and r["min"] <= r["max"] for r in mirrored.values())
    assert (out / "model.keras").is_file() and os.path.getsize(out / "model.keras") > 0
