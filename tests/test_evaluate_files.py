"""``edgekit evaluate FILE``: what ``edgekit export`` ships, evaluated through ``edgekit.runtime``
(issue 13, item 0).

One tiny model is trained on the shipped Fashion-MNIST sample, its 28x28 images upsampled to
32x32 and normalised to [-1, 1] (as the zoo's runs take them: bilinear upsampling puts pixels
exactly halfway between two integers, where a uint8 input's rounding must agree), and exported (fp32 and int8
TFLite, ONNX and ORT, validated on 120 seeded test images); evaluating each file on the same
images (``--limit 120`` draws the same seeded sample) must give exactly the accuracy the export
report gives, and ``--reference RUN`` exactly its top-1 agreement with the Keras model. The
files are also evaluated in a process that cannot import TensorFlow or Keras, as on a device.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import traceback

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from device_helpers import BLOCKED_MARK, no_tensorflow_env
from edgekit.cli.main import main
from export_helpers import SAMPLE, tiny_model, train_run

NUM = 120  # of the sample's 200 test images: export and evaluate must pick the same ones
FILES = ["tflite_int8", "onnx_int8", "ort_int8", "tflite_fp32", "onnx_fp32", "ort_fp32"]


def edgekit(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(result.exception)))
    return result


def evaluate_json(*args) -> dict:
    result = edgekit("evaluate", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The run, the export report (JSON) and its files by "format_precision"."""
    from edgekit.runtime import PreprocessSpec

    root = tmp_path_factory.mktemp("shipped")
    spec = PreprocessSpec(size=(32, 32), channels=1, mean=(127.5,), std=(127.5,))
    run = train_run(root / "fmnist", tiny_model(32), spec, "tiny", epochs=8)
    result = edgekit("export", run, "--format", "tflite,onnx,ort", "--quantize", "fp32,int8",
                     "--num-validation", NUM, "--out", root / "files", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    files = {f"{f['format']}_{f['precision']}": f for f in report["files"]}
    assert set(files) == set(FILES)
    return run, report, files


@pytest.mark.parametrize("key", FILES)
def test_file_gives_the_export_reports_accuracy_and_agreement(shipped, key):
    run, report, files = shipped
    row = files[key]
    doc = evaluate_json(row["path"], "--data", SAMPLE, "--split", "test", "--limit", NUM, "--reference", run)
    assert report["validation"].startswith(f"{NUM} images (seed 0)")
    assert doc["images"] == NUM == row["validation_samples"]
    assert doc["accuracy"] == row["accuracy"]
    assert doc["agreement"] == row["agreement"]  # top-1 agreement with the Keras model, as export measures it
    assert doc["models"] == [row["path"]] and doc["reference"] == str(run)
    cm = np.array(doc["confusion_matrix"])
    assert cm.sum() == NUM and doc["accuracy"] == pytest.approx(np.trace(cm) / NUM)
    assert len(doc["per_class_accuracy"]) == 10 == len(doc["class_names"])


def test_same_json_as_a_run_and_the_text_output(shipped, tmp_path):
    run, _, files = shipped
    as_file = evaluate_json(files["tflite_fp32"]["path"], "--data", SAMPLE, "--out", tmp_path / "ev")
    as_run = evaluate_json(run, "--data", SAMPLE)
    assert list(as_file) == list(as_run) and as_file["agreement"] is None is as_file["reference"]
    assert as_file["accuracy"] == as_run["accuracy"] and as_file["images"] == 200
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["confusion.png", "evaluation.json"]
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text()) == as_file
    text = edgekit("evaluate", files["onnx_int8"]["path"], "--data", SAMPLE, "--reference", files["onnx_fp32"]["path"])
    assert text.exit_code == 0, text.stderr
    assert re.search(r"^accuracy 0\.\d{4} on 200 test images", text.stdout, re.M)
    assert re.search(rf"^agreement [01]\.\d{{4}} \(top-1\) with {re.escape(files['onnx_fp32']['path'])}$",
                     text.stdout, re.M)


@pytest.mark.parametrize("tta", ["flip", "10crop"])
def test_tta_of_a_float_file_matches_the_run(shipped, tta):
    """The numpy views of a file are the TensorFlow views of the run: the fp32 file (RGB input,
    luma in the graph) agrees with its Keras model under the same TTA."""
    run, _, files = shipped
    args = ["--data", SAMPLE, "--limit", NUM, "--tta", tta]
    doc = evaluate_json(files["tflite_fp32"]["path"], *args, "--reference", run)
    assert doc["tta"] == tta and doc["agreement"] >= 0.99
    assert abs(doc["accuracy"] - evaluate_json(run, *args)["accuracy"]) <= 0.01


def test_nchw_file_takes_its_views_transposed(shipped, tmp_path):
    from edgekit.runtime import read_metadata

    run, _, files = shipped
    result = edgekit("export", run, "--format", "onnx", "--nchw", "--num-validation", 8, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)["files"]
    assert read_metadata(row["path"]).layout == "NCHW"
    reference = files["onnx_fp32"]["path"]
    for tta in ("none", "10crop"):
        doc = evaluate_json(row["path"], "--data", SAMPLE, "--limit", NUM, "--tta", tta, "--reference", reference)
        assert doc["agreement"] == 1.0


def test_numpy_views_are_the_tensorflow_views():
    import tensorflow as tf

    from edgekit.evaluation import TTA_MODES, Tta, views
    from edgekit.runtime import PreprocessSpec
    from edgekit.evaluation.keras_model import _views

    from edgekit.cli.train_cmd import TTA_CHOICES

    assert TTA_CHOICES == TTA_MODES
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 28, 3)).astype(np.float32)
    spec = PreprocessSpec(size=(32, 28))
    for mode in Tta:
        ours = views(pixels, mode)
        theirs = [np.asarray(v) for v in _views(tf.constant(pixels), spec, mode.value)]
        assert len(ours) == len(theirs) == {"none": 1, "flip": 2, "10crop": 10}[mode.value]
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape == pixels.shape
            np.testing.assert_allclose(a, b, atol=1e-3)


def test_ensemble_of_files_averages_their_probabilities(shipped):
    from edgekit.evaluation import evaluate, load_model
    from edgekit.data import load_split

    run, _, files = shipped
    one, other = files["tflite_int8"]["path"], files["onnx_int8"]["path"]
    assert evaluate([one, one], str(SAMPLE))["accuracy"] == evaluate([one], str(SAMPLE))["accuracy"]
    images = load_split(SAMPLE, "test")
    mean = (load_model(one).probabilities(images) + load_model(other).probabilities(images)) / 2
    both = evaluate([one, other], str(SAMPLE))
    assert both["models"] == [one, other]
    assert both["accuracy"] == float(np.mean(mean.argmax(1) == images.labels))
    mixed = evaluate([run, one], str(SAMPLE), limit=NUM, reference=run)  # a Keras run and a file: each prepares its own input
    assert 0.9 <= mixed["agreement"] <= 1.0


# -- the device install: no TensorFlow, no Keras ------------------------------------------

def _device_run(env, *args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "ort"])
def test_files_evaluate_without_tensorflow_or_keras(shipped, tmp_path, fmt):
    """A process whose every import of tensorflow, keras, tf2onnx or tf_keras fails and is
    reported (device_helpers' blocker, stricter than ``sys.modules['tensorflow'] = None``: it
    also catches attempts that the code catches): the int8 file with TTA, the fp32 file as
    reference, and --out."""
    run, _, files = shipped
    path, reference = files[f"{fmt}_int8"]["path"], files[f"{fmt}_fp32"]["path"]
    args = [path, "--data", SAMPLE, "--limit", NUM, "--tta", "flip", "--reference", reference]
    p = _device_run(no_tensorflow_env(tmp_path / "site"), "evaluate", *args, "--out", tmp_path / "ev", "--json")
    assert p.returncode == 0, p.stderr
    assert BLOCKED_MARK not in p.stderr and p.stderr == ""
    assert json.loads(p.stdout) == evaluate_json(*args)
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 0


@pytest.mark.parametrize("case", ["a run folder", "--out without matplotlib"])
def test_device_install_refusals_are_one_line(shipped, tmp_path, case):
    run, _, files = shipped
    if case == "a run folder":
        env, args, needle = no_tensorflow_env(tmp_path / "site"), [run], "needs TensorFlow and Keras"
        named = run
    else:
        env = no_tensorflow_env(tmp_path / "site", also_block=("matplotlib",))
        args, needle = [files["tflite_int8"]["path"], "--out", tmp_path / "ev"], "needs matplotlib"
        named = tmp_path / "ev"
    p = _device_run(env, "evaluate", *args, "--data", SAMPLE, "--json")
    assert p.returncode == 2 and p.stdout == "", p.stderr
    (line,) = [x for x in p.stderr.splitlines() if not x.startswith(BLOCKED_MARK)]
    assert line.startswith("edgekit: error: ") and needle in line and str(named) in line
    assert not (tmp_path / "ev").exists()


# -- refusals ------------------------------------------------------------------------------

def _refused(args: list, names: tuple[str, ...], problem: str) -> str:
    """As tests/test_bad_inputs.py: exit 2, one line naming the input, nothing on stdout."""
    result = edgekit(*args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert all(name in lines[0] for name in names), (names, lines[0])
    assert re.search(problem, lines[0], re.IGNORECASE), (problem, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def embedding_file(shipped, tmp_path_factory):
    run, _, _ = shipped
    out = tmp_path_factory.mktemp("embedding")
    result = edgekit("export", run, "--embedding", "--num-validation", 8, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)["files"]
    return row["path"]


def test_embedding_file_is_refused(shipped, embedding_file, tmp_path):
    _refused(["evaluate", embedding_file, "--data", SAMPLE, "--out", tmp_path / "ev", "--json"],
             (embedding_file,), "embedding model .*no class scores")
    run, _, files = shipped
    _refused(["evaluate", files["tflite_fp32"]["path"], "--data", SAMPLE, "--reference", embedding_file],
             (embedding_file,), "embedding model")
    assert not (tmp_path / "ev").exists()


def test_class_count_mismatch_names_both_counts(shipped, tmp_path):
    _, _, files = shipped
    data = tmp_path / "three.npz"
    rng = np.random.default_rng(0)
    np.savez(data, images=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), labels=np.array([0, 1, 2] * 2))
    path = files["onnx_int8"]["path"]
    _refused(["evaluate", path, "--data", data, "--split", "train", "--json"], (path, str(data)),
             r"has 10 classes; .* has 3\b")


@pytest.mark.parametrize("case", ["missing file", "unknown extension", "missing, unknown extension", "folder"])
def test_missing_and_unknown_files_are_refused(shipped, tmp_path, case):
    bad = {"missing file": tmp_path / "nosuch.tflite", "unknown extension": tmp_path / "model.pb",
           "missing, unknown extension": tmp_path / "nosuch.pb", "folder": tmp_path / "model.onnx"}[case]
    if case == "unknown extension":
        bad.write_bytes(b"\x08\x01")
    if case == "folder":
        bad.mkdir()
    problem = {"missing file": "does not exist", "unknown extension": r"expected .*\.tflite, \.onnx or \.ort",
               "missing, unknown extension": "does not exist", "folder": "not a regular file"}[case]
    _refused(["evaluate", bad, "--data", SAMPLE, "--json"], (str(bad),), problem)
    _, _, files = shipped
    _refused(["evaluate", files["tflite_int8"]["path"], "--data", SAMPLE, "--reference", bad], (str(bad),), problem)
