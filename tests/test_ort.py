"""ORT format (.ort, ONNX Runtime Mobile) export, runtime, profile and benchmark (issue 12).

One export of the untrained but seeded 28x28 Fashion-MNIST model of ``device_helpers`` to
onnx and ort, fp32 and int8; the .ort files are compared with the .onnx files of the same
export on the shipped real test images.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from device_helpers import SAMPLE, SIZE, no_tensorflow_env, sample_images, tiny_fashion_model


@pytest.fixture(scope="module")
def ort_export(tmp_path_factory):
    from edgekit.export import ExportOptions, Format, Precision, export_model, onnx_int8
    from edgekit.runtime import PreprocessSpec

    folder = tmp_path_factory.mktemp("ort")
    tiny_fashion_model().save(folder / "tiny.keras")
    options = ExportOptions(formats=(Format.ONNX, Format.ORT), precisions=(Precision.FP32, Precision.INT8),
                            out_dir=folder / "out", calibration=str(SAMPLE), num_calibration=50,
                            num_validation=100, preprocess=PreprocessSpec((SIZE, SIZE), channels=1))
    quantize = onnx_int8._quantize_int8
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx_int8, "_quantize_int8", lambda ctx: calls.append(1) or quantize(ctx))
        report = export_model(folder / "tiny.keras", options, log=lambda line: None)
    return report, folder / "out", len(calls)


def _outputs(path) -> np.ndarray:
    """Outputs on the shipped test images (5 per class), prepared as the file's metadata says."""
    from edgekit.runtime import Model, load_image

    model = Model(path)
    channels = model.metadata.preprocess.channels
    return np.asarray(model.predict(np.stack([model.preprocess(load_image(p, channels))
                                              for p in sample_images(per_class=5)])))


def test_every_ort_file_is_written_validated_and_quantized_once(ort_export):
    report, out, quantize_calls = ort_export
    assert report.ok and [f.target.key for f in report.files] == ["onnx/fp32", "onnx/int8", "ort/fp32", "ort/int8"]
    assert quantize_calls == 1  # onnx and ort int8 share one quantized graph
    for f in report.files:
        assert f.path.read_bytes()[4:8] == (b"ORTM" if f.target.format.value == "ort" else f.path.read_bytes()[4:8])
    ort_int8 = report.files[3]
    assert ort_int8.notes["quant_format"] == report.files[1].notes["quant_format"]
    assert "without NchwcTransformer" in ort_int8.notes["ort_optimization"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_ort_matches_the_onnx_file_on_real_images(ort_export, precision):
    _, out, _ = ort_export
    onnx_out, ort_out = _outputs(out / f"tiny_{precision}.onnx"), _outputs(out / f"tiny_{precision}.ort")
    assert onnx_out.shape == ort_out.shape == (50, 10)
    np.testing.assert_array_equal(ort_out.argmax(-1), onnx_out.argmax(-1))
    if precision == "fp32":
        assert np.abs(ort_out - onnx_out).max() <= 1e-5


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_required_operators_config_lists_the_ops(ort_export, precision):
    from onnxruntime.tools.reduced_build_config_parser import parse_config

    report, out, _ = ort_export
    (f,) = [f for f in report.files if f.target.key == f"ort/{precision}"]
    config = out / f"tiny_{precision}.required_operators.config"
    assert f.sidecars == [config]
    text = config.read_text()
    assert f"# - tiny_{precision}.ort\n" in text and ".partial-" not in text
    ops, _ = parse_config(str(config))  # onnxruntime's own reader of --include_ops_by_config files
    listed = {op for opsets in ops.values() for names in opsets.values() for op in names}
    assert "Softmax" in listed
    assert ({"QLinearConv", "QuantizeLinear"} if precision == "int8" else {"FusedConv"}) & listed


def test_metadata_and_predict_without_tensorflow_or_onnx(ort_export, tmp_path):
    _, out, _ = ort_export
    image = sample_images()[0]
    code = (
        "import sys; from edgekit.runtime import Model; m = Model(sys.argv[1]); "
        "print(m.metadata.precision, m.metadata.extra['format'], m.metadata.layout, len(m.metadata.class_names), "
        "m.classify(sys.argv[2], top_k=1)[0][0]); "
        "print(sorted(n for n in ('tensorflow', 'keras', 'onnx', 'tf2onnx') if n in sys.modules))"
    )
    env = no_tensorflow_env(tmp_path / "site", also_block=("onnx",))
    result = subprocess.run([sys.executable, "-c", code, str(out / "tiny_int8.ort"), str(image)],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "blocked import" not in result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("int8 ort NHWC 10 ") and second == "[]"
    cli = subprocess.run([sys.executable, "-m", "edgekit.cli", "predict", str(out / "tiny_fp32.ort"), str(image),
                          "--json"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert cli.returncode == 0 and "blocked import" not in cli.stderr, cli.stderr
    assert json.loads(cli.stdout)


def test_metadata_rewrite_keeps_the_file_loadable(ort_export, tmp_path):
    import onnxruntime as ort

    from edgekit.runtime import METADATA_KEY, read_metadata, write_metadata
    from edgekit.runtime.ortfile import parse_ort, with_metadata_entry

    _, out, _ = ort_export
    path = tmp_path / "copy.ort"
    path.write_bytes(with_metadata_entry((out / "tiny_fp32.ort").read_bytes(), "other", "kept"))
    meta = read_metadata(path)
    write_metadata(path, dataclasses.replace(meta, architecture="rewritten"))
    assert read_metadata(path).architecture == "rewritten"
    assert parse_ort(path.read_bytes()).metadata["other"] == "kept"
    # onnxruntime verifies the whole flatbuffer on load and reads the same entry
    props = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert json.loads(props[METADATA_KEY])["architecture"] == "rewritten" and props["other"] == "kept"


def test_metadata_cannot_be_added_to_an_ort_file_without_metadata_props(tmp_path):
    import onnxruntime as ort

    from edgekit.export.ort_convert import onnx_to_ort
    from edgekit.runtime import RuntimeModelError, read_metadata
    from edgekit.runtime.metadata import _write_ort_payload

    onnx_path = tmp_path / "plain.onnx"
    _toy_onnx(onnx_path)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "plain.ort")
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    assert read_metadata(tmp_path / "plain.ort") is None
    with pytest.raises(RuntimeModelError, match="plain.ort.*no metadata_props field"):
        _write_ort_payload(tmp_path / "plain.ort", "{}")
    converted = tmp_path / "converted.ort"  # edgekit's converter reserves the field
    converted.write_bytes(onnx_to_ort(onnx_path.read_bytes(), tmp_path / "work", int8_activations=False))
    assert read_metadata(converted) is None
    _write_ort_payload(converted, '{"x": 1}')


def _toy_onnx(path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("bad, problem", [
    (b"\x18\x00\x00\x00ORTM" + b"\x00" * 4, "truncated or corrupt"),
    (b"\x08\x00\x00\x00TFL3" + b"\x00" * 64, "not an ORT format file: bytes 4..8 are b'TFL3'"),
    (b"\x08\x01\x12\x07tf2onnx", "not an ORT format file"),
])
def test_bad_ort_files_are_refused_in_one_line(tmp_path, bad, problem):
    from edgekit.runtime import Model, RuntimeModelError

    path = tmp_path / "bad.ort"
    path.write_bytes(bad)
    with pytest.raises(RuntimeModelError, match=problem) as info:
        Model(path)
    assert "\n" not in str(info.value)


def test_fp16_and_dynamic_ort_are_refused_or_skipped_with_a_reason():
    from edgekit.export.targets import get_target, select_targets

    for precision in ("fp16", "dynamic"):
        with pytest.raises(ValueError, match=f"ort {precision} is not supported: ort files are converted from "):
            get_target("ort", precision)
    chosen, skipped = select_targets(("tflite", "ort"), ("fp16",))
    assert [t.key for t in chosen] == ["tflite/fp16"] and skipped[0][0] == "ort/fp16"


def test_profile_and_benchmark_accept_ort(ort_export):
    from edgekit.benchmark.run import benchmark_export
    from edgekit.profile import ProfileOptions, profile_model
    from edgekit.profile.latency import TimingPlan

    report, out, _ = ort_export
    timing = TimingPlan(warmup=1, runs=3)
    profile = profile_model(out / "tiny_int8.ort", ProfileOptions(timing=timing, per_op=True), log=lambda line: None)
    doc = profile.to_dict()
    assert doc["format"] == "ort" and doc["params"] is None and doc["macs"] is None
    assert "not read from .ort files" in doc["static_notes"][0]
    assert doc["runs"][0]["per_op"]["ops"] and doc["latency_ms"]["mean"] > 0
    bench = benchmark_export(report, str(SAMPLE), timing=timing, log=lambda line: None)
    rows = {r.key: r for r in bench.rows}
    assert rows["ort/int8"].ok and rows["ort/int8"].latency is not None
    assert "MACs unknown" not in rows["ort/fp32"].note and rows["ort/fp32"].macs is None
