"""The runtime builds every engine from one EngineSettings (issue 15, item 1), and ``edgekit
profile`` and ``edgekit benchmark`` load files with the same settings and spinning policy (item 2).

Small and fast: a one-node ONNX graph made with ``onnx``, and the float .tflite fixture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from edgekit.runtime import EngineSettings, GraphOptimization, Model, RuntimeModelError, Spinning
from edgekit.runtime.engines import onnx_session

REPO = Path(__file__).resolve().parent.parent
TFLITE = REPO / "tests" / "fixtures" / "tfls_float.tflite"


@pytest.fixture(scope="module")
def relu_onnx(tmp_path_factory) -> Path:
    onnx = pytest.importorskip("onnx", reason="the onnx package makes the test graph")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("engines") / "relu.onnx"
    onnx.save(model, str(path))
    return path


def _entries(session) -> dict[str, str]:
    """The spinning config entries the session was built with (absent ones left out)."""
    options, found = session.get_session_options(), {}
    for key in ("session.intra_op.allow_spinning", "session.force_spinning_stop"):
        try:
            found[key] = options.get_session_config_entry(key)
        except RuntimeError:  # "SessionOptions does not have configuration with key"
            pass
    return found


@pytest.mark.parametrize("spinning, expected", [
    (Spinning.DEFAULT, {}),
    (Spinning.DURING_RUN, {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"}),
    (Spinning.OFF, {"session.intra_op.allow_spinning": "0"}),
])
def test_settings_reach_the_onnxruntime_session(relu_onnx, spinning, expected):
    session = onnx_session(relu_onnx, EngineSettings(threads=2, spinning=spinning))
    assert session.get_session_options().intra_op_num_threads == 2
    assert _entries(session) == expected
    out = session.run(None, {"x": np.array([[-1, 0, 2, -3]], np.float32)})[0]
    assert out.tolist() == [[0, 0, 2, 0]]


def test_model_builds_its_engine_from_the_settings(relu_onnx):
    settings = EngineSettings(threads=1, spinning=Spinning.OFF, optimization=GraphOptimization.DISABLED)
    model = Model(relu_onnx, settings=settings)
    assert model.settings is settings and _entries(model.raw) == {"session.intra_op.allow_spinning": "0"}
    assert Model(relu_onnx, threads=3).settings == EngineSettings(threads=3)


@pytest.mark.parametrize("kwargs, needle", [
    ({"threads": 0}, "threads got 0"),
    ({"threads": True}, "threads got True"),
    ({"spinning": "off"}, "spinning got 'off'; expected one of Spinning.DEFAULT"),
    ({"optimization": 99}, "optimization got 99"),
    ({"disabled_optimizers": ["NchwcTransformer"]}, "disabled_optimizers got ['NchwcTransformer']"),
    ({"save_ort_format": True}, "save_ort_format needs save_optimized"),
])
def test_bad_settings_are_refused_with_the_value(kwargs, needle):
    with pytest.raises(RuntimeModelError) as info:
        EngineSettings(**kwargs)
    assert needle in str(info.value), str(info.value)


def test_threads_and_settings_together_are_refused(relu_onnx):
    with pytest.raises(RuntimeModelError, match="pass the thread count inside settings"):
        Model(relu_onnx, threads=2, settings=EngineSettings(threads=2))
    with pytest.raises(RuntimeModelError, match="expected an EngineSettings"):
        Model(relu_onnx, settings={"threads": 2})


def test_tflite_takes_threads_ignores_spinning_and_refuses_onnxruntime_settings():
    model = Model(TFLITE, settings=EngineSettings(threads=2, spinning=Spinning.DURING_RUN))
    assert model.backend in ("litert", "tflite_runtime", "tensorflow")
    with pytest.raises(RuntimeModelError, match="profile_prefix apply to onnxruntime only"):
        Model(TFLITE, settings=EngineSettings(profile_prefix="x"))


def test_profile_and_benchmark_load_files_with_one_spinning_policy(relu_onnx):
    from edgekit.profile.env import environment
    from edgekit.profile.latency import SPINNING, spinning_record, timing_settings
    from edgekit.profile.runners import load_file

    loaded = load_file(relu_onnx, threads=2, batch=1)  # edgekit profile and edgekit benchmark both call this
    assert loaded.model.settings == timing_settings(2) == EngineSettings(threads=2, spinning=SPINNING)
    assert _entries(loaded.model.raw) == SPINNING.config_entries()
    record = environment("onnxruntime", None)["spinning"]
    assert record == spinning_record() and record["policy"] == SPINNING.value
    loaded.call()


def test_only_the_runtime_constructs_engines():
    """``grep`` finds interpreter and session construction in one module (issue 15's done-when)."""
    found = []
    for root in ("edgekit", "benchmarks", "examples"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if name in ("InferenceSession", "Interpreter"):
                        found.append(str(path.relative_to(REPO)))
    assert sorted(set(found)) == ["edgekit/runtime/engines.py"], found
