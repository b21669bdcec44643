"""``edgekit export`` as a user runs it: a subprocess of ``main.main(args)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

SAMPLE = REPO / "calibration" / "fashion-mnist"


def _edgekit(*args, cwd=None, prelude=""):
    """``edgekit ARGS`` in a fresh interpreter; ``prelude``: Python run first (after TensorFlow's
    quiet import), e.g. to make a converter fail."""
    code = "import sys; from edgekit.cli.main import main; main.main(sys.argv[1:])"
    if prelude:
        code = "from edgekit.cli.common import quiet_tensorflow; quiet_tensorflow()\n" + prelude + "\n" + code
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO, timeout=300)


def test_json_document_on_stdout(run_dir, tmp_path):  # noqa: F811
    p = _edgekit("export", run_dir, "--format", "tflite,onnx", "--quantize", "fp32,int8",
                 "--onnx-quant-format", "qoperator", "--onnx-activation-type", "uint8",
                 "--num-validation", "50", "--out", tmp_path, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [(f["format"], f["precision"]) for f in doc["files"]] == [
        ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")]
    for f in doc["files"]:
        assert os.path.getsize(f["path"]) == f["size_bytes"] and f["ok"]
        assert {"agreement", "max_abs_diff", "mean_abs_diff", "accuracy", "keras_accuracy", "seconds"} <= set(f)
        assert f["validation_samples"] == 50
    onnx_int8 = doc["files"][3]["notes"]
    assert onnx_int8["quant_format"] == "qoperator" and onnx_int8["why"] == "chosen on the command line"


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt"])
def test_bad_calibration_data_is_one_line_exit_2(run_dir, tmp_path, case):  # noqa: F811
    data = tmp_path / "calib"
    if case in ("empty", "corrupt"):
        for k in ("a", "b"):
            (data / k).mkdir(parents=True)
            if case == "corrupt":
                for i in range(3):
                    (data / k / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    p = _edgekit("export", run_dir, "--quantize", "int8", "--calibration", data, "--out", out)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:"), p.stderr
    assert not out.exists()


def test_existing_file_needs_force(run_dir, tmp_path):  # noqa: F811
    (tmp_path / "fmnist_fp32.tflite").write_bytes(b"old")
    p = _edgekit("export", run_dir, "--out", tmp_path)
    assert p.returncode == 2 and "fmnist_fp32.tflite" in p.stderr and "--force" in p.stderr
    assert (tmp_path / "fmnist_fp32.tflite").read_bytes() == b"old"
    p = _edgekit("export", run_dir, "--out", tmp_path, "--force")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "fmnist_fp32.tflite").stat().st_size > 1000


@pytest.mark.parametrize("option,value", [("--max-accuracy-drop", v) for v in ("-1", "abc", "nan", "inf")]
                         + [("--min-agreement", v) for v in ("101", "-0.5", "most", "nan")])
def test_bad_accuracy_budget_is_one_line_exit_2(run_dir, tmp_path, option, value):  # noqa: F811
    out = tmp_path / "out"
    p = _edgekit("export", run_dir, "--quantize", "int8", option, value, "--out", out)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and repr(value) in lines[0], p.stderr
    assert not out.exists()


def test_budget_miss_is_written_and_fails_only_under_strict(run_dir, tmp_path, monkeypatch):  # noqa: F811
    """A file that no layer choice brings within the budget (every int8 candidate scored 5 pp
    under Keras) is written with the miss reported; --strict turns the miss into exit 1."""
    from click.testing import CliRunner

    from edgekit.cli.main import main
    from edgekit.export import budget

    monkeypatch.setattr(budget, "file_score",
                        lambda ctx, data, *a: budget.Score(budget.reference_score(ctx)[1] - 5.0, 99.0))
    args = ["export", str(run_dir), "--quantize", "int8", "--num-validation", "50", "--json"]
    for strict, code in ((False, 0), (True, 1)):
        out = tmp_path / f"strict{strict}"
        result = CliRunner().invoke(main, args + ["--out", str(out)] + (["--strict"] if strict else []))
        assert result.exit_code == code, result.output
        (f,) = json.loads(result.stdout)["files"]
        notes = f["notes"]["budget"]
        assert notes["applied"] and not notes["reached"] and notes["drop_pp"] == 5.0
        assert len(notes["steps"]) > 1 and os.path.exists(f["path"])  # searched, then written anyway
        assert f"{'error' if strict else 'warning'}: fmnist_int8.tflite:" in result.stderr
        assert "NOT within the budget (0.5 pp, agreement >= 98.5%)" in result.stderr


# The library call each converter makes, replaced by one that raises a ValueError (the type of
# bad input) with a two-line message: the CLI must still call it an internal failure.
_FAILING = {
    "tflite/fp32": ("TFLiteConverter", "from tensorflow.lite.python import lite\n"
                                       "lite.TFLiteSavedModelConverterV2.convert = boom"),
    "onnx/fp32": ("tf2onnx", "import tf2onnx.convert\ntf2onnx.convert.from_graph_def = boom"),
    "onnx/int8": ("onnxruntime quantization",
                  "import onnxruntime.quantization as q\nq.quantize_static = boom"),
}


@pytest.mark.parametrize("key", sorted(_FAILING))
def test_converter_failure_is_internal_one_line_exit_1(run_dir, tmp_path, key):  # noqa: F811
    tool, patch = _FAILING[key]
    prelude = ("def boom(*args, **kwargs):\n    raise ValueError('Too many bins for data range.\\nsecond line')\n"
               + patch)
    fmt, precision = key.split("/")
    out = tmp_path / "out"
    p = _edgekit("export", run_dir, "--format", fmt, "--quantize", precision, "--num-validation", "20",
                 "--out", out, "--json", prelude=prelude)
    assert p.returncode == 1, p.stderr
    assert p.stdout == ""  # --json: a document or nothing
    assert p.stderr.strip().splitlines() == [
        f"edgekit: error: {tool} failed on {key}: ValueError: Too many bins for data range."], p.stderr
    assert not out.exists() or list(out.iterdir()) == []  # no file, no hidden partial file


def test_quickstart_says_the_budget_verdict_and_warns_on_a_miss(capsys):
    """The main job prints what the int8 budget decided for each file, as ``edgekit export``
    does, and warns on stderr about a file written although it misses the budget."""
    from pathlib import Path
    from types import SimpleNamespace

    from edgekit.cli.quickstart_cmd import _say_budget

    def file(fmt, notes):
        return SimpleNamespace(target=SimpleNamespace(format=SimpleNamespace(value=fmt)),
                               path=Path(f"/runs/q/q_{fmt}"), notes=notes)

    met = {"applied": True, "reached": True, "summary": "int8 accuracy 90.00% ..., within the budget"}
    missed = {"applied": True, "reached": False, "summary": "int8 accuracy 78.70% ..., NOT within the budget"}
    _say_budget([file("tflite", {"budget": met}), file("onnx", {"budget": missed}), file("tflite", {})])
    err = capsys.readouterr().err.splitlines()
    assert err == ["edgekit quickstart: tflite " + met["summary"], "edgekit quickstart: onnx " + missed["summary"],
                   "edgekit: warning: q_onnx: " + missed["summary"]]
