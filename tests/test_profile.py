"""``edgekit profile``: static counts read from .tflite/.onnx files (a hand-computable conv and a
tiny MobileNetV2 against ``count_model``), int8 share, latency statistics, the JSON schema,
one-line errors on bad files, and ``--remote`` against an OpenSSH server on loopback."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

EDGEKIT = Path(sys.executable).with_name("edgekit")
CONV_MACS = 3 * 3 * 3 * 4 * 4 * 10  # 6x6x3 input, ten 3x3x3 filters, valid: 4x4x10 output
CONV_PARAMS = (3 * 3 * 3 + 1) * 10  # 280


def _export(model, folder: Path, name: str, keras_file: bool = False) -> dict[str, Path]:
    """model -> NAME.tflite (through a SavedModel, as edgekit export does), NAME.onnx (and NAME.keras)."""
    import tensorflow as tf

    from edgekit.export.onnx_convert import keras_to_onnx

    saved = folder / f"{name}_saved"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    paths = {"tflite": folder / f"{name}.tflite", "onnx": folder / f"{name}.onnx", "keras": folder / f"{name}.keras"}
    paths["tflite"].write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    paths["onnx"].write_bytes(keras_to_onnx(model, tuple(int(d) for d in model.inputs[0].shape[1:]), nchw=False))
    if keras_file:
        model.save(paths["keras"])
    return paths


def _quantize_onnx(src: Path, folder: Path) -> dict[str, Path]:
    """Static int8 ONNX in both of onnxruntime's formats (QDQ and QOperator)."""
    from onnxruntime import quantization as q

    class Reader:
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.standard_normal((1, 6, 6, 3)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    out = {}
    for fmt in ("QDQ", "QOperator"):
        out[fmt] = folder / f"conv_{fmt}.onnx"
        q.quantize_static(str(src), str(out[fmt]), Reader(), quant_format=getattr(q.QuantFormat, fmt),
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, per_channel=True)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The hand-computable conv and a MobileNetV2 (alpha 0.35, 32x32), as tflite/onnx/keras."""
    import keras

    from edgekit.models import count_model, create_model

    folder = tmp_path_factory.mktemp("profile")
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 3))
    conv = keras.Model(x, keras.layers.Conv2D(10, 3, bias_initializer=keras.initializers.Constant(0.1))(x))
    mobilenet = create_model("mobilenet_v2", alpha=0.35, input_shape=(32, 32, 3), num_classes=10)
    found = {"conv": _export(conv, folder, "conv", keras_file=True), "mobilenet": _export(mobilenet, folder, "mobilenet"),
             "conv_count": count_model(conv), "mobilenet_count": count_model(mobilenet)}
    found["int8"] = _quantize_onnx(found["conv"]["onnx"], folder)
    return found


def _edgekit(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli.__main__", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _quick(**kwargs):
    from edgekit.profile import ProfileOptions, TimingPlan

    return ProfileOptions(timing=TimingPlan(warmup=1, runs=5), **kwargs)


# -- static figures -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,conv_op", [("tflite", "CONV_2D"), ("onnx", "Conv")])
def test_hand_computable_conv_counts(files, fmt, conv_op):
    from edgekit.profile import read_static

    report = read_static(files["conv"][fmt], fmt)
    assert report.params == CONV_PARAMS == files["conv_count"].params
    assert report.macs == CONV_MACS == files["conv_count"].macs
    assert report.op_counts()[conv_op] == 1
    assert report.size_bytes == files["conv"][fmt].stat().st_size
    assert report.op_share() == {"float": 1.0} and report.int8_mac_share() == 0.0


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_mobilenet_macs_agree_with_count_model(files, fmt):
    from edgekit.profile import read_static

    report = read_static(files["mobilenet"][fmt], fmt)
    want = files["mobilenet_count"].macs
    assert abs(report.macs - want) <= 0.01 * want, (report.macs, want)
    counts = report.op_counts()
    conv_ops = counts.get("CONV_2D", 0) + counts.get("DEPTHWISE_CONV_2D", 0) + counts.get("Conv", 0)
    assert conv_ops == 52  # stem + 16 blocks (expand, depthwise, project; none in the first) + head


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_int8_onnx_macs_and_share(files, fmt):
    from edgekit.profile import read_static

    report = read_static(files["int8"][fmt], "onnx")
    assert report.macs == CONV_MACS
    assert report.int8_mac_share() == 1.0
    assert report.op_share()["int8"] > 0 and "convert" in report.op_share()
    assert report.params == CONV_PARAMS  # int8 weights and int32 bias; scales and zero points are not params


def test_onnx_shapes_without_the_onnx_package(files, monkeypatch):
    """On a device without ``onnx`` the shapes come from an onnxruntime probe run."""
    from edgekit.profile import read_static

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    report = read_static(files["mobilenet"]["onnx"], "onnx")
    assert "onnxruntime probe" in report.shape_source
    assert report.macs == files["mobilenet_count"].macs


# -- timing and memory --------------------------------------------------------------------------


def test_latency_statistics_of_known_samples():
    from edgekit.profile.latency import summarize

    stats = summarize(np.arange(1, 101, dtype=float))  # 1..100 ms
    assert (stats.min, stats.max, stats.mean, stats.p50) == (1, 100, 50.5, 50.5)
    assert stats.p90 == pytest.approx(90.1) and stats.p99 == pytest.approx(99.01)
    assert stats.std == pytest.approx(29.0115, abs=1e-4) and stats.runs == 100


def test_min_time_drives_the_run_count():
    from edgekit.profile.latency import MIN_RUNS, TimingPlan, measure

    _, stats = measure(lambda: time.sleep(0.002), TimingPlan(warmup=0, min_time_s=0.1))
    assert stats.runs >= MIN_RUNS and stats.total_s >= 0.1
    assert stats.runs < 0.3 / 0.002  # stopped soon after the budget
    _, exact = measure(lambda: None, TimingPlan(warmup=0, runs=7))
    assert exact.runs == 7


@pytest.mark.parametrize("std,warns", [(0.5, True), (0.01, False)])
def test_spread_warning_advises_pinning(std, warns):
    from edgekit.profile.latency import LatencyStats, spread_warning

    stats = LatencyStats(runs=50, total_s=0.05, min=0.5, max=3, mean=1.0, std=std, p50=1, p90=1.5, p99=2.5)
    warning = spread_warning(stats, pinned=False)
    assert (warning is not None) == warns
    if warns:
        assert "--cpus" in warning and "CV 50%" in warning


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_profile_model_records_latency_memory_and_per_op(files, fmt):
    from edgekit.profile import profile_model

    report = profile_model(files["conv"][fmt], _quick(per_op=True), log=lambda line: None)
    (run,) = report.runs
    s = run.stats
    assert s.runs == 5 and 0 < s.min <= s.p50 <= s.p90 <= s.p99 <= s.max
    assert run.fps == pytest.approx(1000 / s.mean) and run.init_ms > 0 and run.first_ms > 0
    mem = run.memory
    assert mem.peak_after_runs >= mem.rss_after_load > 0 and mem.peak_source
    per_op = run.per_op
    if fmt == "tflite":
        assert run.xnnpack is True and mem.arena_bytes is None and "LiteRT" in mem.arena_note
        assert per_op["estimated"] and "estimate" in per_op["method"]
        assert sum(o["ms"] for o in per_op["ops"]) == pytest.approx(s.mean, rel=1e-3)
    else:
        assert run.xnnpack is None and mem.arena_bytes > 0
        assert not per_op["estimated"] and "onnxruntime profiler" in per_op["method"]
        assert {o["type"] for o in per_op["ops"]} >= {"Conv"}


def test_batch_and_fixed_batch_inputs(files):
    from edgekit.profile import profile_model
    from edgekit.profile.runners import input_arrays
    from edgekit.runtime import RuntimeModelError, TensorInfo

    report = profile_model(files["mobilenet"]["tflite"], _quick(batch=3), log=lambda line: None)
    assert report.runs[0].fps == pytest.approx(3000 / report.runs[0].stats.mean)
    with pytest.raises(RuntimeModelError, match="--batch 2: input 'x' has a fixed batch of 1"):
        input_arrays([TensorInfo("x", (1, 6, 6, 3), np.dtype("float32"))], batch=2)


def test_keras_file_is_timed_in_tensorflow(files):
    from edgekit.profile import profile_model

    report = profile_model(files["conv"]["keras"], _quick(), log=lambda line: None)
    assert report.static.format == "keras" and report.runs[0].backend == "keras"
    assert (report.static.params, report.static.macs) == (CONV_PARAMS, CONV_MACS)


def test_runtime_only_profile_never_imports_tensorflow(files):
    code = ("import sys\nfrom edgekit.profile import ProfileOptions, TimingPlan, profile_model\n"
            "for p in sys.argv[1:]:\n"
            "    profile_model(p, ProfileOptions(timing=TimingPlan(warmup=0, runs=2)), log=lambda line: None)\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, str(files["conv"]["tflite"]), str(files["conv"]["onnx"])],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the command line ---------------------------------------------------------------------------


def _check_schema(doc: dict, threads: list[int]) -> None:
    for key in ("schema", "model", "format", "size_bytes", "params", "macs", "ops", "op_share", "int8_mac_share",
                "batch", "latency_ms", "fps", "memory", "runs", "environment", "warnings"):
        assert key in doc, key
    assert [r["threads"] for r in doc["runs"]] == threads
    for run in doc["runs"]:
        lat = run["latency_ms"]
        assert lat["p50"] <= lat["p90"] <= lat["p99"] and lat["mean"] > 0 and run["fps"] > 0
        assert run["memory"]["peak_rss_bytes"] > 0
    assert doc["latency_ms"] == doc["runs"][0]["latency_ms"]
    env = doc["environment"]
    for key in ("cpu_model", "cpu_cores", "os", "arch", "runtime", "runtime_version", "edgekit_version"):
        assert env[key], key


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_cli_json_one_record_per_thread_count(files, fmt):
    out = _edgekit("profile", str(files["conv"][fmt]), "--threads", "1,2", "--runs", "5", "--warmup", "1",
                   "--cpus", "0", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # the whole stdout is one JSON document
    _check_schema(doc, [1, 2])
    assert (doc["macs"], doc["params"], doc["format"]) == (CONV_MACS, CONV_PARAMS, fmt)
    assert doc["environment"]["cpus_pinned"] == [0] and doc["environment"]["cpus_allowed"] == [0]
    assert {r["xnnpack"] for r in doc["runs"]} == ({True} if fmt == "tflite" else {None})


def test_cli_table_output(files):
    out = _edgekit("profile", str(files["mobilenet"]["tflite"]), "--runs", "5", "--per-op")
    assert out.returncode == 0, out.stderr
    assert "MACs 1,196,592" in out.stdout and "CONV_2D 35" in out.stdout
    assert "p99" in out.stdout and "(ESTIMATE)" in out.stdout and "XNNPACK on" in out.stdout


def _bad_files(folder: Path, files) -> dict[str, Path]:
    data = files["conv"]["tflite"].read_bytes()
    onnx = files["conv"]["onnx"].read_bytes()
    made = {"empty.tflite": b"", "random.tflite": np.random.default_rng(0).bytes(4096),
            "truncated.tflite": data[: len(data) // 2], "random.onnx": b"\xff" * 64,
            "truncated.onnx": onnx[: len(onnx) - 200]}
    for name, content in made.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in made}


@pytest.mark.parametrize("name,needle", [
    ("missing.tflite", "does not exist"), ("empty.tflite", "is empty"), ("random.tflite", "not a TFLite file"),
    ("truncated.tflite", "truncated or corrupt"), ("random.onnx", "not an ONNX file"),
    ("truncated.onnx", "not an ONNX file"), ("model.pb", "expected a .tflite, .onnx, .ort or .keras"),
])
def test_bad_files_give_one_line_errors(files, tmp_path, name, needle):
    _bad_files(tmp_path, files)
    out = _edgekit("profile", str(tmp_path / name), "--runs", "2", "--json")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and needle in lines[0], out.stderr


@pytest.mark.parametrize("args,needle", [
    (("--threads", "0"), "--threads got '0'"), (("--threads", "a"), "--threads got 'a'"),
    (("--runs", "3", "--min-time", "1"), "alternatives"), (("--cpus", "9999"), "--cpus got 9999"),
])
def test_bad_options_give_one_line_errors(files, args, needle):
    out = _edgekit("profile", str(files["conv"]["tflite"]), *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr


# -- --remote over SSH ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An OpenSSH server on a free loopback port that accepts a fresh key for the current user."""
    if not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("needs /usr/sbin/sshd, ssh and ssh-keygen (apt-get install openssh-server openssh-client)")
    if not os.path.isdir("/run/sshd"):  # sshd's privilege-separation directory, made by its service unit
        try:
            os.makedirs("/run/sshd", mode=0o755)
        except OSError:
            pytest.skip("sshd needs /run/sshd, which this user cannot create")
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        "StrictModes no", "UsePAM no", ""]))
    server = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"sshd exited: {server.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    ssh_args = ["--remote", f"{getpass.getuser()}@127.0.0.1", "--remote-port", str(port),
                "--ssh-identity", str(d / "user_key"), "--ssh-option", "StrictHostKeyChecking=no",
                "--ssh-option", f"UserKnownHostsFile={d / 'known_hosts'}", "--ssh-option", "BatchMode=yes",
                "--ssh-option", "LogLevel=ERROR"]
    yield ssh_args
    server.terminate()
    server.wait(timeout=10)


def test_remote_profile_over_ssh_keeps_a_name_with_spaces(files, sshd, tmp_path):
    local = tmp_path / "my 'odd' model.tflite"
    shutil.copy(files["conv"]["tflite"], local)
    out = _edgekit("profile", str(local), *sshd, "--remote-edgekit", str(EDGEKIT), "--runs", "3",
                   "--threads", "1,2", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    _check_schema(doc, [1, 2])
    assert doc["model"] == str(local) and doc["macs"] == CONV_MACS
    remote_path = Path(doc["remote"]["path"])
    assert remote_path.name == local.name and not remote_path.parent.exists()  # copied, then cleaned up


def test_remote_errors_are_one_line(files, sshd):
    out = _edgekit("profile", str(files["conv"]["tflite"]), *sshd, "--remote-edgekit", "/nonexistent/edgekit")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--remote-edgekit" in lines[0], out.stderr
