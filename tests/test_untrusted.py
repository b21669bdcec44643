"""Model files and arguments from elsewhere: nothing in them runs code or reads outside files.

- ``.keras`` files with a Lambda layer (Python bytecode, or a function looked up by name) are
  refused by every entry point that loads .keras files, in Keras safe mode, with one line that
  says why; the Lambda's code never runs (it would touch a marker file).
- ONNX files whose external data lies outside their folder (``..``, absolute, through a symlink)
  are refused by the runtime before onnxruntime sees them; external data inside works.
- ``--remote`` profiling passes every argument to the device intact through ssh's remote
  shell: a fake ``ssh`` on PATH runs the remote command with ``sh -c`` as sshd would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO
from edgekit.cli.main import main

SAMPLE = REPO / "calibration" / "fashion-mnist"


def _cli(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _assert_one_line_error(result, *words):
    """Exit 2 and one error line, the last on stderr (train logs its data summary first)."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert errors == lines[-1:] and lines[-1].startswith("edgekit: error: "), result.stderr
    for word in words:
        assert word in lines[-1], lines[-1]
    return lines[-1]


# --- .keras files with Lambda layers --------------------------------------------------------

def _touch_function(marker: Path):
    """A function whose only effect is to create ``marker``; built from source so that its code
    object (what Keras marshals for a lambda) holds the path as a constant."""
    return eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")


def named_touch(x):  # a Lambda function that Keras stores by module and name, not as bytecode
    Path(os.environ.get("EDGEKIT_TEST_MARKER", os.devnull)).touch()
    return x


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """{kind: .keras file} for a bytecode lambda and a named function, and the marker path that
    the lambda creates when it runs. The models take 32x32x1 images and have 10 classes, so that
    each command gets as far as loading."""
    import keras

    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "lambda-ran"
    files = {}
    for kind, fn in (("bytecode", _touch_function(marker)), ("named", named_touch)):
        inputs = keras.Input((32, 32, 1))
        x = keras.layers.Lambda(fn, name="evil")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="predictions")(x))
        files[kind] = folder / f"{kind}.keras"
        model.save(files[kind])
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    return files, marker


@pytest.fixture
def no_marker(evil):
    _, marker = evil
    marker.unlink(missing_ok=True)
    yield marker
    assert not marker.exists(), "the Lambda layer's code ran"


def test_the_marker_works_when_safe_mode_is_off(evil, no_marker):
    """Without safe mode the lambda does run: the marker checks below can fail."""
    import keras

    files, marker = evil
    keras.models.load_model(files["bytecode"], compile=False, safe_mode=False)
    assert marker.exists()
    marker.unlink()


def _load_checkpoint(path: Path, tmp_path: Path):
    """A run directory whose checkpoint is ``path`` (what --resume would load)."""
    from edgekit.train import runstate

    ckpt = tmp_path / "run" / runstate.CHECKPOINTS
    ckpt.mkdir(parents=True)
    (ckpt / "epoch-001.keras").write_bytes(path.read_bytes())
    runstate.load_checkpoint(tmp_path / "run", {"epoch": 1, "checkpoint": "epoch-001.keras"})


def _load_pretrained(path: Path, tmp_path: Path):
    from edgekit.models import create_model
    from edgekit.train.transfer import load_pretrained

    load_pretrained(create_model("lenet5", (32, 32, 1), 10), str(path))


def _load_for_eval(path: Path, tmp_path: Path):
    from edgekit.evaluation.keras_model import load_for_eval

    load_for_eval(str(path))


def _export_source(path: Path, tmp_path: Path):
    from edgekit.export.source import load_source

    load_source(path)


def _summary(path: Path, tmp_path: Path):
    from edgekit.models.report import summarize

    summarize(str(path))


def _keras_profile(path: Path, tmp_path: Path):
    from edgekit.profile.keras_profile import load_keras

    load_keras(path, 1, 1)


LOADERS = {"resume checkpoint": _load_checkpoint, "train --weights": _load_pretrained,
           "evaluate": _load_for_eval, "export": _export_source, "summary": _summary,
           "profile": _keras_profile}


@pytest.mark.parametrize("kind", ["bytecode", "named"])
@pytest.mark.parametrize("loader", LOADERS)
def test_every_keras_loader_refuses_lambda_layers(evil, no_marker, tmp_path, loader, kind, monkeypatch):
    from edgekit.models.safe_load import UnsafeModelError

    monkeypatch.setenv("EDGEKIT_TEST_MARKER", str(no_marker))
    files, _ = evil
    with pytest.raises(UnsafeModelError) as info:
        LOADERS[loader](files[kind], tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "refused to load" in message and "Lambda layer 'evil'" in message, message
    assert "arbitrary Python code" in message and "safe mode" in message, message


CLI_COMMANDS = {
    "export": lambda m, tmp: ["export", m, "--out", tmp / "out"],
    "evaluate": lambda m, tmp: ["evaluate", m, "--data", SAMPLE],
    "summary": lambda m, tmp: ["summary", m],
    "profile": lambda m, tmp: ["profile", m, "--runs", "1"],
    "train --weights": lambda m, tmp: ["train", "lenet5", "--data", SAMPLE, "--out", tmp / "run",
                                       "--weights", m, "--epochs", "1", "--limit", "8"],
}


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_cli_refuses_lambda_layers_in_one_line(evil, no_marker, tmp_path, command):
    files, _ = evil
    result = _cli(*CLI_COMMANDS[command](files["bytecode"], tmp_path))
    _assert_one_line_error(result, "refused to load", "Lambda layer 'evil'", "safe mode")
    assert not (tmp_path / "out").exists()


def test_cli_refusal_in_a_real_process(evil, no_marker, tmp_path):
    """As a user runs it: exit 2, one line on stderr, nothing on stdout, no traceback."""
    files, _ = evil
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", str(files["bytecode"]), "--json",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=300)
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: refused to load"), p.stderr
    assert "Traceback" not in p.stderr


def test_a_keras_file_without_lambda_still_loads(tmp_path):
    import keras

    from edgekit.models.safe_load import load_keras_model

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(tmp_path / "plain.keras")
    assert load_keras_model(tmp_path / "plain.keras").output_shape == (None, 2)
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="cannot load .*broken.keras.* as a Keras model"):
        load_keras_model(tmp_path / "broken.keras")


# --- ONNX external data ---------------------------------------------------------------------

WEIGHTS = np.arange(16, dtype=np.float32).reshape(4, 4)


def _external(name: str, location: str):
    from onnx import TensorProto, numpy_helper

    tensor = numpy_helper.from_array(WEIGHTS, name)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(WEIGHTS.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _onnx_model(path: Path, location: str, where: str = "initializer") -> Path:
    """y = x @ W with W's bytes in an external file at ``location``; W is a graph initializer,
    or the value of a Constant node, or a Constant inside an If node's branches."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    initializers, nodes = [], []
    if where == "initializer":
        initializers.append(_external("W", location))
    elif where == "constant":
        nodes.append(helper.make_node("Constant", [], ["W"], value=_external("Wc", location)))
    else:  # a subgraph: both branches of an If produce W
        w = helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 4])
        branch = helper.make_graph([helper.make_node("Constant", [], ["W"], value=_external("Wc", location))],
                                   "branch", [], [w])
        initializers.append(helper.make_tensor("cond", TensorProto.BOOL, [], [True]))
        nodes.append(helper.make_node("If", ["cond"], ["W"], then_branch=branch, else_branch=branch))
    nodes.append(helper.make_node("MatMul", ["x", "W"], ["y"]))
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializers),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def onnx_folder(tmp_path):
    """tmp/model/ (where the .onnx files go, with inside.bin and weights/w.bin) and tmp/outside.bin."""
    folder = tmp_path / "model"
    (folder / "weights").mkdir(parents=True)
    for p in (tmp_path / "outside.bin", folder / "inside.bin", folder / "weights" / "w.bin"):
        WEIGHTS.tofile(p)
    os.symlink(tmp_path / "outside.bin", folder / "link.bin")
    os.symlink(folder / "weights", folder / "linked-weights")  # a link that stays inside
    return folder


ESCAPES = {
    "parent": lambda tmp: "../outside.bin",
    "absolute": lambda tmp: str(tmp / "outside.bin"),
    "symlink": lambda tmp: "link.bin",
    "nested parent": lambda tmp: "weights/../../outside.bin",
    "windows parent": lambda tmp: "..\\outside.bin",
}


@pytest.fixture
def no_onnxruntime(monkeypatch):
    """Fail the test if onnxruntime is asked to open any file."""
    ort = pytest.importorskip("onnxruntime")
    opened = []
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: opened.append(a) or pytest.fail("onnxruntime opened it"))
    yield
    assert not opened


@pytest.mark.parametrize("where", ["initializer", "constant", "subgraph"])
@pytest.mark.parametrize("escape", ESCAPES)
def test_runtime_refuses_external_data_outside_the_folder(onnx_folder, no_onnxruntime, escape, where):
    from edgekit.runtime import Model, RuntimeModelError

    location = ESCAPES[escape](onnx_folder.parent)
    path = _onnx_model(onnx_folder / "m.onnx", location, where)
    with pytest.raises(RuntimeModelError, match="outside the model's folder") as info:
        Model(path)
    assert repr(location) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("location", ["inside.bin", "weights/w.bin", "linked-weights/w.bin", "./inside.bin"])
def test_external_data_inside_the_folder_works(onnx_folder, location):
    from edgekit.runtime import Model

    pytest.importorskip("onnxruntime")
    model = Model(_onnx_model(onnx_folder / "m.onnx", location))
    x = np.array([[1, 2, 3, 4]], np.float32)
    np.testing.assert_allclose(model.predict(x), x @ WEIGHTS)


def test_missing_external_data_is_named(onnx_folder, no_onnxruntime):
    from edgekit.runtime import Model, RuntimeModelError

    with pytest.raises(RuntimeModelError, match="'gone.bin', which does not exist"):
        Model(_onnx_model(onnx_folder / "m.onnx", "gone.bin"))


@pytest.mark.parametrize("command", ["profile", "predict"])
def test_cli_refuses_external_data_outside_the_folder(onnx_folder, no_onnxruntime, command, tmp_path):
    path = _onnx_model(onnx_folder / "m.onnx", "../outside.bin")
    if command == "profile":
        result = _cli("profile", path, "--runs", "1")
    else:
        np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
        result = _cli("predict", path, tmp_path / "x.npy", "--raw")
    _assert_one_line_error(result, "'../outside.bin'", "outside the model's folder")


# --- ssh quoting ----------------------------------------------------------------------------

# Each is used in the model's file name and as an argument; an injected command would create
# PWNED in the working directory (the test's folder, where the fake ssh runs).
NASTY = {
    "space": "my model",
    "single quote": "it's",
    "double quote": 'say "hi"',
    "semicolon": "a; touch PWNED",
    "command substitution": "$(touch PWNED)",
    "backticks": "`touch PWNED`",
    "newline": "two\nlines; touch PWNED",
    "glob and variables": "* ? $HOME ${PATH} ~",
    "redirect and pipe": "x > PWNED | cat &",
}

FAKE_SSH = """\
#!{python}
# ssh(1) as far as edgekit uses it: options, "--", the destination, then the remote command,
# which sshd runs as `$SHELL -c "<the arguments joined by spaces>"`.
import subprocess, sys
args = sys.argv[1:]
rest = args[args.index("--") + 1:]
sys.exit(subprocess.run(["sh", "-c", " ".join(rest[1:])]).returncode)
"""

FAKE_EDGEKIT = """\
#!{python}
# The device's edgekit: records what it received and prints a profile document.
import json, os, sys
model = sys.argv[2]
record = {{"argv": sys.argv[1:], "model_bytes": open(model, "rb").read().hex(),
          "folder": os.path.dirname(model)}}
with open(os.environ["FAKE_EDGEKIT_RECORD"], "w") as f:
    json.dump(record, f)
print(json.dumps({{"schema": "edgekit.profile/1", "warnings": []}}))
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """A fake ssh on PATH and a fake device edgekit at a path with a space and a quote; returns
    (edgekit path, record file, the file that an injected command would create)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "ssh", FAKE_SSH)
    device = tmp_path / "device dir's"
    device.mkdir()
    edgekit = _script(device / "edge kit", FAKE_EDGEKIT)
    record = tmp_path / "record.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_EDGEKIT_RECORD", str(record))
    monkeypatch.delenv("EDGEKIT_SSH_OPTS", raising=False)
    monkeypatch.chdir(tmp_path)
    return edgekit, record, tmp_path / "PWNED"


@pytest.mark.parametrize("case", NASTY)
def test_remote_profile_passes_every_argument_intact(fake_ssh, tmp_path, case):
    from edgekit.profile.remote import SshTarget, profile_remote

    edgekit, record, pwned = fake_ssh
    text = NASTY[case]
    model = tmp_path / "models" / f"{text}.onnx"
    model.parent.mkdir()
    model.write_bytes(b"model bytes \x00\xff" + text.encode())
    args = ["--threads", "1", "--cpus", text]
    doc = profile_remote(model, SshTarget("user@device", edgekit=str(edgekit)), args, log=lambda line: None)
    received = json.loads(record.read_text())
    assert received["argv"] == ["profile", f"{received['folder']}/{model.name}", *args, "--json"]
    assert bytes.fromhex(received["model_bytes"]) == model.read_bytes()
    assert doc["remote"]["path"] == received["argv"][1]
    assert not pwned.exists(), "a remote argument was run as a command"
    assert not os.path.exists(received["folder"]), "the remote temporary folder was left behind"


def test_cli_remote_profile_with_a_nasty_name(fake_ssh, tmp_path):
    edgekit, record, pwned = fake_ssh
    model = tmp_path / "a b';$(touch PWNED)`touch PWNED`.tflite"
    model.write_bytes(b"TFL3-ish")
    result = _cli("profile", model, "--remote", "me@device", "--remote-edgekit", edgekit, "--runs", "3", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["model"] == str(model) and doc["remote"]["destination"] == "me@device"
    argv = json.loads(record.read_text())["argv"]
    assert argv[1].endswith("/" + model.name) and argv[2:] == ["--threads", "1", "--warmup", "5", "--batch", "1",
                                                                "--runs", "3", "--json"]
    assert not pwned.exists()


@pytest.mark.parametrize("destination", ["-oProxyCommand=touch PWNED", "host;touch PWNED", "a b", "host\n"])
def test_remote_destination_that_ssh_would_read_as_an_option_is_refused(destination):
    from edgekit.profile.remote import SshTarget

    with pytest.raises(ValueError, match="--remote got"):
        SshTarget(destination)


# -- .tflite files whose weights do not match their shapes ---------------------------------------

@pytest.fixture(scope="module")
def small_tflite() -> bytes:
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _mutate_weights(model_bytes: bytes, kind: str) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    graph = model.subgraphs[0]
    consts = [t for t in graph.tensors if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)]
    big = max(consts, key=lambda t: len(model.buffers[t.buffer].data))
    small = min(consts, key=lambda t: len(model.buffers[t.buffer].data))
    if kind == "shape shrunk":  # LiteRT runs this one, reading a fraction of the weights
        big.shape = np.ones(len(big.shape), dtype=np.int32)
    elif kind == "buffers swapped":
        big.buffer, small.buffer = small.buffer, big.buffer
    elif kind == "data cut":
        model.buffers[big.buffer].data = model.buffers[big.buffer].data[:8]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@pytest.mark.parametrize("kind", ["shape shrunk", "buffers swapped", "data cut"])
def test_tflite_weights_that_do_not_fit_their_shape_are_refused(small_tflite, tmp_path, kind):
    from edgekit.runtime import Model, RuntimeModelError

    path = tmp_path / "bad.tflite"
    path.write_bytes(_mutate_weights(small_tflite, kind))
    with pytest.raises(RuntimeModelError, match=r"is corrupt: constant tensor .* needs \d+ bytes but its buffer \d+ holds \d+"):
        Model(path)
    image = tmp_path / "x.npy"
    np.save(image, np.zeros((1, 8, 8, 1), np.float32))
    _assert_one_line_error(_cli("predict", path, image, "--raw"), "constant tensor")


def test_consistent_tflite_still_loads(small_tflite, tmp_path):
    from edgekit.runtime import Model

    path = tmp_path / "good.tflite"
    path.write_bytes(small_tflite)
    assert Model(path).predict(np.zeros((1, 8, 8, 1), np.float32)).shape == (1, 3)
