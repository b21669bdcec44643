"""edgekit on 64-bit ARM Linux, by emulation: scripts/arm_check.sh (issue 5).

The slow test runs the whole check: an arm64 Debian bookworm root under qemu-user, the edgekit
wheel installed there by the aarch64 pip, fp32 and int8 .tflite/.onnx files run by
edgekit.runtime and ``edgekit predict`` on x86 and on aarch64, compared. The first run needs
root and the network and takes ~8 min; later runs use .cache/arm64 (~1 min). It skips with the
script's own reason (exit 77) where emulation is impossible. The fast tests check the script's
verdicts and its fake /proc/cpuinfo without emulating anything.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "arm_check.sh"


def _load_arm_check():
    spec = importlib.util.spec_from_file_location("arm_check", REPO / "scripts" / "arm_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["arm_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


arm_check = _load_arm_check()
STEP = 1 / 256  # a softmax int8 output's scale
RNG = np.random.default_rng(0)
PROBS = RNG.dirichlet(np.ones(10), size=20).astype(np.float32)


def _bumped(array: np.ndarray, by: float, where: int = 7) -> np.ndarray:
    out = array.copy()
    out.flat[where] += by
    return out


@pytest.mark.parametrize(
    "criterion, arm, step, status",
    [
        (arm_check.Criterion(max_abs=1e-5), PROBS, None, "pass"),
        (arm_check.Criterion(max_abs=1e-5), _bumped(PROBS, 8e-6), None, "pass"),
        (arm_check.Criterion(max_abs=1e-5), _bumped(PROBS, 3e-5), None, "fail"),
        (arm_check.Criterion(max_steps=1), _bumped(PROBS, STEP), STEP, "pass"),
        (arm_check.Criterion(max_steps=1), _bumped(PROBS, 2 * STEP), STEP, "fail"),
        (arm_check.Criterion(max_steps=0), PROBS, STEP, "pass"),
        (arm_check.Criterion(max_steps=0), _bumped(PROBS, STEP), STEP, "fail"),
        (arm_check.Criterion(max_steps=1), PROBS, None, "fail"),  # int8 criterion, no step known
        (arm_check.Criterion(max_abs=1e-5), PROBS[:5], None, "fail"),  # shapes differ
        (arm_check.Criterion(max_abs=1.0), _bumped(PROBS, np.nan), None, "fail"),  # a class missing
    ],
)
def test_compare_verdicts(criterion, arm, step, status):
    result = arm_check.compare("t", criterion, PROBS, arm, step=step)
    assert result.status == status, result.reason
    assert (result.reason == "") == (status == "pass")


def test_compare_counts_and_top1():
    arm = PROBS.copy()
    top, other = PROBS[3].argmax(), (PROBS[3].argmax() + 1) % 10
    arm[3, [top, other]] = arm[3, [other, top]]  # sample 3 of 20 gets another top-1
    result = arm_check.compare("t", arm_check.Criterion(max_abs=1.0), PROBS, arm)
    assert result.top1_agreement == pytest.approx(19 / 20)
    assert result.status == "pass"  # the criterion bounds values, top-1 is reported
    assert result.differing == int((PROBS != arm).sum()) and result.values == PROBS.size
    assert result.max_abs_diff == pytest.approx(float(np.abs(PROBS - arm).max()))


def test_compare_fails_when_the_prepared_inputs_differ():
    result = arm_check.compare("t", arm_check.Criterion(max_abs=1e-5), PROBS, PROBS, inputs_identical=False)
    assert result.status == "fail" and "inputs" in result.reason


@pytest.mark.parametrize("cpu", sorted(arm_check.CPUS))
@pytest.mark.parametrize("count", [1, 4])
def test_cpuinfo_describes_every_core_as_arm(cpu, count):
    model = arm_check.CPUS[cpu]
    text = arm_check.cpuinfo_text(model, count)
    parts = [line.split(":")[1].strip() for line in text.splitlines() if line.startswith("CPU part")]
    implementers = [line for line in text.splitlines() if line.startswith("CPU implementer")]
    assert parts == [model.part] * count and len(implementers) == count
    assert [line for line in text.splitlines() if line.startswith("processor")][-1].endswith(str(count - 1))


def test_predictions_to_array_orders_by_class_index():
    doc = {"results": [{"image": "a.png", "top_k": [{"index": 2, "label": "c", "probability": 0.7},
                                                    {"index": 0, "label": "a", "probability": 0.2},
                                                    {"index": 1, "label": "b", "probability": 0.1}], "ms": 1.0}]}
    images, probs = arm_check.predictions_to_array(doc, 3)
    assert images == ["a.png"] and probs.tolist() == [[0.2, 0.1, 0.7]]


def test_without_root_or_cache_it_skips_with_a_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(arm_check, "is_root", lambda: False)
    monkeypatch.setattr(arm_check, "ensure_tools", lambda tools: None)
    code = arm_check.main(["--json", "--cache", str(tmp_path / "empty")])
    doc = json.loads(capsys.readouterr().out)
    assert code == arm_check.EXIT_SKIP == 77
    assert doc["status"] == "skipped" and doc["reason"]


@pytest.mark.parametrize("cpu, target", [("cortex-a72", "raspberry-pi-4"), ("cortex-a76", "raspberry-pi-5"),
                                         ("cortex-a53", "arm64")])
def test_files_are_made_for_the_emulated_board_by_default(cpu, target):
    assert arm_check.parse_args(["--cpu", cpu]).target == target
    assert arm_check.parse_args(["--cpu", cpu, "--target", "android-arm64"]).target == "android-arm64"


def test_an_unknown_target_exits_2_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        arm_check.parse_args(["--target", "raspbery-pi-4"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "raspberry-pi-4" in err and "'raspbery-pi-4'" in err


def _quant_graph(tmp_path, zero_point_type, qlinear: bool):
    import onnx
    from onnx import TensorProto, helper

    zp_name, inits = "zp", [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.1]),
                            helper.make_tensor("zp", zero_point_type, [], [0])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", zp_name], ["q"])]
    if qlinear:
        nodes.append(helper.make_node("QLinearMatMul", ["q", "scale", zp_name, "q", "scale", zp_name,
                                                        "scale", zp_name], ["m"]))
        nodes.append(helper.make_node("DequantizeLinear", ["m", "scale", zp_name], ["y"]))
    else:
        nodes.append(helper.make_node("DequantizeLinear", ["q", "scale", zp_name], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], inits)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_onnx_int8_flavour_is_read_from_the_graph(tmp_path):
    from onnx import TensorProto

    qdq = arm_check.onnx_int8_flavour(_quant_graph(tmp_path, TensorProto.INT8, qlinear=False))
    assert (qdq["quant_format"], qdq["activation_type"]) == ("qdq", "int8")
    qop = arm_check.onnx_int8_flavour(_quant_graph(tmp_path, TensorProto.UINT8, qlinear=True))
    assert (qop["quant_format"], qop["activation_type"], qop["qlinear_ops"]) == ("qoperator", "uint8",
                                                                              ["QLinearMatMul"])


def test_check_target_fails_a_file_made_for_another_target(tmp_path, monkeypatch):
    from onnx import TensorProto

    from edgekit import runtime

    path = _quant_graph(tmp_path, TensorProto.UINT8, qlinear=True)
    made_for = {"name": "raspberry-pi-4"}
    monkeypatch.setattr(runtime, "read_metadata", lambda p: type("M", (), {"target": made_for["name"]})())
    files = [{"path": str(path), "format": "onnx", "precision": "int8"}]
    arm = {"onnx": {"arm": {"models": {path.name: {"target_mismatch": None}}}}}
    [row] = arm_check.check_target("raspberry-pi-4", files, arm)
    assert row.status == "fail" and "wants qdq with int8" in row.reason  # x86's flavour in a Pi's file
    path = _quant_graph(tmp_path, TensorProto.INT8, qlinear=False)
    assert arm_check.check_target("raspberry-pi-4", files, arm)[0].status == "pass"
    made_for["name"] = "x86-vnni"
    [row] = arm_check.check_target("raspberry-pi-4", files, arm)
    assert row.status == "fail" and "'x86-vnni'" in row.reason
    made_for["name"] = "raspberry-pi-4"
    arm["onnx"]["x86"] = {"models": {path.name: {"qdq_int8_allowed": False}}}  # x86 build's own fusion
    [row] = arm_check.check_target("raspberry-pi-4", files, arm)
    assert row.status == "fail" and "x86 runtime" in row.reason
    arm["onnx"]["x86"]["models"][path.name]["qdq_int8_allowed"] = True
    assert arm_check.check_target("raspberry-pi-4", files, arm)[0].status == "pass"
    arm["onnx"]["arm"]["models"][path.name]["target_mismatch"] = "made for target raspberry-pi-4 but ..."
    assert arm_check.check_target("raspberry-pi-4", files, arm)[0].status == "fail"


@pytest.mark.slow
def test_runtime_and_predict_agree_on_emulated_aarch64():
    proc = subprocess.run(["bash", str(SCRIPT), "--json"], capture_output=True, text=True, timeout=3000)
    if proc.returncode == 77:
        pytest.skip(json.loads(proc.stdout)["reason"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["status"] == "pass"
    assert doc["arm"]["machine"] == "aarch64" and doc["arm"]["cpu_part"] == doc["emulation"]["cpu_part"]
    assert "/.cache/arm64/venv/" in doc["arm"]["edgekit_file"]  # the installed wheel, not the tree
    assert doc["tensorflow_imported_on_arm"] is False
    checks = {c["check"]: c for c in doc["checks"]}
    for key in ("tflite/fp32 runtime", "tflite/int8 runtime"):
        assert checks[key]["status"] == "pass" and checks[key]["values"] == doc["images"] * 10
    # export --target raspberry-pi-4 on x86 (the A72's board): every file says so, and the ONNX
    # int8 file is the ARM flavour (QDQ, int8 activations), which the emulated Pi runs as x86 does.
    assert doc["target"] == "raspberry-pi-4"
    for key in ("tflite/fp32 target", "tflite/int8 target", "onnx/int8 target"):
        assert checks[key]["status"] == "pass", checks[key]
