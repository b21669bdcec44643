"""``edgekit benchmark``: the JSON document, CSV and PNG of a real run on a tiny model, a failed
row that leaves the table standing, interleaved timing, the int8-not-faster verdict, and
one-line input errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO
from export_helpers import tiny_model

from edgekit.benchmark.diagnose import Int8Facts, Pair, RunSettings, int8_verdict
from edgekit.benchmark.report import CSV_COLUMNS, BenchmarkRow
from edgekit.profile.latency import TimingPlan, interleaved, summarize

SAMPLE = REPO / "calibration" / "fashion-mnist"
ROW_KEYS = {"format", "precision", "status", "size_bytes", "accuracy", "agreement", "latency_ms", "fps", "macs", "note"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with an untrained tiny CNN (28x28x1) whose data is the shipped sample."""
    from edgekit.runtime import PreprocessSpec

    model = tiny_model()
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "edgekit.json").write_text(json.dumps({
        "architecture": "tiny", "preprocess": PreprocessSpec(size=(28, 28), channels=1).to_dict(),
        "data": {"path": str(SAMPLE), "split": "train"}}))
    return run


@pytest.fixture(scope="module")
def bench(run_dir, tmp_path_factory):
    """One real ``edgekit benchmark --json`` in a subprocess (so stdout is the process's own)."""
    out = tmp_path_factory.mktemp("bench")
    code = "import sys; from edgekit.cli.main import main; main.main(sys.argv[1:])"
    args = ["benchmark", run_dir, "--data", SAMPLE, "--formats", "tflite,onnx", "--quantize", "fp32,int8",
            "--num-images", "40", "--runs", "15", "--warmup", "1", "--out", out,
            "--csv", out / "table.csv", "--plot", out / "plot.png", "--json"]
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), out  # the whole of stdout is one JSON document


def test_json_document(bench, run_dir):
    import keras

    from edgekit.models.counting import count_model

    doc, out = bench
    assert {"model", "data", "environment", "rows", "keras"} <= set(doc)
    assert 0 <= doc["keras"]["accuracy"] <= 1 and doc["environment"]["cpu_model"]
    assert [(r["format"], r["precision"]) for r in doc["rows"]] == [
        ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")]
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    h, w, c = model.inputs[0].shape[1:]
    # Each file also runs its RGB input adapter: a 1x1 convolution from 3 channels to the model's.
    macs = count_model(model).macs + h * w * 3 * c
    for r in doc["rows"]:
        assert ROW_KEYS <= set(r) and r["status"] == "ok", r
        assert os.path.getsize(r["path"]) == r["size_bytes"] and os.path.dirname(r["path"]) == str(out)
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["agreement"] <= 1
        assert r["latency_ms"]["runs"] == 15 and r["latency_ms"]["p50"] > 0
        assert r["fps"] == pytest.approx(1000 / r["latency_ms"]["p50"], rel=1e-3)
        assert r["macs"] == macs
    assert {r["agreement"] for r in doc["rows"] if r["precision"] == "fp32"} == {1.0}
    assert set(doc["environment"]["runtimes"]) == {r["backend"] for r in doc["rows"]}


def test_csv_plot_and_json_files(bench):
    doc, out = bench
    with open(out / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [(t["format"], t["precision"], t["status"]) for t in table] == \
        [(r["format"], r["precision"], r["status"]) for r in doc["rows"]]
    assert [float(t["latency_p50_ms"]) for t in table] == [r["latency_ms"]["p50"] for r in doc["rows"]]
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "benchmark.json").read_text())["rows"] == doc["rows"]
    assert not [p for p in os.listdir(out) if ".partial-" in p]


def _invoke(*args):
    from edgekit.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_failed_target_is_a_row_not_the_end(run_dir, tmp_path, monkeypatch):
    from dataclasses import replace

    from edgekit.export import targets

    def explode(ctx):
        raise RuntimeError("converter exploded\nsecond line")

    monkeypatch.setattr(targets, "TARGETS", tuple(replace(t, convert=explode) if t.key == "tflite/int8" else t
                                                  for t in targets.TARGETS))
    result = _invoke("benchmark", run_dir, "--data", SAMPLE, "--formats", "tflite", "--quantize", "fp32,int8",
                     "--num-images", "20", "--runs", "5", "--warmup", "0", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert ("FAILED tflite/int8: export failed: TFLiteConverter failed on tflite/int8: RuntimeError: converter exploded"
            in result.stdout.splitlines())
    rows = {r["precision"]: r for r in json.loads((tmp_path / "benchmark.json").read_text())["rows"]}
    assert rows["int8"]["status"] == "failed" and rows["int8"]["latency_ms"] is None
    assert rows["fp32"]["status"] == "ok" and rows["fp32"]["latency_ms"]["runs"] == 5
    assert (tmp_path / "benchmark.png").stat().st_size > 0 and not (tmp_path / "tiny_int8.tflite").exists()


@pytest.mark.parametrize("args, expected", [
    (["benchmark", "nowhere", "--data", SAMPLE], "does not exist"),
    (["benchmark", "{run}", "--data", "{tmp}/no-data"], "no-data"),
    (["benchmark", "{run}", "--data", SAMPLE, "--formats", "tflite,coreml"], "--formats got 'coreml'"),
    (["benchmark", "{run}", "--data", SAMPLE, "--threads", "0"], "--threads"),
    (["benchmark", "{run}", "--data", SAMPLE, "--runs", "3", "--min-time", "1"], "alternatives"),
])
def test_bad_input_is_one_line_exit_2(run_dir, tmp_path, args, expected):
    out = tmp_path / "out"
    result = _invoke(*[str(a).format(run=run_dir, tmp=tmp_path) for a in args], "--out", out)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("edgekit: error:"), result.stderr
    assert expected in lines[0] and not out.exists()


def test_timing_interleaves_and_drops_a_failing_call(monkeypatch):
    from edgekit.profile import latency

    monkeypatch.setattr(latency, "BLOCK_MS", 0.0)  # one call per turn, so the order shows the turns
    order: list[str] = []

    def call(key, fail_at=None):
        def run():
            order.append(key)
            if fail_at is not None and order.count(key) >= fail_at:
                raise RuntimeError(f"{key} broke")
        return run

    timed = interleaved({"a": call("a"), "b": call("b"), "c": call("c", fail_at=4)}, TimingPlan(warmup=1, runs=12))
    assert set(timed.stats) == {"a", "b"} and all(s.runs == 12 for s in timed.stats.values())
    assert timed.errors == {"c": "timing failed: c broke"}
    turns = order[6:]  # after the first call and one warm-up of each
    assert turns[:6] == ["a", "b", "c", "b", "c", "a"]  # the first file rotates; c fails in turn 2
    assert turns[6:] == ["a", "b", "b", "a"] * 5  # 10 more turns of the two left, 12 samples each


_FACTS = Int8Facts(float_io=False, op_count=40)
_SETTINGS = RunSettings(threads=1, cpus=4, load=0.5, x86_vnni=True)
_BIG = 300_000_000


@pytest.mark.parametrize("pair, settings, expected", [
    (Pair("tflite", 2.0, 1.0, _FACTS, _BIG), _SETTINGS, None),
    (Pair("tflite", 2.0, 2.0, Int8Facts(True, 40), _BIG), _SETTINGS, "float input"),
    (Pair("tflite", 2.0, 2.1, Int8Facts(False, 40, ("MEAN", "SOFTMAX", "MEAN"), 0.25), _BIG), _SETTINGS,
     "3 of 40 operators fall back to float (MEAN x2, SOFTMAX, 25% of the MACs)"),
    (Pair("tflite", 2.0, 1.9, _FACTS, _BIG), RunSettings(8, 4, 0.5, True), "--threads 8 on 4 available CPU(s)"),
    (Pair("tflite", 2.0, 1.9, _FACTS, _BIG), RunSettings(2, 4, 0.5, True), "compare at --threads 1"),
    (Pair("tflite", 2.0, 1.9, _FACTS, _BIG), RunSettings(1, 2, 6.0, True), "load average 6.0 on 2 CPU(s)"),
    (Pair("tflite", 0.05, 0.05, _FACTS, 1_100_000), _SETTINGS, "tiny model (1.1 M MACs"),
    (Pair("tflite", 2.0, 1.9, _FACTS, _BIG), RunSettings(1, 4, 0.5, False), "without VNNI"),
    (Pair("onnx", 2.0, 2.5, Int8Facts(True, 40, onnx_quant="qdq int8"), _BIG), _SETTINGS, "take uint8 activations"),
    (Pair("tflite", 2.0, 1.9, _FACTS, _BIG), _SETTINGS, "no cause found"),
])
def test_int8_verdict(pair, settings, expected):
    verdict = int8_verdict(pair, settings)
    if expected is None:
        assert verdict is None
    else:
        assert verdict.startswith(f"{pair.format} int8 is not faster than fp32") and expected in verdict, verdict
        assert "\n" not in verdict


def test_float_ops_with_few_macs_come_after_the_other_causes():
    head = Int8Facts(False, 67, ("FULLY_CONNECTED", "SOFTMAX"), 0.01)
    verdict = int8_verdict(Pair("tflite", 0.05, 0.05, head, 1_100_000), _SETTINGS)
    assert verdict.index("tiny model") < verdict.index("2 of 67 operators fall back to float"), verdict
    body = Int8Facts(False, 67, ("CONV_2D",) * 5, 0.4)
    verdict = int8_verdict(Pair("tflite", 0.05, 0.05, body, 1_100_000), _SETTINGS)
    assert verdict.index("5 of 67 operators") < verdict.index("tiny model"), verdict


def test_int8_verdict_lands_on_the_slower_int8_row_only():
    from edgekit.benchmark.measure import int8_notes

    def row(fmt, precision, ms):
        return BenchmarkRow(fmt, precision, latency=summarize([ms] * 3), macs=_BIG)

    rows = [row("tflite", "fp32", 2.0), row("tflite", "int8", 1.0), row("onnx", "fp32", 2.0), row("onnx", "int8", 2.4)]
    facts = {"tflite/int8": _FACTS, "onnx/int8": Int8Facts(True, 40)}
    notes = int8_notes(rows, facts, _SETTINGS)
    assert len(notes) == 1 and notes[0].startswith("onnx int8 is not faster") and rows[3].note == notes[0]
    assert rows[1].note == "" and rows[0].note == ""
    with pytest.raises(ValueError, match="expected > 0"):
        int8_verdict(Pair("tflite", 0.0, 1.0, _FACTS), _SETTINGS)
