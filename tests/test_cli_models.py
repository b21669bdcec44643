"""``edgekit summary`` / ``edgekit models`` through the real console entry point: JSON on a
clean stdout, one-line errors with exit 2, .keras files."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import pytest
from keras import layers

from conftest import REPO


def _edgekit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli.__main__", *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def test_summary_json_has_integer_params_and_macs():
    out = _edgekit("summary", "mobilenet_v2", "--alpha", "0.35", "--input-size", "32", "--classes", "10", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # the whole stdout is one JSON document
    assert isinstance(doc["params"], int) and isinstance(doc["macs"], int)
    assert doc["params"] == sum(r["params"] for r in doc["layers"])
    assert doc["macs"] == sum(r["macs"] for r in doc["layers"]) > 0


def test_summary_of_a_keras_file_counts_the_worked_example(tmp_path):
    x = keras.Input((6, 6, 3))
    path = tmp_path / "conv.keras"
    keras.Model(x, layers.Conv2D(5, 3, use_bias=False)(x)).save(path)
    out = _edgekit("summary", str(path), "--json", "--no-layers")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["macs"] == 2160


@pytest.mark.parametrize("args,needle", [
    (("summary", "mobilenetv2"), "unknown model 'mobilenetv2'"),
    (("summary", "mobilenet_v2", "--alpha", "x"), "--alpha"),
    (("summary", "mobilenet_v2", "--input-size", "16"), "at least 32x32"),
    (("summary", "missing.keras"), "does not exist"),
    (("models", "--family", "nope"), "--family got 'nope'"),
    (("nosuchcommand",), "No such command"),
])
def test_bad_arguments_exit_2_with_one_line(args, needle):
    out = _edgekit(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and needle in lines[0]
    assert out.stdout == ""


def test_models_lists_a_family_as_json():
    out = _edgekit("models", "--family", "mobilenet", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["models"]}
    assert set(rows) == {"mobilenet_v1", "mobilenet_v2"}
    assert rows["mobilenet_v2"]["params"] == 3_538_984  # REFERENCE.md, keras.applications
