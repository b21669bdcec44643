"""``edgekit quickstart``: the README's main job, end to end on real data.

Counts the zoo, trains a small MobileNetV2 on Fashion-MNIST (a seeded subset, a few epochs,
stated in the output), exports fp32 and int8 TFLite and ONNX files, validates each against
the Keras model on the official test images, and benchmarks them side by side (``edgekit
benchmark``'s measurement: size, accuracy, agreement, interleaved median latency, FPS, MACs,
and why int8 is not faster when it is not), ending with that table.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from .benchmark_cmd import print_benchmark, timing_progress
from .common import emit_json, quiet_tensorflow, run_checked, stdout_to_stderr
from .tables import print_table

QUICK_ZOO = ["mobilenet_v1", "mobilenet_v2", "efficientnet_b0", "efficientnet_lite0", "lenet5"]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SAMPLE = Path(__file__).resolve().parents[2] / "calibration" / "fashion-mnist"
TIMING_S = 1.0  # timed seconds per file in the benchmark step (4 files, interleaved)
# Flips only: the default crop,scale augmentation pays off over --epochs auto (30 epochs on
# Fashion-MNIST: 91.65% on the test set) but regularises a 4-epoch run too much (quick start
# measured 73.20% with it, 78.45% with flips).
QUICK_AUGMENT = "flip"
QUICK_BATCH = 128  # as measured above (--batch-size auto would pick 64 for 10,800 images)


def _say(msg: str) -> None:
    click.echo(f"edgekit quickstart: {msg}", err=True)


def _say_budget(files) -> None:
    """The accuracy budget's verdict on each int8 file, and a warning for a file that misses it."""
    from .export_cmd import report_budget_misses

    for f in files:
        if f.notes.get("budget", {}).get("applied"):
            _say(f"{f.target.format.value} {f.notes['budget']['summary']}")
    report_budget_misses(files)


@click.command("quickstart")
@click.option("--data", default=None, help="Dataset (default: the official Fashion-MNIST files, "
              "else the shipped sample in calibration/).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Run directory (default: runs/quickstart-<time>).")
@click.option("--limit", type=click.IntRange(2), default=12000, show_default=True,
              help="Training images (a seeded subset, to stay within minutes on a laptop CPU).")
@click.option("--epochs", type=click.IntRange(1), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def quickstart_command(data, out, limit, epochs, as_json) -> None:
    """Run edgekit's main job: zoo counts, train, export fp32/int8 TFLite+ONNX, validate, benchmark."""
    quiet_tensorflow()
    data = data or str(FASHION_MNIST if FASHION_MNIST.is_dir() else SAMPLE)
    out = out or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}"
    recipe = (f"mobilenet_v2 alpha 0.35 at 32x32, a seeded {limit}-image subset of {data}, {epochs} epochs, "
              f"batch {QUICK_BATCH}, augmentation {QUICK_AUGMENT} (a quick recipe; see README for the full one)")
    with stdout_to_stderr(as_json):
        from ..benchmark import benchmark_export, write_outputs
        from ..data import load_split
        from ..export.exporter import export_model
        from ..export.options import ExportOptions, Format, Precision
        from ..models.report import zoo_rows
        from ..profile import TimingPlan
        from ..train import TrainConfig, train

        run_checked(load_split, data, "train")  # bad --data is refused now, not after the zoo step
        _say("1/4 counting the model zoo at default input sizes")
        rows = zoo_rows(QUICK_ZOO)
        _say(f"2/4 training {recipe}")
        meta = run_checked(train, TrainConfig("mobilenet_v2", data, out, input_size=32, alpha=0.35,
                                              epochs=epochs, limit=limit, augment=QUICK_AUGMENT, batch_size=QUICK_BATCH,
                                              tensorboard=False))
        _say("3/4 exporting fp32 and int8 TFLite and ONNX, validating each on the test split")
        report = run_checked(export_model, out, ExportOptions(
            formats=(Format.TFLITE, Format.ONNX), precisions=(Precision.FP32, Precision.INT8),
            num_validation=2000))
        _say_budget(report.files)
        _say(f"4/4 benchmarking the {len(report.files)} files (interleaved timing, {TIMING_S:g} s each, 1 thread)")
        with timing_progress() as progress:
            bench = benchmark_export(report, data, threads=1, timing=TimingPlan(warmup=5, min_time_s=TIMING_S),
                                     progress=progress)
        written = run_checked(write_outputs, bench, Path(out) / "benchmark.json", Path(out) / "benchmark.csv",
                              Path(out) / "benchmark.png")
    doc = {"zoo": [{"name": r.name, "params": r.params, "macs": r.macs} for r in rows],
           "run": out, "recipe": recipe,
           "train": {"images": meta["data"]["images"], "epochs": epochs,
                     "seconds": meta["wall_seconds_this_invocation"],
                     "val_accuracy": meta["final"].get("val_accuracy")},
           "export": report.to_dict(), "benchmark": bench.to_dict()}
    if as_json:
        emit_json(doc)
        return
    print_table("model zoo (1000 classes, default input size)", ["model", "input", "params", "MACs"],
                [[r.name, "x".join(map(str, r.input_shape)), f"{r.params:,}", f"{r.macs / 1e6:.1f}M"]
                 for r in rows])
    print_benchmark(doc["benchmark"])
    click.echo(f"recipe: {recipe}; trained in {doc['train']['seconds']} s")
    click.echo(f"everything is in {out}/ (plot: {written[-1]})")
