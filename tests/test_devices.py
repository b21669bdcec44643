"""Device targets (``edgekit.devices``): the table and its ONNX int8 choices, host resolution,
the mismatch rule, ``edgekit targets``, and ``export --target`` / ``profile`` of a file made for
another target than this machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import replace

import pytest

from conftest import REPO
from export_helpers import SAMPLE

from edgekit.devices import (
    ActivationType,
    DeviceTarget,
    OnnxQuantFormat,
    get_device,
    list_devices,
    mismatch,
    qdq_int8_fused,
    resolve_host,
)


def _edgekit(*args, timeout=300):
    code = "import sys; from edgekit.cli.main import main; main.main(sys.argv[1:])"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


def _cpuinfo(flags: str = "", part: str | None = None) -> str:
    key = "Features" if part else "flags"
    return f"processor\t: 0\n{key}\t: {flags}\n" + (f"CPU implementer\t: 0x41\nCPU part\t: {part}\n" if part else "")


@pytest.mark.parametrize("name", list_devices())
def test_every_target_resolves_to_a_consistent_onnx_int8_choice(name):
    device = get_device(name)
    q = device.onnx_int8
    assert isinstance(device, DeviceTarget) and (device.host == (name == "host"))
    assert q.weight_type is ActivationType.INT8  # what onnx_convert.quantize writes
    assert q.reason.lower().startswith(f"{q.quant_format.value}, {q.activation_type.value} activations")
    assert q.reduce_range == ("reduce_range" in q.reason)
    if q.reduce_range:  # 7-bit weights only for x86's saturating uint8 x int8 multiply-add
        assert q.activation_type is ActivationType.UINT8 and device.arch == "x86_64"
    if device.arch == "aarch64":
        assert (q.quant_format, q.activation_type, q.reduce_range) == (OnnxQuantFormat.QDQ, ActivationType.INT8, False)
    if device.arch == "x86_64":
        assert q.activation_type is ActivationType.UINT8
    if device.cores is not None and device.threads is not None:
        assert 1 <= device.threads <= device.cores
    assert device.tflite.threads == device.threads and device.tflite.xnnpack
    assert json.loads(json.dumps(device.to_dict()))["onnx_int8"]["quant_format"] == q.quant_format.value


def test_x86_rows_follow_onnxruntimes_guidance():
    avx2, vnni = get_device("x86-avx2").onnx_int8, get_device("x86-vnni").onnx_int8
    assert (avx2.activation_type, avx2.reduce_range) == (ActivationType.UINT8, True)
    assert (vnni.activation_type, vnni.reduce_range) == (ActivationType.UINT8, False)


def test_raspberry_pi_rows():
    pi4, pi5 = get_device("raspberry-pi-4"), get_device("Raspberry-Pi-5")
    assert "Cortex-A72" in pi4.cpu and (pi4.cores, pi4.threads, pi4.dot_product) == (4, 4, False)
    assert "Cortex-A76" in pi5.cpu and (pi5.cores, pi5.dot_product) == (4, True)


@pytest.mark.parametrize("bad, close", [("rpi4", None), ("raspberry-pi", "raspberry-pi-4"), ("x86", None),
                                        ("", None), ("android", "android-arm64")])
def test_unknown_target_lists_the_known_ones(bad, close):
    with pytest.raises(ValueError) as info:
        get_device(bad)
    message = str(info.value)
    assert repr(bad) in message and all(name in message for name in list_devices())
    if close:
        assert f"did you mean {close}" in message or f", {close}?" in message


@pytest.mark.parametrize("machine, cpuinfo, android, want", [
    ("x86_64", _cpuinfo("fpu sse avx2 fma"), False, "x86-avx2"),
    ("x86_64", _cpuinfo("avx2 avx512f avx512_vnni"), False, "x86-vnni"),
    ("AMD64", _cpuinfo("avx2 avx_vnni"), False, "x86-vnni"),
    ("aarch64", _cpuinfo("fp asimd crc32", "0xd08"), False, "raspberry-pi-4"),
    ("aarch64", _cpuinfo("fp asimd asimddp", "0xd0b"), False, "raspberry-pi-5"),
    ("aarch64", _cpuinfo("fp asimd asimddp", "0xd05"), False, "arm64"),  # a Cortex-A55 board
    ("aarch64", _cpuinfo("fp asimd asimddp", "0xd41"), True, "android-arm64"),
    ("riscv64", "", False, "riscv64"),
])
def test_host_resolves_from_the_cpu(machine, cpuinfo, android, want):
    host = resolve_host(machine, cpuinfo=cpuinfo, android=android)
    assert host.name == want and host.host and host.cores and host.threads <= host.cores
    if want == "riscv64":  # not in the table: onnxruntime's default flavour, under its own name
        assert host.onnx_int8.quant_format is OnnxQuantFormat.QDQ and "riscv64" in host.onnx_int8.reason
    else:
        assert host.onnx_int8 == get_device(want).onnx_int8


def test_mismatch_rule():
    x86 = resolve_host("x86_64", cpuinfo=_cpuinfo("avx2"))
    pi4 = resolve_host("aarch64", cpuinfo=_cpuinfo("fp asimd", "0xd08"), android=False)
    why = mismatch("raspberry-pi-4", x86)
    assert "raspberry-pi-4" in why and "x86-avx2" in why and "\n" not in why
    assert mismatch("x86-vnni", x86) and mismatch("raspberry-pi-5", pi4)
    assert mismatch("x86-avx2", x86) is None and mismatch(None, x86) is None
    assert mismatch("arm64", pi4) is None  # a generic arm64 file may be measured on any arm64 device


def test_targets_json_is_one_document():
    p = _edgekit("targets", "--json", timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [t["name"] for t in doc["targets"]] == list_devices()
    assert doc["host"] == doc["targets"][0]["resolves_to"] == resolve_host().name
    p = _edgekit("targets", timeout=60)
    assert p.returncode == 0 and "raspberry-pi-4" in p.stdout and "reduce_range" in p.stdout


@pytest.mark.parametrize("command", ["export", "benchmark"])
def test_unknown_target_is_one_line_exit_2(tmp_path, command):
    extra = ["--data", SAMPLE] if command == "benchmark" else []
    p = _edgekit(command, tmp_path / "model.keras", *extra, "--target", "raspberry-pi", timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and "--target" in lines[0]
    assert "raspberry-pi-4" in lines[0] and "android-arm64" in lines[0]


@pytest.fixture(scope="module")
def pi4_export(tmp_path_factory):
    """An untrained tiny model with a residual block exported for raspberry-pi-4 (tflite and onnx
    int8) on this machine."""
    from export_helpers import tiny_residual_model

    folder = tmp_path_factory.mktemp("pi4")
    tiny_residual_model().save(folder / "tiny.keras")
    p = _edgekit("export", folder / "tiny.keras", "--target", "raspberry-pi-4", "--format", "tflite,onnx",
                 "--quantize", "int8", "--calibration", SAMPLE, "--num-calibration", "20", "--num-validation", "20",
                 "--calibration-method", "minmax", "--max-accuracy-drop", "none", "--min-agreement", "none",
                 "--out", folder / "out", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_export_for_raspberry_pi_4_writes_arm_qdq_int8(pi4_export):
    import onnx

    doc = pi4_export
    assert doc["target"]["name"] == "raspberry-pi-4" and doc["onnx_quant_default"].startswith("QDQ, int8")
    onnx_file = next(f for f in doc["files"] if f["format"] == "onnx")
    notes = onnx_file["notes"]
    assert (notes["target"], notes["quant_format"], notes["activation_type"], notes["reduce_range"]) == \
        ("raspberry-pi-4", "qdq", "int8", False)
    model = onnx.load(onnx_file["path"])
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "edgekit"))
    assert meta["extra"]["target"]["name"] == "raspberry-pi-4"
    zero_points = {i.name: i.data_type for i in model.graph.initializer}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantize and not any(n.op_type == "QLinearConv" for n in model.graph.node)  # QDQ, not QOperator
    assert {zero_points[n.input[2]] for n in quantize} == {onnx.TensorProto.INT8}


def _dq_convs(graph) -> int:
    """Conv nodes fed by a DequantizeLinear: quantized Convs computed in float."""
    producer = {o: n.op_type for n in graph.node for o in n.output}
    return sum(n.op_type == "Conv" and producer.get(n.input[0]) == "DequantizeLinear" for n in graph.node)


def _optimized_ops(path, settings, out) -> tuple[int, int, int]:
    """(float Conv nodes fed by a DequantizeLinear, QLinearConv, QLinearAdd) in the graph that
    onnxruntime runs for ``path`` under ``settings`` (written to ``out``)."""
    import onnx

    from edgekit.runtime import Model

    Model(path, settings=replace(settings, save_optimized=str(out)))
    graph = onnx.load(str(out)).graph
    return _dq_convs(graph), sum(n.op_type == "QLinearConv" for n in graph.node), \
        sum(n.op_type == "QLinearAdd" for n in graph.node)


def test_onnx_file_made_for_arm_runs_with_arms_int8_arithmetic(pi4_export, tmp_path):
    """onnxruntime's ARM build fuses every QDQ Conv and Add into int8 kernels; its x86 build runs
    those touching an int8 tensor with two consumers (the residual branch) in float, so an
    EfficientNet-Lite0 file made for raspberry-pi-4 gave outputs 0.011 apart on x86 and on an
    emulated Cortex-A72. The runtime runs a file made for ARM with ARM's fusion (one QDQ Add and
    four Convs here), and a choice in the settings still wins."""
    import onnx

    from edgekit.runtime import EngineSettings, Model

    path = next(f["path"] for f in pi4_export["files"] if f["format"] == "onnx")
    convs = _dq_convs(onnx.load(path).graph)
    assert convs == 4 and Model(path).settings.qdq_int8_allowed is True
    assert _optimized_ops(path, EngineSettings(), tmp_path / "target.onnx") == (0, convs, 1)
    if not qdq_int8_fused(platform.machine()):  # this build's own default: the branch stays float
        float_convs, _, adds = _optimized_ops(path, EngineSettings(qdq_int8_allowed=False), tmp_path / "x86.onnx")
        assert float_convs >= 2 and adds == 0


def test_tflite_file_records_the_target(pi4_export):
    from edgekit.runtime import read_metadata

    tflite_file = next(f for f in pi4_export["files"] if f["format"] == "tflite")
    assert read_metadata(tflite_file["path"]).target == "raspberry-pi-4"


@pytest.mark.skipif(resolve_host().name == "raspberry-pi-4", reason="this machine is the file's target")
def test_profile_warns_about_a_file_made_for_another_target(pi4_export):
    path = next(f["path"] for f in pi4_export["files"] if f["format"] == "onnx")
    p = _edgekit("profile", path, "--runs", "3", "--warmup", "0", "--json", timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["target"] == {"file": "raspberry-pi-4", "measuring": resolve_host().name}
    assert "raspberry-pi-4" in doc["target_mismatch"] and doc["warnings"][0] == doc["target_mismatch"]
    warned = [line for line in p.stderr.splitlines() if "raspberry-pi-4" in line]
    assert warned == [f"warning: {doc['target_mismatch']}"]


@pytest.mark.parametrize("made_for", ["raspberry-pi-4", "host"])
def test_benchmark_records_the_target_and_the_mismatch(made_for):
    from edgekit.benchmark import benchmark_export
    from edgekit.export import ExportReport

    report = ExportReport(model="m", target=get_device(made_for).to_dict())
    doc = benchmark_export(report, "data", log=lambda line: None).to_dict()
    assert doc["target"] == {"file": get_device(made_for).name, "measuring": resolve_host().name}
    assert (doc["target_mismatch"] is None) == (get_device(made_for).name == resolve_host().name)


@pytest.mark.parametrize("fmt, arch, chosen, want", [
    ("onnx", "aarch64", None, True), ("ort", "aarch64", None, True), ("onnx", "x86_64", None, False),
    ("onnx", None, None, None), ("tflite", "aarch64", None, None), ("onnx", "aarch64", False, False),
])
def test_for_target_sets_onnxruntimes_int8_fusion_from_the_files_target(fmt, arch, chosen, want):
    from edgekit.runtime import EngineSettings
    from edgekit.runtime.engines import for_target

    assert for_target(EngineSettings(threads=2, qdq_int8_allowed=chosen), fmt, arch) == \
        EngineSettings(threads=2, qdq_int8_allowed=want)
