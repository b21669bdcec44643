"""Do ``edgekit profile`` and ``edgekit benchmark`` agree? p50 latency of the same files by both.

For each thread count, the files of FOLDER (NAME_fp32/NAME_int8 .tflite and .onnx, as
``edgekit export`` names them) are timed the way ``edgekit benchmark`` times them (all files
interleaved in one run, ``edgekit.benchmark.measure.measure_rows``) and then each the way
``edgekit profile FILE`` times it (``edgekit.profile.profile_model``, one file at a time). Both
load files through ``edgekit.profile.runners.load_file`` with the same engine settings and
spinning policy (``edgekit.profile.latency.SPINNING``), so the two p50s should differ only by
the noise of the machine; the table gives their ratio and whether it is within ``--tolerance``.
Issue 15 measured, before the two shared one timing path, ONNX fp32 at 2 threads: 2.70 ms
(benchmark, spinning off) vs 1.69 ms (profile, onnxruntime's default spinning).

    python benchmarks/profile_vs_benchmark.py FOLDER [--threads 1,2] [--min-time 2] [--rounds 1]
    python benchmarks/profile_vs_benchmark.py FOLDER --prepare      # MobileNetV2 1.0/224 first

``--prepare`` makes FOLDER: MobileNetV2 alpha 1.0 at 224x224x3, 1000 classes, seeded random
weights (latency does not depend on the weight values), saved as a run folder and exported
with ``edgekit export``'s defaults to TFLite and ONNX, fp32 and int8 (calibrated on the shipped
Fashion-MNIST sample, accuracy budget off: the weights are random). ``--rounds N`` repeats the
benchmark-then-profile pass N times and reports every pass, so that drift shows.

Writes benchmarks/results/profile_vs_benchmark_<folder name>.json and .md (``--out``), with the
machine's load average before and after each pass: figures from a busy machine say only that
the script works.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgekit.profile.env import environment  # noqa: E402
from benchmarks.zoo_run import run_note, save_run  # noqa: E402
from edgekit.profile.latency import TimingPlan  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SAMPLE = REPO / "calibration" / "fashion-mnist"
KEYS = [(fmt, precision) for fmt in ("tflite", "onnx") for precision in ("fp32", "int8")]


def find_files(folder: Path) -> dict[tuple[str, str], Path]:
    found = {}
    for fmt, precision in KEYS:
        matches = sorted(folder.glob(f"*_{precision}.{fmt}"))
        if matches:
            found[(fmt, precision)] = matches[0]
    if not found:
        raise SystemExit(f"no NAME_fp32/NAME_int8 .tflite/.onnx files in {folder}")
    return found


def benchmark_p50(files: dict[tuple[str, str], Path], threads: int, plan: TimingPlan) -> dict[str, float]:
    """p50 ms of every file, timed as ``edgekit benchmark`` does (interleaved, one run)."""
    from edgekit.benchmark.measure import measure_rows
    from edgekit.benchmark.report import BenchmarkRow

    rows = [BenchmarkRow(fmt, precision, path=str(path)) for (fmt, precision), path in files.items()]
    measure_rows(rows, threads, plan, log=lambda line: None)
    failed = [f"{r.key}: {r.note}" for r in rows if r.latency is None]
    if failed:
        raise SystemExit(f"benchmark failed: {failed}")
    return {r.key: r.latency.p50 for r in rows}


def profile_p50(path: Path, threads: int, plan: TimingPlan) -> tuple[float, float]:
    """(p50 ms, CV) of one file, timed as ``edgekit profile FILE --threads T`` does."""
    from edgekit.profile import ProfileOptions, profile_model

    report = profile_model(path, ProfileOptions(threads=(threads,), timing=plan), log=lambda line: None)
    stats = report.runs[0].stats
    return stats.p50, stats.cv


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def compare(files: dict[tuple[str, str], Path], threads_list: list[int], plan: TimingPlan, rounds: int,
            tolerance: float) -> list[dict]:
    rows = []
    for round_ in range(rounds):
        for threads in threads_list:
            load_before = load_average()
            bench = benchmark_p50(files, threads, plan)
            for (fmt, precision), path in files.items():
                key = f"{fmt}/{precision}"
                p50, cv = profile_p50(path, threads, plan)
                ratio = p50 / bench[key]
                rows.append({"round": round_ + 1, "threads": threads, "file": key, "path": str(path),
                             "benchmark_p50_ms": round(bench[key], 4), "profile_p50_ms": round(p50, 4),
                             "profile_cv": round(cv, 4), "ratio": round(ratio, 4),
                             "within": abs(ratio - 1) <= tolerance, "load_before": load_before,
                             "load_after": load_average()})
                print(f"round {round_ + 1}, {threads} thread(s), {key}: benchmark {bench[key]:.3f} ms, "
                      f"profile {p50:.3f} ms, ratio {ratio:.3f}", file=sys.stderr, flush=True)
    return rows


def markdown(doc: dict) -> str:
    env = doc["environment"]
    lines = [f"# edgekit profile vs edgekit benchmark: {doc['name']}", "", doc["model"], "",
             f"{env['arch']}, {env['cpu_model']}, {env['cpu_cores']} cores; "
             f"spinning policy {env['spinning']['policy']} ({env['spinning']['onnxruntime']}); "
             f"timing {doc['timing']} per file; tolerance {100 * doc['tolerance']:.0f}%.", "",
             f"Command: `{doc['command']}`", "",
             "| round | threads | file | benchmark p50 (ms) | profile p50 (ms) | profile / benchmark | within | "
             "load before / after |", "|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['round']} | {r['threads']} | {r['file']} | {r['benchmark_p50_ms']:.3f} | "
                     f"{r['profile_p50_ms']:.3f} | {r['ratio']:.3f} | {'yes' if r['within'] else 'NO'} | "
                     f"{r['load_before']} / {r['load_after']} |")
    if doc.get("notes"):
        lines += ["", "Notes:", "", *(f"- {note}" for note in doc["notes"])]
    return "\n".join(lines) + "\n"


def prepare(folder: Path) -> str:
    """A run folder with MobileNetV2 1.0/224 and its default TFLite and ONNX fp32/int8 exports."""
    import keras

    from edgekit.export import ExportOptions, Format, Precision, export_model
    from edgekit.models import create_model
    from edgekit.runtime import PreprocessSpec

    keras.utils.set_random_seed(0)
    model = create_model("mobilenet_v2", (224, 224, 3), 1000, alpha=1.0)
    what = "MobileNetV2 alpha 1.0, 224x224x3, 1000 classes, seeded random weights"
    save_run(folder, model, "mobilenet_v2", PreprocessSpec(size=(224, 224), channels=3), SAMPLE, what)
    export_model(folder, ExportOptions(formats=(Format.TFLITE, Format.ONNX), precisions=(Precision.FP32, Precision.INT8),
                                       out_dir=folder, force=True, num_calibration=100, num_validation=20,
                                       max_accuracy_drop=None))
    return what


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--min-time", type=float, default=2.0, help="timed seconds per file, as --min-time of both")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1, help="benchmark-then-profile passes")
    parser.add_argument("--tolerance", type=float, default=0.10, help="largest |profile / benchmark - 1|")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--prepare", action="store_true", help="build and export MobileNetV2 1.0/224 into FOLDER")
    parser.add_argument("--note", action="append", default=[], help="a line of text for the results file")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds got {args.rounds}; expected an integer >= 1")
    model = prepare(args.folder) if args.prepare else run_note(args.folder)
    files = find_files(args.folder)
    plan = TimingPlan(warmup=args.warmup, min_time_s=args.min_time)
    rows = compare(files, [int(t) for t in args.threads.split(",")], plan, args.rounds, args.tolerance)
    name = args.folder.resolve().name
    doc = {"name": name, "model": model or name, "command": " ".join(["python", *sys.argv]),
           "timing": plan.describe(), "warmup": plan.warmup, "tolerance": args.tolerance,
           "environment": environment("onnxruntime", None), "rows": rows, "notes": args.note,
           "all_within": all(r["within"] for r in rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"profile_vs_benchmark_{name}.json").write_text(json.dumps(doc, indent=2))
    (args.out / f"profile_vs_benchmark_{name}.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
