"""Load test of ``edgekit.runtime.Model``, and how repeatable ``edgekit profile`` is.

Issue 7 ("Reliability") asks that the runtime serve 8 threads for 10,000 predictions with
stable memory (resident size growing by under 5%) and identical results, and that the profiler
give consistent medians across repeated runs.

**Load.** Builds MobileNetV2 alpha 0.35 at 96x96 (10 classes, random weights), exports it with
``edgekit export`` to .tflite and .onnx, fp32 and int8 (calibrated on random images), then, for
each file in a fresh process that never imports TensorFlow: 8 threads share one ``Model`` and
make ``--warmup`` predictions, then ``--predictions`` more, on a pool of float inputs of mixed
batch sizes (1, 2, 3, 4: every change of batch resizes a TFLite interpreter; int8 files quantize
the floats in per-thread buffers). Every output is compared bit for bit with the output of a
serial ``predict`` of the same input made before the threads start. The resident set size
(``VmRSS`` of /proc/self/status) is read after ``--early`` (500) warm-up predictions, when the
warm-up is done (2,000: the threads, the engine's allocations and Python's own pools have then
reached their working size) and at the end, and sampled every 20 ms in between for the peak;
growth is reported from both readings. The threads stay alive throughout and report counts
only, so that the harness itself holds no memory proportional to the work (an
``Executor.map`` over 10,000 items alone grows the resident size by ~3 MB, a harness artefact
this script first measured as "growth").

**Profiler.** Runs ``edgekit profile FILE --json`` (defaults: 1 thread, at least 2 s of timed
runs) ``--profile-runs`` times, each in a new process, on MobileNetV2 1.0 at 224x224 fp32
.tflite, and reports each run's median latency, the median of those medians and their spread,
(max - min) / median of medians.

    .venv/bin/python benchmarks/runtime_load.py [--predictions 10000] [--threads 8] [--json]
    .venv/bin/python benchmarks/runtime_load.py --files a.tflite b.onnx [--predictions 2000] [--json]

The second form load-tests the given files in this process (no export, no profiler section, no
results file); tests/test_load.py runs it that way (a tiny model by default, this MobileNetV2
in its slow test). The first form writes
benchmarks/results/runtime_load.json.

Recorded results (benchmarks/results/runtime_load.json holds the second run in full): 2-core
x86 container (Xeon), shared with other jobs (load average 2.5-4.8 during these runs, 8 and
more at times during the experiments quoted below), ai-edge-litert 2.3 (XNNPACK),
onnxruntime 1.32, engine threads at their defaults, ``nice -n 15``. 10,000 predictions after
2,000 warm-up ones, 25,000 samples, 8 threads:

    run 1 / run 2       wall s        RSS end, MiB    growth from 2,000   from 500        mismatches
    fp32 .tflite       8.1 / 7.8      60.3 / 60.5     -0.01 / -0.01%     -0.01 / -0.01%   0 / 0
    int8 .tflite      11.2 / 10.9     60.1 / 60.2      0.00 /  0.00%      0.01 /  0.01%   0 / 0
    fp32 .onnx         6.5 / 6.6      93.2 / 92.0      1.18 / -0.15%      3.77 /  2.52%   0 / 0
    int8 .onnx         5.4 / 5.3      82.2 / 82.4      1.98 /  2.21%      2.22 /  2.56%   0 / 0

No leak: the resident size of the .tflite runs does not move, and onnxruntime's grows only
while its memory arena reaches the high-water mark of 8 concurrent runs at batch 4 (the fp32
file ended at 92.7 MiB after 10,000 and 93.2 MiB after 30,000 predictions; the int8 file at
82.6 MiB after 10,000 and 82.8 MiB after 40,000). That takes up to ~2,000 predictions, so
with a 500-prediction warm-up (this script's first setting) the 5% target is not always met: fp32
.onnx grew 5.7%, 3.1% and 5.1% from 500 in three runs on a busy machine (load average 7-8),
0.4-1.1% from 2,000. Turning the arena off (``enable_cpu_mem_arena = False``) made it worse:
176 MiB after the warm-up, and glibc's per-thread heaps then shrink and grow unpredictably.

``edgekit profile`` x5 on MobileNetV2 1.0/224 fp32 .tflite (1 thread, >= 2 s of timed runs
each), medians in ms: run 1 4.74, 5.08, 4.73, 4.90, 4.89 (median of medians 4.89, spread
(max - min) / median 7.2%); run 2 5.36, 5.47, 5.20, 5.29, 5.43 (5.36, spread 5.1%). An earlier
run at load average 3 gave 4.90-5.71 (spread 15.8%): the run-to-run spread follows the load
of the machine, and so does the median itself (4.9 against 5.4 ms between two runs minutes
apart).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgekit.runtime import Model  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "runtime_load.json"
ROWS = (("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8"))  # (format, precision)
POOL = 16  # distinct inputs; predictions cycle through them
SAMPLE_EVERY_S = 0.02

# Run in a child so that this process (whose memory is measured) never imports TensorFlow.
_BUILD = """
import sys, numpy as np, keras
from edgekit.models import create_model
out, alpha, size, images = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
keras.utils.set_random_seed(0)
create_model("mobilenet_v2", (size, size, 3), num_classes=10, alpha=alpha).save(out)
rng = np.random.default_rng(0)
np.savez(images, images=rng.integers(0, 256, (200, size, size, 3), dtype=np.uint8), labels=np.arange(200) % 10)
"""


@dataclass
class LoadResult:
    """One file's load test. RSS figures in bytes; growth from the end of the warm-up to the end,
    and from the early reading (after ``early`` warm-up predictions) to the end."""

    file: str
    format: str
    precision: str
    backend: str
    callers: int
    engine_threads: int | None
    batches: list[int]
    warmup: int
    predictions: int
    samples: int
    wall_s: float
    predictions_per_s: float
    rss_start: int
    rss_end: int
    rss_peak: int
    rss_growth_pct: float
    early: int  # warm-up predictions before the early reading
    rss_early: int
    rss_growth_since_early_pct: float
    mismatches: int  # over the warm-up too, as are errors
    errors: int
    first_error: str | None


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc/self/status VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmRSS line; this benchmark needs Linux")


def make_inputs(model: Model, batches: list[int], count: int = POOL) -> list[np.ndarray]:
    """``count`` float inputs in [-1, 1] (the range edgekit's preprocessing gives), batch sizes
    cycling through ``batches``."""
    if len(model.inputs) != 1:
        raise ValueError(f"{model.path} has {len(model.inputs)} inputs; this load test feeds single-input models")
    shape = model.inputs[0].shape
    if any(d is None for d in shape[1:]):
        raise ValueError(f"{model.path} has input shape {shape}; expected fixed sizes besides the batch")
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, (batches[i % len(batches)], *shape[1:])).astype(np.float32) for i in range(count)]


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


class _RssSampler(threading.Thread):
    """Keeps the highest VmRSS seen until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_EVERY_S):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, rss_bytes())


def _share(start: int, stop: int, worker: int, callers: int) -> range:
    """Worker ``worker``'s predictions among numbers start..stop-1 (every ``callers``-th one)."""
    return range(start + (worker - start) % callers, stop, callers)


def run_load(path: Path, predictions: int, callers: int = 8, warmup: int = 2000, early: int = 500,
             batches: list[int] | None = None, engine_threads: int | None = None) -> LoadResult:
    """``callers`` threads share one Model for ``warmup`` then ``predictions`` predict calls; the
    RSS is also read after the first ``early`` warm-up calls."""
    model = Model(path, threads=engine_threads)
    batches = batches or [1, 2, 3, 4]
    inputs = make_inputs(model, batches)
    reference = [model.predict(x) for x in inputs]  # serial, before any thread starts
    pick = lambda i: (7 * i + 3) % len(inputs)  # noqa: E731 - neighbouring calls get other batch sizes
    early = min(early, warmup)
    gate = threading.Barrier(callers + 1)
    tallies = [[0, 0, None] for _ in range(callers)]  # mismatches, errors, first error

    def serve(share: range, tally: list) -> None:
        for i in share:
            try:
                if not _same(model.predict(inputs[pick(i)]), reference[pick(i)]):
                    tally[0] += 1
            except Exception as exc:  # counted, so that one failure cannot hang the barrier
                tally[1] += 1
                tally[2] = tally[2] or f"{type(exc).__name__}: {exc}"

    def worker(w: int) -> None:
        for first, stop in ((0, early), (early, warmup)):
            serve(_share(first, stop, w, callers), tallies[w])
            gate.wait()  # the main thread reads the RSS between the two waits
            gate.wait()
        serve(_share(warmup, warmup + predictions, w, callers), tallies[w])

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(callers)]
    for t in threads:
        t.start()
    readings = []
    for _ in range(2):
        gate.wait()
        readings.append(rss_bytes())
        gate.wait()
    sampler, start = _RssSampler(), time.perf_counter()
    sampler.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    peak, rss_end = sampler.stop(), rss_bytes()
    (rss_early, rss_start), meta = readings, model.metadata
    return LoadResult(
        file=str(path), format=model.format, precision=meta.precision if meta else "unknown",
        backend=model.backend, callers=callers, engine_threads=engine_threads, batches=batches,
        warmup=warmup, predictions=predictions,
        samples=sum(inputs[pick(i)].shape[0] for i in range(warmup, warmup + predictions)),
        wall_s=round(wall, 3), predictions_per_s=round(predictions / wall, 1),
        rss_start=rss_start, rss_end=rss_end, rss_peak=peak, rss_growth_pct=_growth(rss_start, rss_end),
        early=early, rss_early=rss_early, rss_growth_since_early_pct=_growth(rss_early, rss_end),
        mismatches=sum(t[0] for t in tallies), errors=sum(t[1] for t in tallies),
        first_error=next((t[2] for t in tallies if t[2]), None),
    )


def _growth(before: int, after: int) -> float:
    return round(100 * (after / before - 1), 3)


# -- the full benchmark: export, one process per file, profiler repeatability -------------------


def _run(cmd: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {p.returncode}:\n{tail}")
    return p


def export_models(work: Path, alpha: float, size: int, quantize: str, formats: str) -> dict[tuple[str, str], Path]:
    """A .keras MobileNetV2 built in a child process, exported with ``edgekit export``."""
    name = f"mnv2_{int(alpha * 100):03d}_{size}"
    keras_file, images = work / f"{name}.keras", work / f"{name}_images.npz"
    if not keras_file.exists():
        _run([sys.executable, "-c", _BUILD, str(keras_file), str(alpha), str(size), str(images)])
    doc = json.loads(_run([sys.executable, "-m", "edgekit.cli", "export", str(keras_file), "--format", formats,
                           "--quantize", quantize, "--calibration", str(images), "--num-calibration", "64",
                           "--num-validation", "32", "--out", str(work), "--force", "--json"]).stdout)
    return {(f["format"], f["precision"]): Path(f["path"]) for f in doc["files"]}


def load_in_child(path: Path, args: argparse.Namespace) -> dict:
    """Run this script's ``--files`` form on one file in a fresh process; its result record."""
    cmd = [sys.executable, __file__, "--files", str(path), "--predictions", str(args.predictions),
           "--threads", str(args.threads), "--warmup", str(args.warmup), "--early", str(args.early),
           "--batches", args.batches, "--json"]
    if args.engine_threads is not None:
        cmd += ["--engine-threads", str(args.engine_threads)]
    return json.loads(_run(cmd).stdout)["load"][0]


def profile_repeatability(path: Path, runs: int) -> dict:
    """``edgekit profile PATH --json`` ``runs`` times, each in a new process: the spread of the
    reported medians."""
    records = []
    for _ in range(runs):
        doc = json.loads(_run([sys.executable, "-m", "edgekit.cli", "profile", str(path), "--json"]).stdout)
        lat = doc["latency_ms"]
        records.append({"p50_ms": lat["p50"], "mean_ms": lat["mean"], "cv": lat["cv"], "runs": lat["runs"],
                        "load_average": doc["environment"]["load_average"]})
    medians = [r["p50_ms"] for r in records]
    centre = statistics.median(medians)
    return {"model": path.name, "command": "edgekit profile MODEL --json (1 thread, >= 2 s timed)",
            "runs": records, "median_of_medians_ms": round(centre, 4),
            "spread_pct": round(100 * (max(medians) - min(medians)) / centre, 2),
            "max_deviation_pct": round(100 * max(abs(m - centre) for m in medians) / centre, 2)}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()]}


# -- output ------------------------------------------------------------------------------------------


def print_table(results: list[dict], profile: dict | None) -> None:
    mib = 2**20
    print(f"{'file':26} {'backend':11} {'preds':>6} {'samples':>7} {'wall s':>7} {'pred/s':>6} {'RSS@early':>9} "
          f"{'RSS start':>9} {'RSS end':>8} {'peak':>7} {'growth':>7} {'since early':>11} {'mismatch':>8} "
          f"{'errors':>6}")
    for r in results:
        print(f"{Path(r['file']).name:26} {r['backend']:11} {r['predictions']:6d} {r['samples']:7d} "
              f"{r['wall_s']:7.2f} {r['predictions_per_s']:6.0f} {r['rss_early'] / mib:8.1f}M "
              f"{r['rss_start'] / mib:8.1f}M {r['rss_end'] / mib:7.1f}M {r['rss_peak'] / mib:6.1f}M "
              f"{r['rss_growth_pct']:6.2f}% {r['rss_growth_since_early_pct']:10.2f}% {r['mismatches']:8d} "
              f"{r['errors']:6d}")
    if profile:
        medians = ", ".join(f"{r['p50_ms']:.3f}" for r in profile["runs"])
        print(f"\nedgekit profile {profile['model']} x{len(profile['runs'])}: medians {medians} ms; "
              f"median of medians {profile['median_of_medians_ms']:.3f} ms, spread {profile['spread_pct']:.1f}%, "
              f"max deviation {profile['max_deviation_pct']:.1f}%")


def emit(doc: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, indent=1))
    else:
        print_table(doc["load"], doc.get("profile"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", type=Path, help="load-test these files here (no export, no profiler)")
    parser.add_argument("--predictions", type=int, default=10_000, help="predict calls after the warm-up")
    parser.add_argument("--threads", type=int, default=8, help="caller threads sharing one Model")
    parser.add_argument("--warmup", type=int, default=2000, help="predict calls before the RSS reading growth is "
                        "measured from")
    parser.add_argument("--early", type=int, default=500, help="predict calls before an early RSS reading")
    parser.add_argument("--batches", default="1,2,3,4", help="batch sizes of the input pool")
    parser.add_argument("--engine-threads", type=int, default=None, help="Model(threads=...); default: the engine's")
    parser.add_argument("--profile-runs", type=int, default=5, help="edgekit profile runs (0: skip)")
    parser.add_argument("--work", type=Path, default=None, help="keep the built files here")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file of the full benchmark")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = parser.parse_args(argv)
    for name in ("predictions", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} got {getattr(args, name)}; expected a positive integer")
    for name in ("warmup", "early"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} got {getattr(args, name)}; expected 0 or more")
    try:
        sizes = [int(v) for v in args.batches.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        parser.error(f"--batches got {args.batches!r}; expected comma-separated positive integers such as 1,2,4")
    args.batch_sizes = sizes
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.files:
        results = [asdict(run_load(p, args.predictions, args.threads, args.warmup, args.early, args.batch_sizes,
                                   args.engine_threads)) for p in args.files]
        emit({"machine": machine(), "load": results}, args.json)
        return
    before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print("exporting MobileNetV2 0.35/96 (tflite, onnx x fp32, int8) ...", file=sys.stderr)
        files = export_models(work, 0.35, 96, "fp32,int8", "tflite,onnx")
        results = []
        for row in ROWS:
            print(f"load test: {files[row].name}", file=sys.stderr)
            results.append(load_in_child(files[row], args))
        profile = None
        if args.profile_runs:
            print("exporting MobileNetV2 1.0/224 fp32 tflite for the profiler ...", file=sys.stderr)
            big = export_models(work, 1.0, 224, "fp32", "tflite")[("tflite", "fp32")]
            profile = profile_repeatability(big, args.profile_runs)
    settings = ("predictions", "threads", "warmup", "early", "batches", "engine_threads")
    doc = {"machine": {**before, "load_average_end": machine()["load_average"]},
           "settings": {k: getattr(args, k) for k in settings}, "load": results, "profile": profile}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    emit(doc, args.json)


if __name__ == "__main__":
    main()
