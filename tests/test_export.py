"""Export layer: every format x precision on a tiny trained model, metadata, validation,
overwrite and data errors, the sensitivity report and selective int8."""

from __future__ import annotations

import csv
import json
import os

import pytest

from export_helpers import SAMPLE


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    from edgekit.export import ExportOptions, Format, Precision, export_model

    out = tmp_path_factory.mktemp("out")
    options = ExportOptions(formats=tuple(Format), precisions=tuple(Precision), out_dir=out, report=True)
    return export_model(run_dir, options, log=lambda line: None), out


TARGET_KEYS = ["tflite/fp32", "tflite/fp16", "tflite/dynamic", "tflite/int8", "onnx/fp32", "onnx/int8",
               "ort/fp32", "ort/int8"]


def test_table_matches_the_tested_keys():
    from edgekit.export import TARGETS

    assert [t.key for t in TARGETS] == TARGET_KEYS


@pytest.mark.parametrize("key", TARGET_KEYS)
def test_every_target_is_written_validated_and_carries_metadata(exported, key):
    from edgekit.runtime import Model, PreprocessSpec, read_metadata

    report, out = exported
    (f,) = [f for f in report.files if f.target.key == key]
    assert f.error is None and f.path.parent == out and f.path.stat().st_size == f.size_bytes > 0
    meta = read_metadata(f.path)
    assert meta.precision == f.target.precision.value
    # Camera-ready defaults: the grayscale model takes RGB; int8 TFLite takes raw uint8 pixels.
    pixels = key == "tflite/int8"
    assert meta.preprocess == PreprocessSpec(size=(28, 28), channels=3, **({"mean": (0.0,), "std": (1.0,)} if pixels else {}))
    assert meta.extra["input"]["trained_preprocess"] == PreprocessSpec(size=(28, 28), channels=1).to_dict()
    assert len(meta.class_names) == 10 and meta.architecture == "tiny" and meta.layout == "NHWC"
    model = Model(f.path)
    want_dtype = "uint8" if pixels else "float32"
    assert str(model.inputs[0].dtype) == want_dtype and model.inputs[0].shape[-1] == 3
    assert meta.extra["quantization"]["input"][0]["dtype"] == want_dtype
    if pixels:
        q = model.inputs[0].quantization
        assert (q.scale, q.zero_point) == (1.0, 0) and str(model.outputs[0].dtype) == "float32"
    v = f.validation
    assert v.samples == 200 and v.accuracy is not None
    if f.target.precision.value in ("fp32", "fp16", "dynamic"):
        assert v.agreement >= 0.995 and v.max_abs_diff < 1e-3
    else:  # int8 of a weak 10-class model: close, not identical
        assert v.agreement >= 0.8 and abs(v.accuracy - report.keras_accuracy) <= 0.05


def test_validation_runs_in_bounded_chunks(exported, monkeypatch):
    """Validation feeds the Keras model and the file a few images at a time (at most
    BATCH_PIXELS pixels a call): the outputs equal one call on every image; a model at a high
    resolution gets one image a call; random validation takes --num-validation images."""
    import numpy as np

    from edgekit.export import datasets, validate
    from edgekit.runtime import Model, PreprocessSpec

    report, _ = exported
    (f,) = [f for f in report.files if f.target.key == "tflite/fp32"]
    inputs = np.random.default_rng(0).normal(size=(10, *Model(f.path).inputs[0].shape[1:])).astype(np.float32)
    data = datasets.ValidationData(inputs, None, "random")
    whole = validate.run_file(f.path, data)
    calls = []
    real_predict = Model.predict
    monkeypatch.setattr(Model, "predict", lambda self, x: calls.append(len(x)) or real_predict(self, x))
    monkeypatch.setattr(validate, "BATCH_PIXELS", 3 * inputs.shape[1] * inputs.shape[2])
    chunked = validate.run_file(f.path, data)
    assert calls == [3, 3, 3, 1]
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    monkeypatch.undo()
    assert validate.batch_size(np.zeros((2, 634, 634, 3), np.float32)) == 1
    assert validate.batch_size(np.zeros((2, 32, 32, 1), np.float32)) == validate.MAX_BATCH
    spec = PreprocessSpec(size=(8, 8), channels=1)
    assert len(datasets.random_validation(spec, 5).inputs) == 5
    assert len(datasets.random_validation(spec).inputs) == len(datasets.random_validation(spec, 10**6).inputs) == 64


def test_report_json_schema_and_skips(exported):
    report, _ = exported
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["ok"] is True and len(doc["files"]) == 8
    for row in doc["files"]:
        for key in ("path", "format", "precision", "size_bytes", "agreement", "max_abs_diff",
                    "mean_abs_diff", "accuracy", "keras_accuracy", "seconds"):
            assert key in row
    assert {s["target"] for s in doc["skipped"]} == {"onnx/fp16", "onnx/dynamic", "ort/fp16", "ort/dynamic"}
    assert "CPU" in doc["onnx_quant_default"]


def test_no_partial_files_left(exported):
    _, out = exported
    assert not [p for p in os.listdir(out) if p.startswith(".")]


def test_sensitivity_report_worst_first(exported):
    report, out = exported
    with open(out / "fmnist_int8_report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 5 and rows[0]["rank"] == "1"
    errs = [float(r["rmse_over_scale"]) for r in rows]
    assert errs == sorted(errs, reverse=True)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= {r["op_name"] for r in rows}
    assert "rmse/scale" in report.sensitivity_table


def test_refuses_to_overwrite_without_force(run_dir, exported):
    from edgekit.export import ExportError, ExportOptions, export_model

    _, out = exported
    before = (out / "fmnist_fp32.tflite").stat().st_mtime_ns
    with pytest.raises(ExportError, match="fmnist_fp32.tflite.*--force"):
        export_model(run_dir, ExportOptions(out_dir=out), log=lambda line: None)
    assert (out / "fmnist_fp32.tflite").stat().st_mtime_ns == before


def test_float_io_int8_and_nchw_onnx(run_dir, tmp_path):
    from edgekit.export import ExportOptions, Format, Precision, export_model
    from edgekit.runtime import Model, read_metadata

    r = export_model(run_dir, ExportOptions(precisions=(Precision.INT8,), float_io=True, out_dir=tmp_path),
                     log=lambda line: None)
    assert str(Model(r.files[0].path).inputs[0].dtype) == "float32"
    r = export_model(run_dir, ExportOptions(formats=(Format.ONNX,), nchw=True, out_dir=tmp_path / "nchw"),
                     log=lambda line: None)
    (f,) = r.files
    assert list(Model(f.path).inputs[0].shape[1:]) == [3, 28, 28]
    assert read_metadata(f.path).layout == "NCHW" and f.validation.agreement == 1.0


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_accuracy_budget_keeps_layers_float(run_dir, tmp_path, fmt):
    from edgekit.export import ExportOptions, Format, Precision, export_model
    from edgekit.runtime import Model

    def int8(pp, out, agreement=None):
        options = ExportOptions(formats=(Format(fmt),), precisions=(Precision.INT8,), out_dir=out,
                                max_accuracy_drop=pp, min_agreement=agreement)
        return export_model(run_dir, options, log=lambda line: None).files[0]

    loose = int8(100.0, tmp_path / "loose").notes["budget"]
    assert loose["applied"] and loose["reached"] and loose["kept_float"] == [] and len(loose["steps"]) == 1
    # Agreement is a condition of its own: 100% agreement asked, any accuracy allowed.
    exact = int8(100.0, tmp_path / "exact", agreement=100.0)
    notes = exact.notes["budget"]
    assert notes["min_agreement"] == 100.0 and notes["plain_agreement"] == notes["steps"][0]["agreement"]
    assert notes["reached"] == (notes["agreement"] == 100.0)
    assert notes["agreement"] == pytest.approx(100 * exact.validation.agreement, abs=1e-3)
    if notes["plain_agreement"] < 100.0:
        assert len(notes["steps"]) > 1 and notes["kept_float"] and notes["agreement"] >= notes["plain_agreement"]
    # A budget below what any int8 file reaches: layers are kept float, searched by doubling then
    # bisection (far fewer conversions than layers), and the best file is still written.
    tight = int8(0.0, tmp_path / "tight")
    notes = tight.notes["budget"]
    reference, plain = notes["reference_percent"], notes["plain_percent"]
    assert notes["steps"][0] == {"kept": 0, "percent": plain, "agreement": notes["plain_agreement"]}
    if plain < reference:  # the tiny model loses something in int8: the search ran
        assert len(notes["steps"]) > 1 and notes["percent"] >= plain
        assert notes["kept_float"] and notes["latency_ms"] is not None and notes["plain_latency_ms"] is not None
        assert notes["percent"] == pytest.approx(100 * tight.validation.accuracy, abs=1e-3)
        assert isinstance(notes["size_cost_bytes"], int) and notes["plain_size_bytes"] > 0
    assert notes["reached"] == (reference - notes["percent"] <= 0)
    assert Model(tight.path).predict  # written and loadable either way
    off = int8(None, tmp_path / "off").notes["budget"]
    assert off == {"applied": False, "why": "--max-accuracy-drop none"}


def test_budget_search_is_logarithmic():
    from edgekit.export.budget import Budget, Score, enforce, smallest_fitting

    calls = []

    def fits(k):
        calls.append(k)
        return k >= 37

    assert smallest_fitting(200, fits) == 37 and len(calls) <= 2 * 8 + 1
    assert smallest_fitting(10, lambda k: False) is None
    assert smallest_fitting(0, lambda k: True) is None
    assert smallest_fitting(5, lambda k: True) == 1
    # enforce: scores rise as layers are kept float; the smallest k within 1 pp of 90% is 3.
    ranked = [f"layer{i}" for i in range(20)]
    def accuracy(m):
        return Score(86.0 if m == b"plain" else 86.0 + len(m), 95.0)

    model, outcome = enforce(Budget(1.0), "accuracy", 90.0, b"plain", score=accuracy,
                             ranking=lambda: ranked, build=lambda kept: b"x" * len(kept))
    assert model == b"xxx" and outcome.kept_float == ranked[:3] and outcome.reached
    assert outcome.size_cost_bytes == 3 - 5 and outcome.drop_pp == 1.0
    # With an agreement floor the accuracy alone is not enough: agreement 95 + k reaches 99 at k = 4.
    model, outcome = enforce(Budget(1.0, 99.0), "accuracy", 90.0, b"plain",
                             score=lambda m: Score(accuracy(m).percent, 95.0 + len(m) * (m != b"plain")),
                             ranking=lambda: ranked, build=lambda kept: b"x" * len(kept))
    assert model == b"xxxx" and outcome.reached and outcome.agreement == 99.0 and outcome.plain_agreement == 95.0
    assert "agreement 99.00%" in outcome.summary() and "agreement >= 99%" in outcome.summary()
    # Never within: the file that misses by the fewest points is kept, and the miss is reported.
    model, outcome = enforce(Budget(1.0), "accuracy", 90.0, b"plain", score=lambda m: Score(80.0 + (len(m) == 2), 90.0),
                             ranking=lambda: ranked, build=lambda kept: b"x" * len(kept))
    assert model == b"xx" and not outcome.reached and "NOT within" in outcome.summary()


def test_bare_keras_file_defaults_and_int8_needs_data(run_dir, tmp_path):
    import shutil

    from edgekit.export import ExportError, ExportOptions, Precision, export_model
    from edgekit.runtime import read_metadata

    shutil.copy(run_dir / "model.keras", tmp_path / "bare.keras")
    r = export_model(tmp_path / "bare.keras", ExportOptions(), log=lambda line: None)
    assert any("127.5" in w for w in r.warnings) and "random" in r.validation_source
    assert read_metadata(tmp_path / "bare_fp32.tflite").preprocess.size == (28, 28)
    with pytest.raises(ExportError, match="calibration data"):
        export_model(tmp_path / "bare.keras", ExportOptions(precisions=(Precision.INT8,)), log=lambda line: None)
    assert not (tmp_path / "bare_int8.tflite").exists()
    r = export_model(tmp_path / "bare.keras",
                     ExportOptions(precisions=(Precision.INT8,), calibration=str(SAMPLE), num_calibration=20),
                     log=lambda line: None)
    assert read_metadata(r.files[0].path).class_names[0] == "T-shirt/top"


def test_a_callers_calibration_data_is_what_the_quantizer_gets(run_dir, tmp_path):
    """ExportOptions.calibration takes any CalibrationData (iterable of float32 batches): the
    same images in batches of 4 give the same int8 file as --calibration DATA; a batch of the
    wrong image shape is refused with a one-line DataError before anything is written."""
    import numpy as np

    from edgekit.data import ArrayCalibration, DataError, calibration_array, calibration_batches, load_split
    from edgekit.export import ExportOptions, Precision, export_model
    from edgekit.runtime.spec import PreprocessSpec

    spec = PreprocessSpec.from_dict(json.loads((run_dir / "edgekit.json").read_text())["preprocess"])
    images = calibration_array(calibration_batches(load_split(SAMPLE, "train"), spec, num=20, seed=0))
    by_path = export_model(run_dir, ExportOptions(precisions=(Precision.INT8,), num_calibration=20,
                                                  out_dir=tmp_path / "path", max_accuracy_drop=None),
                           log=lambda line: None)
    given = export_model(run_dir, ExportOptions(precisions=(Precision.INT8,), calibration=ArrayCalibration(images, 4),
                                                out_dir=tmp_path / "given", max_accuracy_drop=None),
                         log=lambda line: None)
    assert "ArrayCalibration" in given.calibration_source
    assert by_path.files[0].path.read_bytes() == given.files[0].path.read_bytes()
    wrong = ArrayCalibration(np.zeros((4, 16, 16, 1), np.float32), 4)
    with pytest.raises(DataError, match=r"calibration batch 0 got float32 \(4, 16, 16, 1\); expected float32 "):
        export_model(run_dir, ExportOptions(precisions=(Precision.INT8,), calibration=wrong, out_dir=tmp_path / "bad"),
                     log=lambda line: None)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_choices_and_unsupported_pairs():
    from edgekit.export import Format, Precision, get_target, parse_choices, select_targets

    assert parse_choices("tflite, onnx,tflite", Format, "--format") == (Format.TFLITE, Format.ONNX)
    with pytest.raises(ValueError, match="--quantize got 'int4'; expected one of fp32, fp16, dynamic, int8"):
        parse_choices("fp32,int4", Precision, "--quantize")
    with pytest.raises(ValueError, match="onnx fp16 is not supported: .*CPU"):
        get_target("onnx", "fp16")
    with pytest.raises(ValueError, match="onnx dynamic"):
        select_targets([Format.ONNX], [Precision.DYNAMIC])
    targets, skipped = select_targets([Format.TFLITE, Format.ONNX], [Precision.FP16])
    assert [t.key for t in targets] == ["tflite/fp16"] and skipped[0][0] == "onnx/fp16"


@pytest.mark.parametrize("machine, flags, want, reduce_range", [
    # onnxruntime's guidance: 7-bit weights where AVX2's uint8 x int8 multiply-add saturates.
    ("x86_64", "fpu sse avx2 fma", ("qoperator", "uint8"), True),
    ("x86_64", "avx2 avx512f avx512_vnni", ("qoperator", "uint8"), False),  # see benchmarks/results/export_latency_mnv2_224.md
    ("x86_64", "avx2 avx_vnni", ("qoperator", "uint8"), False),
    ("aarch64", "fp asimd asimddp", ("qdq", "int8"), False),
])
def test_default_onnx_quant_from_cpu(machine, flags, want, reduce_range):
    from edgekit.export import default_onnx_quant
    from edgekit.export.cpu import cpu_flags

    parsed = cpu_flags(f"processor\t: 0\nflags\t\t: {flags}\n")
    choice = default_onnx_quant(machine, parsed)
    assert (choice.quant_format.value, choice.activation_type.value) == want
    assert choice.reduce_range == reduce_range and ("reduce_range" in choice.reason) == reduce_range
    assert machine in choice.reason or "VNNI" in choice.reason or "vnni" in choice.reason
    assert choice.reason.lower().startswith(f"{want[0]}, {want[1]} activations")  # the report says what and why


def test_fp32_disagreement_is_not_written(tmp_path):
    from edgekit.export import get_target
    from edgekit.export.validate import Validation
    from edgekit.export.writer import export_target

    target = get_target("tflite", "fp32")
    fake = type(target)(target.format, target.precision, lambda ctx: b"\x00" * 64, False, "fake")
    ctx = type("Ctx", (), {"notes": {}})()
    bad = Validation(samples=10, agreement=0.9, max_abs_diff=0.5, mean_abs_diff=0.1, accuracy=None)
    r = export_target(fake, ctx, tmp_path / "m_fp32.tflite", lambda p: bad, strict=True, log=lambda s: None)
    assert r.error and "max abs diff 0.5" in r.error
    assert os.listdir(tmp_path) == []


def test_a_file_the_runtime_refuses_is_the_converters_failure(tmp_path):
    """A converter that returns bytes edgekit's runtime cannot load: a ConverterError naming the
    tool and the target (an internal failure, not a ValueError of bad input), nothing left."""
    from dataclasses import replace

    from edgekit.export import ConverterError, get_target
    from edgekit.export.writer import export_target
    from edgekit.runtime import Model

    garbage = replace(get_target("onnx", "fp32"), convert=lambda ctx: b"\x08\x07 not an onnx model")
    ctx = type("Ctx", (), {"notes": {}})()
    with pytest.raises(ConverterError) as info:
        export_target(garbage, ctx, tmp_path / "m_fp32.onnx", lambda p: Model(p), strict=True, log=lambda s: None)
    assert not isinstance(info.value, ValueError)
    assert str(info.value).startswith("tf2onnx failed on onnx/fp32: its file does not load or run: ")
    assert len(str(info.value).splitlines()) == 1 and os.listdir(tmp_path) == []


# -- int8 ONNX compaction: only what no runtime reads goes, outputs and fusions stay -----------

def _dq(x, scale, zp=None, name=""):
    from onnx import helper

    return helper.make_node("DequantizeLinear", [x, scale] + ([zp] if zp else []), [name or x + "_f"], name=name)


def _toy_quantized_model():
    """x + DQ(bias int32, zp 0) + DQ(bias2 int32, zp 3) + DQ(w int8, zp 0), with an unused
    initializer, a duplicate scale, value_info and an unused opset import."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    t = numpy_helper.from_array
    inits = [t(np.array([5, -7], np.int32), "b"), t(np.float32(0.5), "b_scale"), t(np.zeros((), np.int32), "b_zp"),
             t(np.array([1, 2], np.int32), "b2"), t(np.float32(0.5), "b2_scale"), t(np.int32(3), "b2_zp"),
             t(np.array([1, -1], np.int8), "w"), t(np.float32(0.25), "w_scale"), t(np.zeros((), np.int8), "w_zp"),
             t(np.ones(4, np.float32), "unused")]
    nodes = [_dq("b", "b_scale", "b_zp", "bf"), _dq("b2", "b2_scale", "b2_zp", "b2f"), _dq("w", "w_scale", "w_zp", "wf"),
             helper.make_node("Add", ["x", "bf"], ["s1"]), helper.make_node("Add", ["s1", "b2f"], ["s2"]),
             helper.make_node("Mul", ["s2", "wf"], ["y"])]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], inits,
                              value_info=[helper.make_tensor_value_info("s1", TensorProto.FLOAT, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _run_onnx(data: bytes, x, optimized: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_compact_drops_only_what_no_runtime_reads():
    import numpy as np
    import onnx

    from edgekit.export.onnx_convert import Compaction, compact

    raw = _toy_quantized_model()
    data, removed = compact(raw)
    assert removed == Compaction(value_info=1, bias_zero_points=1, unused_initializers=2, duplicate_initializers=1,
                                 opset_imports=1, saved_bytes=len(raw) - len(data))
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    names = {t.name for t in model.graph.initializer}
    assert names == {"b", "b_scale", "b2", "b2_zp", "w", "w_scale", "w_zp"}  # b2 scale merged into b's
    inputs = {n.name: list(n.input) for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert inputs == {"bf": ["b", "b_scale"], "b2f": ["b2", "b_scale", "b2_zp"], "wf": ["w", "w_scale", "w_zp"]}
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    assert np.array_equal(_run_onnx(raw, x), _run_onnx(data, x))
    assert compact(data)[1] == Compaction()  # nothing left to remove


@pytest.fixture(scope="module")
def onnx_quant_context(run_dir):
    import numpy as np

    from edgekit.export import ExportOptions
    from edgekit.export.context import ConversionContext
    from edgekit.export.source import load_source

    source = load_source(run_dir)
    calibration = np.random.default_rng(0).standard_normal((16, 28, 28, 1)).astype(np.float32)
    ctx = ConversionContext(source.model, ExportOptions(), calibration)
    yield ctx
    ctx.close()


def _optimized_ops(data: bytes, tmp_path) -> dict:
    """Op counts of the graph onnxruntime actually runs (after its QDQ fusions)."""
    import collections

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)


@pytest.mark.parametrize("fmt, act", [("qdq", "int8"), ("qdq", "uint8"), ("qoperator", "int8"), ("qoperator", "uint8")])
def test_compacted_int8_onnx_runs_identically(onnx_quant_context, fmt, act, tmp_path):
    import numpy as np
    import onnx

    from edgekit.export import ActivationType, OnnxQuantFormat
    from edgekit.export.onnx_convert import compact, quantize

    raw = quantize(onnx_quant_context, OnnxQuantFormat(fmt), ActivationType(act))
    data, removed = compact(raw)
    assert removed.value_info > 0 and removed.saved_bytes == len(raw) - len(data) > 0
    assert (removed.bias_zero_points > 0) == (fmt == "qdq")  # QOperator keeps bias as plain int32
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    used = {i for n in graph.node for i in n.input}
    assert not graph.value_info and all(t.name in used for t in graph.initializer)
    x = np.random.default_rng(1).standard_normal((32, 28, 28, 1)).astype(np.float32)
    for optimized in (True, False):
        assert np.array_equal(_run_onnx(raw, x, optimized), _run_onnx(data, x, optimized))
    assert _optimized_ops(data, tmp_path) == _optimized_ops(raw, tmp_path)  # no fusion lost


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_keeping_every_ranked_onnx_node_float_leaves_no_int8_op(onnx_quant_context, fmt, tmp_path):
    """The accuracy budget's last resort is the float graph: every node the ranking names, kept
    float, must take its fused producer with it (a Conv before a Relu/Clip would otherwise stay
    int8 with a coarser range of its own, as on the quick-start MobileNetV2)."""
    from edgekit.export import ActivationType, CalibrationMethod, OnnxQuantFormat
    from edgekit.export.onnx_convert import pre_processed, quantize, with_fused_producers
    from edgekit.export.onnx_sensitivity import node_sqnr

    ranked = [name for name, _ in node_sqnr(onnx_quant_context, ActivationType.UINT8, CalibrationMethod.MINMAX)]
    pre = pre_processed(onnx_quant_context)
    kept = with_fused_producers(pre, ranked)
    assert len(kept) > len(ranked) and kept[:len(ranked)] == ranked  # the tiny model's Conv+Relu pairs
    assert with_fused_producers(pre, []) == []
    data = quantize(onnx_quant_context, OnnxQuantFormat(fmt), ActivationType.UINT8, exclude=ranked)
    ops = _optimized_ops(data, tmp_path)
    assert not [op for op in ops if op.startswith("QLinear") or "Quantize" in op or op.startswith("ConvInteger")], ops


def test_exported_int8_onnx_is_compacted(exported):
    import onnx

    report, _ = exported
    (f,) = [f for f in report.files if f.target.key == "onnx/int8"]
    assert f.notes["compacted"]["saved_bytes"] > 0
    model = onnx.load(f.path)
    assert not model.graph.value_info
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx", "com.microsoft"}


def _tflite_fc_types(path) -> list[tuple[str, str]]:
    """(weight type, output type) of each FULLY_CONNECTED op in a .tflite file."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    return [(names[graph.tensors[op.inputs[1]].type], names[graph.tensors[op.outputs[0]].type])
            for op in graph.operators
            if max(model.operatorCodes[op.opcodeIndex].builtinCode,
                   model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
            == schema.BuiltinOperator.FULLY_CONNECTED]


def test_int8_float_head_is_hybrid_and_plain_head_is_int8(run_dir, exported, tmp_path):
    """Default int8: the classifier's weights are int8 but its activations float (hybrid op)."""
    from edgekit.export import ExportOptions, Format, Precision, export_model
    from edgekit.runtime import Model

    report, _ = exported
    (head,) = [f for f in report.files if f.target.key == "tflite/int8"]
    assert head.notes["float_head"] and head.notes["hybrid_fully_connected"] == 1
    assert _tflite_fc_types(head.path) == [("INT8", "FLOAT32")]
    m = Model(head.path)  # uint8 pixels in; the float head's float scores out
    assert (str(m.inputs[0].dtype), str(m.outputs[0].dtype)) == ("uint8", "float32")

    plain = export_model(run_dir, ExportOptions(formats=(Format.TFLITE, Format.ONNX), precisions=(Precision.INT8,),
                                                int8_head="int8", max_accuracy_drop=None,
                                                out_dir=tmp_path), log=lambda line: None)
    tfl, onx = plain.files  # budget off: the layout asked for, not what a budget search settles on
    assert "float_head" not in tfl.notes and tfl.notes["io"] == "uint8 pixels in"
    m = Model(tfl.path)  # a fully int8 head: uint8 scores out
    assert (str(m.inputs[0].dtype), str(m.outputs[0].dtype)) == ("uint8", "uint8")
    assert _tflite_fc_types(tfl.path) == [("INT8", "INT8")]
    assert head.size_bytes <= tfl.size_bytes * 1.05  # int8 weights either way
    assert onx.notes["float_head"] is False


def test_onnx_float_head_leaves_classifier_nodes_float(exported):
    import onnx

    report, _ = exported
    (f,) = [f for f in report.files if f.target.key == "onnx/int8"]
    graph = onnx.load(str(f.path)).graph
    ops = {n.op_type for n in graph.node}
    assert f.notes["float_head"] and ({"MatMul", "Gemm"} & ops) and "Softmax" in ops
    assert not ({"QLinearMatMul", "MatMulInteger", "QGemm", "QLinearSoftmax"} & ops)


def test_hybridize_quantizes_each_output_row():
    import numpy as np

    from edgekit.export.float_head import _quantize_per_channel

    w = np.array([[0.5, -1.0, 0.25], [4.0, 2.0, -0.1]], np.float32)
    q, scale = _quantize_per_channel(w)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    np.testing.assert_allclose(scale, [1.0 / 127, 4.0 / 127])
    np.testing.assert_allclose(q * scale[:, None], w, atol=scale.max() / 2 + 1e-7)


def test_calibration_method_default_follows_memory(run_dir):
    """Percentile when its histograms fit the budget, else minmax; an explicit choice wins."""
    import numpy as np

    from edgekit.export import CalibrationMethod, ExportOptions
    from edgekit.export import onnx_convert
    from edgekit.export.context import ConversionContext
    from edgekit.export.source import load_source

    model = load_source(run_dir).model
    per_image = onnx_convert.activation_bytes(model)
    assert per_image > 4 * 28 * 28  # at least the input and the first conv's output
    few = np.zeros((10, 28, 28, 1), np.float32)
    ctx = ConversionContext(model, ExportOptions(), few)
    method, why = onnx_convert.choose_calibration_method(ctx)
    assert method is CalibrationMethod.PERCENTILE and "MiB" in why
    budget = onnx_convert.HISTOGRAM_BUDGET_BYTES
    many = np.zeros((budget // per_image + 1, 1, 1, 1), np.float32)  # only its length counts
    method, why = onnx_convert.choose_calibration_method(ConversionContext(model, ExportOptions(), many))
    assert method is CalibrationMethod.MINMAX and "GiB" in why
    forced = ConversionContext(model, ExportOptions(calibration_method=CalibrationMethod.ENTROPY), many)
    assert onnx_convert.choose_calibration_method(forced) == (CalibrationMethod.ENTROPY, "chosen on the command line")
    for c in (ctx, forced):
        c.close()


@pytest.mark.parametrize("asked", [None, "percentile"])
def test_percentile_histogram_failure_falls_back_to_minmax_only_by_default(run_dir, tmp_path, monkeypatch, asked):
    """onnxruntime's percentile calibrator raises numpy's "Too many bins" on a near-constant
    tensor: the default choice then falls back to minmax (and says so); an asked one fails as
    the quantizer's failure."""
    import numpy as np
    import onnxruntime.quantization as q

    from edgekit.export import CalibrationMethod, ConverterError, ExportOptions, Format, Precision, export_model

    real = q.quantize_static

    def narrow_histograms(*args, **kwargs):
        if kwargs["calibrate_method"] == q.CalibrationMethod.Percentile:
            np.histogram(np.array([1.0, 1.0 + 1e-7], np.float32), bins=2048)  # raises like the collector
        return real(*args, **kwargs)

    monkeypatch.setattr(q, "quantize_static", narrow_histograms)
    options = ExportOptions(formats=(Format.ONNX,), precisions=(Precision.INT8,), out_dir=tmp_path,
                            num_validation=50, max_accuracy_drop=None,
                            calibration_method=CalibrationMethod(asked) if asked else None)
    if asked:
        with pytest.raises(ConverterError, match="onnxruntime quantization failed on onnx/int8: ValueError: Too many bins"):
            export_model(run_dir, options, log=lambda line: None)
        assert not list(tmp_path.glob("*.onnx"))
        return
    (f,) = export_model(run_dir, options, log=lambda line: None).files
    assert f.notes["calibration_method"] == "minmax" and "Too many bins" in f.notes["calibration_method_why"]
    assert f.error is None and f.validation.agreement >= 0.8
