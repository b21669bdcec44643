"""edgekit.latency: the two feature extractors agree, NNLS recovers known coefficients, a tiny real
fit writes a valid model that predicts, and bad input is a one-line error with exit 2.

Timing accuracy is not asserted (the machine may be busy): only that predictions are positive.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.latency import Config, load_latency_model
from edgekit.latency.from_config import config_kernels
from edgekit.latency.from_file import file_kernels
from edgekit.latency.kernels import MAC_FAMILIES, FeatureTable, Kernel, family
from edgekit.latency.model import LatencyModel, Predictor, fit_predictor
from edgekit.latency.nnls import fit_relative, numpy_nnls
from edgekit.latency.sampling import sample, zoo_grid

AGREE = [Config.of("mobilenet_v2", {"alpha": 0.35}, 48), Config.of("efficientnet_b0", {"width": 0.25, "depth": 0.5}, 48)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(config, format) -> its fp32 file, exported on first use (each conversion costs seconds)."""
    from edgekit.latency.measure import export_config

    out, files = tmp_path_factory.mktemp("latency_files"), {}

    def get(config: Config, fmt: str) -> Path:
        if (config.key, fmt) not in files:
            files[(config.key, fmt)] = export_config(config, [fmt], ["fp32"], out)[(fmt, "fp32")]
        return files[(config.key, fmt)]

    return get


# The ONNX conversion of the EfficientNet (tf2onnx) is the slow one: it runs with -m slow.
@pytest.mark.parametrize("config, fmt", [
    (AGREE[0], "tflite"), (AGREE[1], "tflite"), (AGREE[0], "onnx"),
    pytest.param(AGREE[1], "onnx", marks=pytest.mark.slow),
], ids=lambda v: v.key if isinstance(v, Config) else v)
def test_extractors_agree(exported, config, fmt):
    """Same kernel types, counts and MACs from the Keras layers and from the exported file, and
    the same channels (their MACs agree with every family's channels rounded up to 64 too)."""
    config_side = config_kernels(config.arch, dict(config.overrides), config.input_size, "fp32")
    file_side = file_kernels(exported(config, fmt))
    for tiles in (None, dict.fromkeys(MAC_FAMILIES, 64)):
        from_config, from_file = FeatureTable.of(config_side, tiles), FeatureTable.of(file_side, tiles)
        for table in (from_config, from_file):
            assert any(family(t) in MAC_FAMILIES for t in table)
        compared = {t for t in set(from_config) | set(from_file) if t != "other"}
        for t in sorted(compared):
            assert t in from_config and t in from_file, t
            assert from_config[t].count == from_file[t].count, t
            assert from_config[t].macs == from_file[t].macs, (t, tiles)
        assert from_config.macs == from_file.macs
    assert FeatureTable.of(config_side, dict.fromkeys(MAC_FAMILIES, 64)).macs > FeatureTable.of(config_side).macs


def _plan_macs(config: Config) -> int:
    """The architecture's MACs from its stage table alone (edgekit.models' plan counts)."""
    from edgekit.models.efficientnet import plan_counts
    from edgekit.models.mobilenet import plan_counts_v2

    knobs = dict(config.overrides)
    if config.arch == "mobilenet_v2":
        return plan_counts_v2(alpha=knobs.get("alpha", 1.0), size=config.input_size)[0]
    return plan_counts(width=knobs.get("width", 1.0), depth=knobs.get("depth", 1.0),
                       lite=config.arch.startswith("efficientnet_lite"), size=config.input_size)[0]


@pytest.mark.parametrize("config", AGREE, ids=lambda c: c.key)
def test_kernel_macs_sum_to_the_plan_counts(config):
    """The latency features split exactly the network's MACs: their sum over every kernel equals
    the count of the architecture's stage table (so no layer is lost to or double-counted by
    the kernel types the model fits)."""
    table = FeatureTable.of(config_kernels(config.arch, dict(config.overrides), config.input_size, "fp32"))
    assert table.macs == _plan_macs(config)


def test_numpy_nnls_matches_known_solution():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (40, 5))
    x_true = np.array([0.5, 0.0, 2.0, 0.0, 1.0])
    x = numpy_nnls(a, a @ x_true)
    np.testing.assert_allclose(x, x_true, atol=1e-8)
    # With a negative least-squares solution the constraint binds.
    x = numpy_nnls(np.eye(2), np.array([1.0, -1.0]))
    np.testing.assert_allclose(x, [1.0, 0.0])


def test_fit_recovers_synthetic_coefficients():
    rng = np.random.default_rng(1)
    types = ["dwconv3_s1", "pwconv", "add"]
    tables, measured = [], []
    truth = {"dwconv3_s1": (2e-8, 1e-7, 0.01), "pwconv": (1e-8, 5e-8, 0.02), "add": (0.0, 2e-7, 0.005)}
    for _ in range(60):
        table = FeatureTable.from_dict({t: {"count": int(rng.integers(1, 30)), "macs": int(rng.uniform(1e5, 1e8)) * (t != "add"),
                                            "act_bytes": int(rng.uniform(1e4, 1e6)), "weight_bytes": 0} for t in types})
        tables.append(table)
        measured.append(0.05 + sum(a * table[t].macs + b * table[t].bytes + c * table[t].count
                                   for t, (a, b, c) in truth.items()))
    predictor = fit_predictor(tables, measured, ridge=0.0)
    for t, (a, b, c) in truth.items():
        got = predictor.coefficients[t]
        assert got["macs"] == pytest.approx(a, rel=1e-3, abs=1e-12)
        assert got["bytes"] == pytest.approx(b, rel=1e-3, abs=1e-12)
        assert got["count"] == pytest.approx(c, rel=1e-3, abs=1e-9)
    assert predictor.constant_ms == pytest.approx(0.05, rel=1e-3)
    with pytest.raises(ValueError, match="positive"):
        fit_relative(np.ones((2, 2)), np.array([1.0, 0.0]))


def test_tiled_macs_round_the_channels_up():
    k = Kernel("dwconv3_s1", 44 * 9 * 100, 0, 0, "dw", channels=44)
    assert k.tiled_macs(64) == 64 * 9 * 100 and k.tiled_macs(4) == k.tiled_macs(1) == k.macs
    assert Kernel("pwconv", 1000, 0, 0, "pw").tiled_macs(64) == 1000  # channels unknown: as counted
    table = FeatureTable.of([k, Kernel("add", 0, 10, 0, "add")], {"dwconv": 32})
    assert table["dwconv3_s1"].macs == 64 * 9 * 100 and table["add"].macs == 0


def _tiled_networks(true_tile: int, n: int, seed: int):
    """Random networks of a depthwise and a pointwise kernel whose true cost counts the depthwise
    channels rounded up to ``true_tile``."""
    rng = np.random.default_rng(seed)
    nets, measured = [], []
    for _ in range(n):
        c, pos = int(rng.integers(8, 200)), int(rng.integers(100, 5000))
        dw = Kernel("dwconv3_s1", 9 * c * pos, 2 * c * pos, 9 * c, "dw", c)
        pw = Kernel("pwconv", c * 2 * c * pos, 3 * c * pos, 2 * c * c, "pw", 2 * c)
        nets.append([dw, pw])
        measured.append(0.01 + 1e-7 * dw.tiled_macs(true_tile) + 2e-8 * pw.macs)
    return nets, measured


def test_fit_picks_the_channel_tile_the_device_shows():
    """The cross-validation finds a depthwise tile of 32 in latencies made with one, keeps the
    pointwise kernels unrounded, and predicts networks it did not see from it; on latencies with
    no tiling it rounds nothing."""
    from edgekit.latency.model import fit_kernels

    nets, measured = _tiled_networks(32, 40, seed=0)
    predictor = fit_kernels(nets, measured)
    assert predictor.channel_tiles == {"dwconv": 32}
    new, truth = _tiled_networks(32, 20, seed=1)
    predicted = [predictor.predict(predictor.features(k)).latency_ms for k in new]
    assert max(abs(p - t) / t for p, t in zip(predicted, truth)) < 0.01
    assert fit_kernels(*_tiled_networks(1, 40, seed=2)).channel_tiles == {}
    assert fit_kernels(nets[:6], measured[:6]).channel_tiles == {}  # too few to cross-validate


def _unaligned_networks(align: int, n: int, seed: int):
    """Random networks whose depthwise kernels cost 4x per MAC when their channels are not a
    multiple of ``align`` (a fast path for aligned channels only)."""
    rng = np.random.default_rng(seed)
    nets, measured = [], []
    for _ in range(n):
        c, d, pos = int(rng.integers(8, 200)), int(rng.integers(8, 400)), int(rng.integers(100, 5000))
        dw = Kernel("dwconv3_s1", 9 * c * pos, 2 * c * pos, 9 * c, "dw", c)
        pw = Kernel("pwconv", c * d * pos, (c + d) * pos, c * d, "pw", d)  # its channels unrelated to c
        nets.append([dw, pw])
        measured.append(0.01 + (1e-7 if dw.aligned(align) else 4e-7) * dw.macs + 2e-8 * pw.macs)
    return nets, measured


def test_fit_finds_a_fast_path_for_aligned_channels():
    """A device whose depthwise kernels are 4x slower off multiples of 8: the fit splits them off
    (alignment 8, types dwconv3_s1 and dwconv3_s1_unaligned) and predicts unseen networks within
    1%; a model file keeps the alignment; a device without the cliff gets no split."""
    from edgekit.latency.model import Predictor, fit_kernels

    nets, measured = _unaligned_networks(8, 60, seed=0)
    predictor = fit_kernels(nets, measured)
    assert predictor.channel_aligns == {"dwconv": 8}
    assert {"dwconv3_s1", "dwconv3_s1_unaligned"} <= set(predictor.coefficients)
    new, truth = _unaligned_networks(8, 20, seed=1)
    predicted = [predictor.predict(predictor.features(k)).latency_ms for k in new]
    assert max(abs(p - t) / t for p, t in zip(predicted, truth)) < 0.01
    assert Predictor.from_dict(predictor.to_dict()).channel_aligns == {"dwconv": 8}
    assert fit_kernels(*_unaligned_networks(1, 60, seed=2)).channel_aligns == {}


def test_an_unaligned_kernel_type_a_fit_never_saw_is_predicted_as_its_aligned_type():
    from edgekit.latency.kernels import family

    assert family("dwconv3_s1_unaligned") == "dwconv" and family("pwconv_unaligned") == "pwconv"
    nets, measured = _unaligned_networks(1, 30, seed=3)
    from edgekit.latency.model import fit_predictor

    predictor = fit_predictor([FeatureTable.of(k) for k in nets], measured)
    table = FeatureTable.of(nets[0], aligns={"dwconv": 1000})
    prediction = predictor.predict(table)
    assert prediction.substituted == {"dwconv3_s1_unaligned": "dwconv3_s1"}


def test_cross_validation_skips_a_sample_with_a_kernel_type_no_other_has():
    """A kernel type only one network has cannot be predicted from the other folds: that sample
    is left out of the score, not scored as a prediction of 0 ms (100% off)."""
    from edgekit.latency.model import _cv_rmspe

    nets, measured = _tiled_networks(32, 40, seed=0)
    nets[0] = [*nets[0], Kernel("resize_bilinear", 0, 1000, 0, "resize")]
    assert _cv_rmspe(nets, measured, {"dwconv": 32}, {}, folds=5) < 1.0


def test_normalize_puts_timings_at_the_reference_median_speed():
    """A device twice as slow for half the fit: the ratio to the reference timed beside each
    file is what is kept, at the reference's median speed."""
    from edgekit.latency.measure import REFERENCE, Timing, normalize

    a, b, c = (Config.of("mobilenet_v2", {"alpha": x}, 96) for x in (0.35, 0.5, 0.75))
    timings = [Timing(a, 1.0, 2.0), Timing(b, 4.0, 4.0), Timing(c, 3.0, 3.0)]  # b timed while twice as slow
    samples, record = normalize(timings)
    assert [round(ms, 6) for _, ms in samples] == [1.5, 3.0, 3.0] and [cfg for cfg, _ in samples] == [a, b, c]
    assert record == {"config": REFERENCE.key, "baseline_ms": 3.0, "min_ms": 2.0, "max_ms": 4.0}
    (_, ms), = normalize([Timing(a, 1.0, 2.0)], baseline_ms=3.0)[0]
    assert ms == pytest.approx(1.5)


def test_sample_excludes_and_covers_families():
    grid = zoo_grid()
    held = [c for c in grid if c.arch == "mobilenet_v1"][:3]
    order = sample(grid, seed=3, exclude=held)
    assert not {c.key for c in held} & {c.key for c in order}
    assert len(order) == len(grid) - 3
    assert {c.family for c in order[:4]} == {"mobilenet_v1", "mobilenet_v2", "efficientnet_lite", "efficientnet_b"}
    assert sample(grid, seed=3) == sample(grid, seed=3)


def _invoke(*args):
    return CliRunner().invoke(main, list(args))


def _fit(folder, formats: str):
    """A real fit on the tiny grid (fp32, 1 thread, short timings): at least 2 configurations."""
    out = folder / "host.json"
    result = _invoke("latency", "fit", "--out", str(out), "--format", formats, "--precision", "fp32",
                     "--threads", "1", "--minutes", "0.05", "--grid", "tiny", "--min-time", "0.1", "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("latency"), "tflite")


@pytest.mark.slow
def test_onnx_fit_predicts_an_onnx_file(tmp_path, exported):
    out, _ = _fit(tmp_path, "tflite,onnx")
    assert set(load_latency_model(out).predictors) == {"tflite/fp32", "onnx/fp32"}
    result = _invoke("latency", "predict", str(out), str(exported(AGREE[0], "onnx")), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["latency_ms"] > 0 and doc["format"] == "onnx" and doc["per_kernel_type_ms"]


def test_tiny_fit_writes_valid_model(fitted):
    out, summary = fitted
    assert summary["out"] == str(out)
    model = load_latency_model(out)
    assert set(model.predictors) == {"tflite/fp32"}
    assert model.threads == 1 and model.device["target"] and model.device["cpu_model"]
    for predictor in model.predictors.values():
        assert len(predictor.samples) >= 2
        assert all(s["measured_ms"] > 0 and s["fitted_ms"] >= 0 for s in predictor.samples)
        ref = predictor.reference
        assert 0 < ref["min_ms"] <= ref["baseline_ms"] <= ref["max_ms"]
        for s in predictor.samples:  # what was fitted: the raw median at the reference's median speed
            assert s["measured_ms"] == pytest.approx(s["raw_ms"] * ref["baseline_ms"] / s["reference_ms"], rel=1e-3, abs=2e-4)  # each rounded to 4 decimals
        assert all(v >= 0 for c in predictor.coefficients.values() for v in c.values())
    model.check("host", "tflite", "fp32")


def test_saved_json_round_trips(fitted, tmp_path):
    out, _ = fitted
    doc = json.loads(out.read_text())
    again = LatencyModel.from_dict(doc)
    again.save(tmp_path / "copy.json")
    assert json.loads((tmp_path / "copy.json").read_text()) == doc


def test_predict_file_and_zoo_name(fitted, exported):
    out, _ = fitted
    path = exported(AGREE[0], "tflite")
    result = _invoke("latency", "predict", str(out), str(path), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["latency_ms"] > 0 and doc["format"] == "tflite" and doc["precision"] == "fp32"
    assert doc["per_kernel_type_ms"]
    result = _invoke("latency", "predict", str(out), "mobilenet_v2", "--alpha", "0.35", "--input-size", "40",
                     "--precision", "fp32", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["latency_ms"] > 0 and doc["input_size"] == 40 and doc["overrides"] == {"alpha": 0.35}
    model = load_latency_model(out)
    assert model.predict_config("mobilenet_v1", {"alpha": 0.25}, 40, "tflite", "fp32") > 0
    assert model.predict_file(exported(AGREE[0], "tflite")) > 0


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def _other_device(path, tmp_path):
    doc = json.loads(path.read_text())
    doc["device"] = {**doc["device"], "target": "raspberry-pi-4", "cpu_model": "Cortex-A72"}
    other = tmp_path / "pi4.json"
    other.write_text(json.dumps(doc))
    return other


def test_a_refused_zoo_prediction_is_one_line_in_a_fresh_process(fitted):
    """As a user's shell sees it: TensorFlow's start-up chatter (absl, oneDNN) must not come before
    the error when predicting a zoo name, which imports Keras."""
    import subprocess
    import sys

    import os

    out, _ = fitted
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest quiets its own process
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "latency", "predict", str(out), "mobilenet_v2",
                           "--precision", "int8", "--json"], capture_output=True, text=True, timeout=300, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: ") and "tflite/int8" in lines[0], proc.stderr


def test_bad_inputs_exit_2_with_one_line(fitted, tmp_path):
    out, _ = fitted
    other = _other_device(out, tmp_path)
    _one_line_error(_invoke("latency", "predict", str(other), "mobilenet_v2", "--precision", "fp32"),
                    "fitted on raspberry-pi-4", "--target raspberry-pi-4")
    _one_line_error(_invoke("latency", "predict", str(out), "mobilenet_v2", "--precision", "int8"),
                    "tflite/int8", "--precision int8")
    _one_line_error(_invoke("latency", "predict", str(out), "mobilenet_v2", "--format", "onnx", "--precision", "int8"),
                    "onnx/int8")
    _one_line_error(_invoke("latency", "predict", str(tmp_path / "missing.json"), "mobilenet_v2"), "does not exist")
    (tmp_path / "junk.json").write_text("not json")
    _one_line_error(_invoke("latency", "predict", str(tmp_path / "junk.json"), "mobilenet_v2"), "not readable JSON")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "edgekit.profile/1"}))
    _one_line_error(_invoke("latency", "predict", str(tmp_path / "other.json"), "mobilenet_v2"), "not an edgekit latency model")
    _one_line_error(_invoke("latency", "predict", str(out), "mobilenet_v2", "--target", "nosuch"), "unknown target")
    _one_line_error(_invoke("latency", "predict", str(out), "nosuchnet"), "unknown model")
    _one_line_error(_invoke("latency", "fit", "--out", str(tmp_path / "x.json"), "--precision", "int4"), "--precision")
    _one_line_error(_invoke("latency", "fit", "--out", str(tmp_path / "x.json"), "--format", "ort"), "--format")


def test_channel_tiles_are_read_checked_and_optional(fitted, tmp_path):
    """A file written before channel tiles existed predicts with none; tiles of an unknown family
    or below 1 make the file invalid (one line)."""
    out, _ = fitted
    doc = json.loads(out.read_text())
    key = next(iter(doc["predictors"]))
    doc["predictors"][key].pop("channel_tiles")
    assert LatencyModel.from_dict(doc).predictors[key].channel_tiles == {}
    doc["predictors"][key]["channel_tiles"] = {"dwconv": 64}
    assert LatencyModel.from_dict(doc).predictors[key].channel_tiles == {"dwconv": 64}
    for bad in ({"add": 8}, {"dwconv": 0}):
        doc["predictors"][key]["channel_tiles"] = bad
        (tmp_path / "bad.json").write_text(json.dumps(doc))
        _one_line_error(_invoke("latency", "predict", str(tmp_path / "bad.json"), "mobilenet_v2", "--precision", "fp32"),
                        "not a valid latency model", "channel_tiles")


def test_check_api_for_scale(fitted, tmp_path):
    model = load_latency_model(_other_device(fitted[0], tmp_path))
    model.check("raspberry-pi-4", "tflite", "fp32")
    with pytest.raises(ValueError, match="fitted on raspberry-pi-4"):
        model.check("host", "tflite", "fp32")
    with pytest.raises(ValueError, match="not tflite/int8"):
        model.check("raspberry-pi-4", "tflite", "int8")


def test_unfitted_kernel_type_borrows_its_family():
    predictor = Predictor({"dwconv3_s1": {"macs": 1e-6, "bytes": 0.0, "count": 0.0}}, 0.0)
    table = FeatureTable.from_dict({"dwconv5_s2": {"count": 1, "macs": 1000, "act_bytes": 0, "weight_bytes": 0}})
    prediction = predictor.predict(table)
    assert prediction.latency_ms == pytest.approx(1e-3) and prediction.substituted == {"dwconv5_s2": "dwconv3_s1"}
    with pytest.raises(ValueError, match="no coefficients for pwconv"):
        predictor.predict(FeatureTable.from_dict({"pwconv": {"count": 1, "macs": 1, "act_bytes": 0, "weight_bytes": 0}}))
