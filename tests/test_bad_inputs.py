"""Every ``edgekit`` command over the bad-input corpus (tests/corpus.py; edgekit issue 7).

For each (command x bad input): a non-zero exit, exactly one line on stderr that starts
``edgekit: error:``, names the input and says what is wrong with it, no traceback, nothing on
stdout, and no file left behind, hidden partial files included (the working folder and the
corpus are listed before and after). The odd but valid images (CMYK, 16-bit, palette, alpha,
1x1) are used, not refused, and read as the same pixels by the runtime (Pillow) and the
training pipeline (tf.data). Class folders named with spaces and non-ASCII letters train,
evaluate, export and come back in ``predict --json``.

Commands run in-process with click's CliRunner (TensorFlow is imported once); a few run as
real processes to show that no traceback reaches the real stderr. The valid model files come
from one ``edgekit train`` (lenet5, one epoch on 12 images) and one ``edgekit export``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from corpus import (MODEL_SUFFIXES, TEST_PER_CLASS, TRAIN_PER_CLASS, UNICODE_CLASSES, Case, odd_images,
                    write_data_cases, write_image_cases, write_label_folder, write_model_cases, write_raw_cases)
from edgekit.cli.main import main

INPUT_SIZE = 32  # lenet5's own


@dataclass(frozen=True)
class Corpus:
    root: Path
    labels: Path  # the unicode label folder (train/ and test/)
    run: Path  # a trained run folder
    tflite: Path
    onnx: Path
    good_image: Path
    models: dict[str, Case]
    images: dict[str, Case]
    raw: dict[str, Case]
    data: dict[str, Case]


def edgekit(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _ok(result) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.stderr


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    labels = write_label_folder(root / "Daten mit Leerzeichen")
    run = root / "läuft 1"
    _ok(edgekit("train", "lenet5", "--data", labels, "--out", run, "--epochs", 1, "--batch-size", 4,
                "--val-fraction", 0, "--augment", "none", "--json"))
    _ok(edgekit("export", run, "--format", "tflite,onnx,ort", "--num-validation", 6))
    tflite, onnx = run / "läuft 1_fp32.tflite", run / "läuft 1_fp32.onnx"
    valid = {".tflite": tflite, ".onnx": onnx, ".ort": run / "läuft 1_fp32.ort", ".keras": run / "model.keras"}
    return Corpus(root, labels, run, tflite, onnx,
                  good_image=labels / "train" / UNICODE_CLASSES[0] / "bild 0.png",
                  models=write_model_cases(root, valid), images=write_image_cases(root),
                  raw=write_raw_cases(root, (INPUT_SIZE, INPUT_SIZE, 3)), data=write_data_cases(root))


def _listing(*folders: Path) -> set[tuple[str, int]]:
    """Every file and folder below ``folders`` (hidden ones too), with file sizes."""
    found = set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            found |= {(os.path.join(dirpath, d), -1) for d in dirnames}
            found |= {(os.path.join(dirpath, f), os.path.getsize(os.path.join(dirpath, f))) for f in filenames}
    return found


def assert_refused(corpus: Corpus, work: Path, args: list, names: tuple[str, ...], problem: str) -> str:
    """Run ``edgekit *args``; check the refusal, which names one of ``names`` and matches
    ``problem`` elsewhere than in the names; return its one line."""
    before = _listing(work, corpus.root)
    result = edgekit(*args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(result.exception)))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == "", (result.stdout, result.stderr)
    line = lines[0]
    assert any(name in line for name in names), (names, line)
    words = line
    for name in sorted(names, key=len, reverse=True):
        words = words.replace(name, "<name>")
    assert re.search(problem, words, re.IGNORECASE), (problem, line)
    assert _listing(work, corpus.root) == before, "files were left behind"
    return line


def test_every_corpus_case_is_run(corpus):
    """The parameter lists below name every case the corpus writes, so none goes untested."""
    assert set(MODEL_CASES) == set(corpus.models)
    assert set(DATA_CASES) == set(corpus.data)
    assert set(IMAGE_CASES) == set(corpus.images)
    assert set(RAW_CASES) == set(corpus.raw)


# -- (command x bad model) ------------------------------------------------------------------

def _model_args(c: Corpus, model: Path, work: Path) -> dict[str, list]:
    out = work / "out"
    return {
        "predict": ["predict", model, c.good_image, "--json"],
        "profile": ["profile", model, "--runs", 1, "--warmup", 0, "--json"],
        "export": ["export", model, "--out", out, "--json"],
        "evaluate": ["evaluate", model, "--data", c.labels, "--out", out, "--json"],
        "evaluate --reference": ["evaluate", c.tflite, "--data", c.labels, "--reference", model, "--out", out, "--json"],
        "benchmark": ["benchmark", model, "--data", c.labels, "--out", out, "--formats", "tflite",
                      "--quantize", "fp32", "--runs", 1, "--warmup", 0, "--json"],
        "summary": ["summary", model, "--json"],
        "filters": ["filters", model, "--out", work / "filters.png", "--json"],
        "train --weights": ["train", "lenet5", "--data", c.labels, "--out", out, "--weights", model,
                            "--epochs", 1, "--batch-size", 4, "--json"],
    }


# The model suffixes each command takes; any other is refused as such, whatever the file holds.
ACCEPTS = {"predict": (".tflite", ".onnx", ".ort"), "profile": MODEL_SUFFIXES, "export": (".keras",),
           "evaluate": MODEL_SUFFIXES, "evaluate --reference": MODEL_SUFFIXES, "benchmark": (".keras",),
           "summary": (".keras",),
           "filters": (".tflite", ".onnx", ".keras"), "train --weights": (".keras",)}
NOT_ACCEPTED = {"predict": "suffix '.keras'; expected one of .tflite, .onnx, .ort", "summary": "unknown model",
                "train --weights": "expected an edgekit run dir, a .keras file"}
TAKES_RUN_FOLDERS = ("profile", "export", "evaluate", "evaluate --reference", "benchmark", "filters",
                     "train --weights")
MODEL_COMMANDS = tuple(ACCEPTS)
MODEL_CASES = [f"{suffix[1:]} {kind}" for suffix in MODEL_SUFFIXES
               for kind in ("empty", "truncated", "random", "wrong format", "folder", "missing")]


@pytest.mark.parametrize("case", MODEL_CASES)
@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_bad_model(corpus, tmp_path, command, case):
    bad = corpus.models[case]
    args = _model_args(corpus, bad.path, tmp_path)[command]
    accepted = bad.path.suffix in ACCEPTS[command] or (bad.path.is_dir() and command in TAKES_RUN_FOLDERS)
    problem = bad.problem if accepted else NOT_ACCEPTED.get(command, "expected .*run (folder|directory)")
    assert_refused(corpus, tmp_path, args, (str(bad.path),), problem)


# -- (command x bad data set) ---------------------------------------------------------------

def _data_args(c: Corpus, data: Path, work: Path) -> dict[str, list]:
    out = work / "out"
    return {
        "train": ["train", "lenet5", "--data", data, "--out", out, "--epochs", 1, "--batch-size", 4, "--json"],
        "augment": ["augment", "--data", data, "--out", work / "grid.png", "--n", 2, "--input-size", 16],
        "evaluate": ["evaluate", c.run, "--data", data, "--out", out, "--json"],
        "evaluate FILE": ["evaluate", c.tflite, "--data", data, "--out", out, "--json"],
        "export --calibration": ["export", c.run, "--quantize", "int8", "--calibration", data, "--out", out,
                                 "--json"],
        "benchmark": ["benchmark", c.run, "--data", data, "--out", out, "--formats", "tflite", "--quantize",
                      "fp32", "--runs", 1, "--warmup", 0, "--json"],
        "quickstart": ["quickstart", "--data", data, "--out", out, "--limit", 4, "--epochs", 1, "--json"],
    }


DATA_COMMANDS = ("train", "augment", "evaluate", "evaluate FILE", "export --calibration", "benchmark", "quickstart")
DATA_CASES = ["missing", "empty folder", "no images", "one class", "only corrupt images", "text file",
              "npz empty", "npz random", "npz truncated", "npz is a npy", "npz wrong keys", "npz float images",
              "npz 2-d images", "npz 5 channels", "npz label count", "npz float labels", "npz negative labels",
              "npz no images", "idx truncated", "idx bad magic", "idx corrupt gzip", "idx label count",
              "idx no labels"]


@pytest.mark.parametrize("case", DATA_CASES)
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_bad_data(corpus, tmp_path, command, case):
    bad = corpus.data[case]
    args = _data_args(corpus, bad.path, tmp_path)[command]
    assert_refused(corpus, tmp_path, args, (str(bad.path),), bad.problem)


# -- predict x bad images, --raw x wrong shapes and dtypes ----------------------------------

IMAGE_CASES = ["empty png", "truncated png", "truncated jpeg", "random png", "text as jpeg", "bomb png",
               "float npy", "1-d npy", "5-d npy", "empty npy", "5-channel npy", "pickled npy"]


@pytest.mark.parametrize("case", IMAGE_CASES)
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_bad_image(corpus, tmp_path, fmt, case):
    bad = corpus.images[case]
    model = corpus.tflite if fmt == "tflite" else corpus.onnx
    assert_refused(corpus, tmp_path, ["predict", model, corpus.good_image, bad.path, "--json"],
                   (str(bad.path),), bad.problem)


IMAGE_FILE_CASES = [c for c in IMAGE_CASES if not c.endswith("npy")]  # filters --image reads image files only


@pytest.mark.parametrize("case", IMAGE_FILE_CASES)
@pytest.mark.parametrize("fmt", ["keras", "tflite", "onnx"])
def test_filters_bad_image(corpus, tmp_path, fmt, case):
    bad = corpus.images[case]
    model = {"keras": corpus.run, "tflite": corpus.tflite, "onnx": corpus.onnx}[fmt]
    assert_refused(corpus, tmp_path, ["filters", model, "--image", bad.path, "--out", tmp_path / "f.png", "--json"],
                   (str(bad.path),), bad.problem)


RAW_CASES = ["wrong size", "wrong rank", "batch of two", "int32", "bool", "complex", "string", "scalar"]


@pytest.mark.parametrize("case", RAW_CASES)
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_bad_raw_input(corpus, tmp_path, fmt, case):
    bad = corpus.raw[case]
    model = corpus.tflite if fmt == "tflite" else corpus.onnx
    assert_refused(corpus, tmp_path, ["predict", model, bad.path, "--raw", "--json"], (str(bad.path),), bad.problem)


# -- bad arguments (click's usage errors and zoo names) -------------------------------------

ARGUMENTS = {
    "models unknown family": (["models", "--family", "nosuch"], "nosuch"),
    "models unknown option": (["models", "--colour"], "--colour"),
    "summary unknown arch": (["summary", "mobilenet_v9"], "mobilenet_v9"),
    "summary 0 classes": (["summary", "lenet5", "--classes", 0], "--classes"),
    "train unknown arch": (["train", "resnet_9000", "--data", "{labels}", "--out", "{work}/out"], "resnet_9000"),
    "train no data": (["train", "lenet5", "--out", "{work}/out"], "--data"),
    "train unknown augmentation": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out",
                                    "--augment", "blur"], "blur"),
    "train --epochs not a number": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out",
                                     "--epochs", "lots"], "--epochs got 'lots'; expected auto or an integer >= 1"),
    "train --epochs 0": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out", "--epochs", "0"],
                         "--epochs got '0'"),
    "train --batch-size 0": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out", "--batch-size", "0"],
                             "--batch-size got '0'; expected auto or an integer >= 1"),
    "train --ema 1": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out", "--ema", "1"],
                      "--ema got '1'; expected off, auto or a momentum in (0, 1)"),
    "train --restore last": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out", "--restore", "last"],
                             "--restore"),
    "train --mixup -1": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out", "--mixup", "-1"],
                         "--mixup"),
    "train --cutmix inf": (["train", "lenet5", "--data", "{labels}", "--out", "{work}/out", "--cutmix", "inf"],
                           "--cutmix got inf; expected a Beta concentration >= 0 (0: off)"),
    "train over a finished run": (["train", "lenet5", "--data", "{labels}", "--out", "{run}"], "{run}"),
    "train --out is a file": (["train", "lenet5", "--data", "{labels}", "--out", "{tflite}"], "{tflite}"),
    "evaluate --out is a file": (["evaluate", "{run}", "--data", "{labels}", "--out", "{tflite}"], "{tflite}"),
    "export --out is a file": (["export", "{run}", "--out", "{tflite}"], "{tflite}"),
    "benchmark --out is a file": (["benchmark", "{run}", "--data", "{labels}", "--out", "{tflite}"], "{tflite}"),
    "quickstart --out is a file": (["quickstart", "--data", "{labels}", "--out", "{tflite}"], "{tflite}"),
    "augment --out is a folder": (["augment", "--data", "{labels}", "--out", "{run}"], "{run}"),
    "filters --out is a folder": (["filters", "{tflite}", "--out", "{run}"], "{run}"),
    "filters --out below a file": (["filters", "{tflite}", "--out", "{tflite}/f.png"], "{tflite}"),
    "filters --layer not a convolution": (["filters", "{run}", "--out", "{work}/f.png", "--layer", "nosuch"],
                                          "nosuch"),
    "train --out below a file": (["train", "lenet5", "--data", "{labels}", "--out", "{tflite}/run"], "{tflite}"),
    "evaluate --out below a file": (["evaluate", "{run}", "--data", "{labels}", "--out", "{tflite}/eval"], "{tflite}"),
    "augment --out below a file": (["augment", "--data", "{labels}", "--out", "{tflite}/grid.png"], "{tflite}"),
    "profile --cpus out of range": (["profile", "{tflite}", "--cpus", "64"], "64"),
    "augment unknown augmentation": (["augment", "--data", "{labels}", "--out", "{work}/g.png", "--augment", "blur"],
                                     "blur"),
    "export unknown precision": (["export", "{run}", "--quantize", "int4", "--out", "{work}/out"], "int4"),
    "predict no images": (["predict", "{tflite}"], "IMAGES"),
    "predict image suffix": (["predict", "{tflite}", "{work}/x.gif"], "x.gif"),
    "profile threads": (["profile", "{tflite}", "--threads", "two"], "two"),
    "benchmark unknown format": (["benchmark", "{run}", "--data", "{labels}", "--formats", "coreml"], "coreml"),
    "evaluate unknown tta": (["evaluate", "{run}", "--data", "{labels}", "--tta", "5crop"], "5crop"),
    "evaluate FILE --out is a file": (["evaluate", "{onnx}", "--data", "{labels}", "--out", "{tflite}"], "{tflite}"),
    "evaluate FILE on other classes": (["evaluate", "{tflite}", "--data", "{fashion}"], "{tflite}"),
}


@pytest.mark.parametrize("case", list(ARGUMENTS))
def test_bad_argument(corpus, tmp_path, case):
    template, needle = ARGUMENTS[case]
    fields = {"labels": corpus.labels, "work": tmp_path, "run": corpus.run, "tflite": corpus.tflite,
              "onnx": corpus.onnx, "fashion": REPO / "calibration" / "fashion-mnist"}
    args = [str(a).format(**fields) for a in template]
    assert_refused(corpus, tmp_path, args, (needle.format(**fields),), "")


# -- odd but valid inputs -------------------------------------------------------------------

ODD = list(odd_images())


@pytest.mark.parametrize("name", ODD)
def test_odd_image_reads_as_the_same_pixels_in_runtime_and_training(tmp_path, name):
    import tensorflow as tf

    from edgekit.data.preprocess import decode_image_tf, to_pixels_tf
    from edgekit.runtime import load_image
    from edgekit.runtime.spec import PreprocessSpec

    file_name, data, expected = odd_images()[name]
    path = tmp_path / file_name
    path.write_bytes(data)
    tolerance = 8 if file_name.endswith(".jpg") else 0  # JPEG decoders differ by a few levels
    runtime = load_image(path, channels=3).astype(int)
    assert runtime.shape == expected.shape
    np.testing.assert_allclose(runtime, expected, atol=tolerance)
    spec = PreprocessSpec(expected.shape[:2], channels=3)
    training = to_pixels_tf(decode_image_tf(tf.constant(str(path))), spec).numpy()
    np.testing.assert_allclose(training, expected, atol=tolerance)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_odd_images_are_classified(corpus, fmt):
    model = corpus.tflite if fmt == "tflite" else corpus.onnx
    odd = sorted((corpus.labels / "test" / UNICODE_CLASSES[0]).glob("odd *"))
    assert len(odd) == len(ODD)
    result = edgekit("predict", model, *odd, "--top-k", 3, "--json")
    _ok(result)
    doc = json.loads(result.stdout)
    assert [r["image"] for r in doc["results"]] == [str(p) for p in odd]
    for r in doc["results"]:
        assert {t["label"] for t in r["top_k"]} == set(UNICODE_CLASSES)
        assert sum(t["probability"] for t in r["top_k"]) == pytest.approx(1, abs=1e-4)


# -- unicode class names round-trip --------------------------------------------------------

def test_unicode_class_names_round_trip(corpus):
    from edgekit.runtime import read_metadata

    meta = json.loads((corpus.run / "edgekit.json").read_text(encoding="utf-8"))
    assert meta["class_names"] == list(UNICODE_CLASSES)
    assert meta["data"]["images"] == 3 * TRAIN_PER_CLASS and meta["data"]["skipped"] == 1  # the bomb
    for path in (corpus.tflite, corpus.onnx):
        assert read_metadata(path).class_names == UNICODE_CLASSES
        result = edgekit("predict", path, corpus.good_image, "--top-k", 3, "--json")
        _ok(result)
        assert {t["label"] for t in json.loads(result.stdout)["results"][0]["top_k"]} == set(UNICODE_CLASSES)


def test_evaluate_names_unicode_classes_and_uses_odd_images(corpus, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = edgekit("evaluate", corpus.run, "--data", corpus.labels, "--out", tmp_path / "eval", "--json")
    _ok(result)
    assert not [w for w in caught if "Glyph" in str(w.message)]  # CJK names: no font warning on stderr
    doc = json.loads(result.stdout)
    assert list(doc["per_class_accuracy"]) == list(UNICODE_CLASSES) == doc["class_names"]
    assert doc["skipped"] == 0 and doc["images"] == 3 * TEST_PER_CLASS + len(ODD)
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    assert saved["class_names"] == list(UNICODE_CLASSES)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["confusion.png", "evaluation.json"]


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_evaluate_file_names_unicode_classes_and_uses_odd_images(corpus, fmt):
    path = corpus.tflite if fmt == "tflite" else corpus.onnx
    result = edgekit("evaluate", path, "--data", corpus.labels, "--reference", corpus.run, "--json")
    _ok(result)
    doc = json.loads(result.stdout)
    assert list(doc["per_class_accuracy"]) == list(UNICODE_CLASSES) == doc["class_names"]
    assert doc["skipped"] == 0 and doc["images"] == 3 * TEST_PER_CLASS + len(ODD)
    assert doc["agreement"] == 1.0  # an fp32 file reads the odd images as training does


def test_augment_grid_of_unicode_classes(corpus, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = edgekit("augment", "--data", corpus.labels, "--out", tmp_path / "grid.png", "--n", 4,
                         "--input-size", 16)
    _ok(result)
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"] and (tmp_path / "grid.png").stat().st_size > 0


# -- real processes: no traceback reaches the real stderr ----------------------------------

def _process(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


@pytest.mark.parametrize("kind", ["run", "tflite"])
def test_real_process_evaluates_unicode_classes_quietly(corpus, tmp_path, kind):
    p = _process("evaluate", corpus.run if kind == "run" else corpus.tflite, "--data", corpus.labels,
                 "--out", tmp_path, "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert json.loads(p.stdout)["class_names"] == list(UNICODE_CLASSES)


@pytest.mark.parametrize("kind", ["predict bomb", "profile truncated tflite", "train corrupt data"])
def test_real_process_prints_one_line(corpus, tmp_path, kind):
    args, name = {
        "predict bomb": (["predict", corpus.tflite, corpus.images["bomb png"].path], "bomb.png"),
        "profile truncated tflite": (["profile", corpus.models["tflite truncated"].path], "truncated.tflite"),
        "train corrupt data": (["train", "lenet5", "--data", corpus.data["only corrupt images"].path,
                                "--out", tmp_path / "out"], "corrupt"),
    }[kind]
    p = _process(*args)
    assert p.returncode == 2 and p.stdout == "", (p.returncode, p.stderr)
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("edgekit: error: ") and name in line
    assert list(tmp_path.iterdir()) == []


def test_auto_epochs_without_validation_says_what_it_does_instead(corpus, tmp_path):
    """``--epochs auto --val-fraction 0`` on data with no val split: not an error, one line that
    says the run trains every epoch with no early stopping."""
    result = edgekit("train", "lenet5", "--data", corpus.labels, "--out", tmp_path / "run", "--val-fraction", 0,
                     "--batch-size", 8, "--augment", "none", "--json")
    _ok(result)
    lines = [line for line in result.stderr.splitlines() if "no validation images" in line]
    assert len(lines) == 1 and "no early stopping" in lines[0] and "Traceback" not in result.stderr, result.stderr
    meta = json.loads(result.stdout)
    assert len(meta["history"]["loss"]) == meta["epochs"]["epochs"] and meta["epochs"]["patience"] is None
