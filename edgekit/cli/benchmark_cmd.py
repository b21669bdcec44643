"""``edgekit benchmark``: export to every format x precision and compare the files (see
``edgekit.benchmark``)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

import click

from .common import CliError, emit_json, quiet_tensorflow, run_checked, stdout_to_stderr, target_option
from .tables import print_table

from edgekit.export.options import Format, Precision  # no TensorFlow: the CLI stays quick on bad arguments

# The benchmark's default matrix: every precision of the two formats a phone app loads directly
# (ort is opt-in: it is the ONNX graph again, in ONNX Runtime Mobile's container).
_DEFAULT_FORMATS = ",".join(f.value for f in (Format.TFLITE, Format.ONNX))
_DEFAULT_PRECISIONS = ",".join(p.value for p in Precision)


@click.command("benchmark")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", required=True, help="Labelled data (image folder, IDX folder or .npz): accuracy on its "
              "test split, int8 calibration on its train split.")
@click.option("--formats", default=_DEFAULT_FORMATS, show_default=True, help=f"Comma-separated: {', '.join(f.value for f in Format)}.")
@click.option("--quantize", "precisions", default=_DEFAULT_PRECISIONS, show_default=True,
              help=f"Comma-separated: {', '.join(p.value for p in Precision)}.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="Inference threads.")
@target_option("The device the files are exported for (see 'edgekit targets'); they are measured here, "
               "with a warning when that is not the target.")
@click.option("--num-images", type=click.IntRange(1), default=1000, show_default=True,
              help="Test images the accuracy and agreement are measured on.")
@click.option("--runs", type=click.IntRange(1), default=None, help="Time exactly N runs per file (instead of --min-time).")
@click.option("--min-time", type=click.FloatRange(0, min_open=True), default=None, metavar="S",
              help="Time each file for at least S seconds (and 10 runs), interleaved  [default: 2]")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True, help="Untimed runs per file first.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the exported files and benchmark.json/.csv/.png  [default: MODEL's benchmark/ folder]")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV table  [default: OUT/benchmark.csv]")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="PNG of accuracy against latency  [default: OUT/benchmark.png]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def benchmark_command(model: Path, data: str, formats: str, precisions: str, threads: int, target, num_images: int,
                      runs, min_time, warmup: int, out_dir, csv_path, plot_path, as_json: bool) -> int:
    """Export MODEL (a run folder or a .keras file) to each format x precision and compare the
    files: status, size, accuracy on DATA, top-1 agreement with Keras, median latency, FPS, MACs.

    A target that fails is a failed row with its reason; the others are still measured. Latency
    is timed round-robin across the files so that a busy machine slows them all alike.
    """
    if runs is not None and min_time is not None:
        raise CliError("--runs and --min-time are alternatives; pass one")
    quiet_tensorflow()
    with stdout_to_stderr(as_json):
        from ..benchmark import BenchmarkOptions, benchmark_model, write_outputs
        from ..benchmark.run import default_out
        from ..export import Format, Precision, parse_choices
        from ..profile import TimingPlan

        options = run_checked(lambda: BenchmarkOptions(
            formats=parse_choices(formats, Format, "--formats"),
            precisions=parse_choices(precisions, Precision, "--quantize"),
            threads=threads, target=target, num_images=num_images, out_dir=out_dir,
            timing=TimingPlan(warmup=warmup, runs=runs, min_time_s=2.0 if min_time is None else min_time)))
        with timing_progress() as progress:
            report = run_checked(benchmark_model, model, data, options, progress=progress)
        out = out_dir or default_out(model)
        written = run_checked(write_outputs, report, out / "benchmark.json", csv_path or out / "benchmark.csv",
                              plot_path or out / "benchmark.png")
    doc = report.to_dict()
    if doc["target_mismatch"]:
        click.echo(f"warning: {doc['target_mismatch']}", err=True)
    if as_json:
        emit_json(doc)
    else:
        print_benchmark(doc)
        click.echo(f"wrote {', '.join(map(str, written))}")
    return 0 if any(r["status"] == "ok" for r in doc["rows"]) else 1


@contextlib.contextmanager
def timing_progress() -> Iterator:
    """A progress bar on stderr for the timing loop (when stderr is a terminal), as a callback."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("timing"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("timing", total=1.0)
        yield lambda fraction: bar.update(task, completed=fraction)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _size(value) -> str:
    return "-" if value is None else f"{value / 1024:.0f} KiB"


def print_benchmark(doc: dict) -> None:
    """The rich table of a benchmark document, then its notes."""
    rows = []
    for r in doc["rows"]:
        latency = r["latency_ms"] or {}
        status = "ok" if r["status"] == "ok" else "FAILED (below)"
        rows.append([r["format"], r["precision"], status, _size(r["size_bytes"]), _pct(r["accuracy"]),
                     _pct(r["agreement"]), "-" if "p50" not in latency else f"{latency['p50']:.3f}",
                     "-" if r["fps"] is None else f"{r['fps']:.0f}",
                     "-" if r["macs"] is None else f"{r['macs'] / 1e6:.2f}M"])
    print_table(f"edgekit benchmark of {doc['model']} (batch 1, {doc['threads']} thread(s); "
                f"Keras accuracy {_pct(doc['keras']['accuracy'])})",
                ["format", "precision", "status", "size", "accuracy", "agreement", "p50 ms", "FPS", "MACs"], rows)
    click.echo(f"accuracy and agreement with Keras on {doc['validation'] or doc['data']}; latency: median of "
               f"interleaved runs ({doc['timing']} per file)")
    for r in doc["rows"]:
        if r["status"] != "ok":
            click.echo(f"FAILED {r['format']}/{r['precision']}: {r['note']}")
    for note in doc["notes"]:
        click.echo(f"note: {note}")
