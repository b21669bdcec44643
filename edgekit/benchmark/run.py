"""``benchmark_model``: export a Keras model to every format x precision asked for, then measure
each file; ``benchmark_export`` measures the files of an export already done.

Exporting is ``edgekit.export.export_model`` into the benchmark folder with ``force`` (its
writer replaces files atomically): files found there may come from an older model or other
options, and re-exporting costs less than the doubt. The export validates each file on the
benchmark data's labelled test split (``--num-images`` of them) and reports accuracy and top-1
agreement with Keras; calibration (int8) uses the same data's train split. All targets are
exported in one call (they share the SavedModel and the float ONNX graph); when that call
fails, each target is exported on its own, so that only the target that fails loses its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from edgekit.devices import DeviceTarget, get_device, mismatch, resolve_host
from edgekit.export import ExportOptions, ExportReport, Format, Precision, Target, export_model, select_targets
from edgekit.export.targets import TARGETS
from edgekit.export.writer import write_atomic
from edgekit.messages import one_line, stderr
from edgekit.profile.latency import Progress, TimingPlan

from .measure import measure_rows
from .plot import plot_png
from .report import BenchmarkReport, BenchmarkRow

OUT_FOLDER = "benchmark"
DEFAULT_NUM_IMAGES = 1000


@dataclass(frozen=True)
class BenchmarkOptions:
    formats: tuple[Format, ...] = (Format.TFLITE, Format.ONNX)
    precisions: tuple[Precision, ...] = tuple(Precision)
    threads: int = 1
    num_images: int = DEFAULT_NUM_IMAGES
    timing: TimingPlan = field(default_factory=lambda: TimingPlan(warmup=5, min_time_s=2.0))
    out_dir: Path | None = None  # default: MODEL/benchmark (a run folder) or next to the .keras file
    target: DeviceTarget | str = "host"  # the device the files are exported for (edgekit.devices)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", get_device(self.target))
        for name in ("threads", "num_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} got {value!r}; expected an integer >= 1")


@dataclass
class Exported:
    """What the export step gave: the files, and (target, one-line reason) for those it could not make."""

    report: ExportReport
    failures: list[tuple[Target, str]] = field(default_factory=list)


def default_out(model: Path) -> Path:
    return (model if model.is_dir() else model.parent) / OUT_FOLDER


def benchmark_model(model: str | Path, data: str | Path, options: BenchmarkOptions = BenchmarkOptions(),
                    log: Callable[[str], None] = stderr, progress: Progress | None = None) -> BenchmarkReport:
    """Export ``model`` (a run folder or .keras file) and benchmark every file on ``data``.

    ValueError for bad input (a missing model or data, an unsupported choice, every target
    failing for the same reason); a failure of one target is a failed row.
    """
    model = Path(model)
    if not model.exists():
        raise ValueError(f"MODEL got {str(model)!r}, which does not exist; expected a run folder or a .keras file")
    _check_data(str(data))
    _check_model(model)
    targets, skipped = select_targets(options.formats, options.precisions)
    out = Path(options.out_dir) if options.out_dir is not None else default_out(model)
    export_options = ExportOptions(formats=options.formats, precisions=options.precisions, out_dir=out,
                                   calibration=str(data), num_validation=options.num_images, force=True,
                                   target=options.target)
    log(f"benchmark: exporting {', '.join(t.key for t in targets)} for target {options.target.name} into {out}")
    exported = export_targets(model, targets, export_options, log)
    exported.report.skipped = skipped
    return benchmark_export(exported, str(data), options.threads, options.timing, log, progress)


def _check_data(data: str) -> None:
    """The data's test split (else its validation part) loads: a wrong path fails before any export."""
    from edgekit.data import DataError, load_split

    try:
        load_split(data, "test")
    except DataError:
        load_split(data, "val")


def _check_model(model: Path) -> None:
    """MODEL loads (a run folder or .keras file): a bad one is refused once, before any export,
    rather than by every target's export in turn."""
    from edgekit.export.source import load_source

    load_source(model)


def export_targets(model: Path, targets: list[Target], options: ExportOptions,
                   log: Callable[[str], None]) -> Exported:
    try:
        return Exported(export_model(model, options, log))
    except Exception as exc:  # converters raise ValueError, RuntimeError, tf2onnx's own errors, ...
        log(f"benchmark: the export stopped ({one_line(exc)}); exporting each target on its own")
    merged, failures, input_errors = None, [], set()
    for target in targets:
        one = replace(options, formats=(target.format,), precisions=(target.precision,))
        try:
            report = export_model(model, one, log)
        except Exception as exc:
            failures.append((target, one_line(exc)))
            input_errors.add(failures[-1][1] if isinstance(exc, ValueError) else None)
            log(f"[{target.key}] FAILED: {failures[-1][1]}")
            continue
        if merged is None:
            merged = report
        else:
            merged.files.extend(report.files)
    if merged is None:
        if len(input_errors) == 1 and None not in input_errors:  # the model or the data, not a converter
            raise ValueError(input_errors.pop())
        merged = ExportReport(model=str(model), target=options.target.to_dict())
    return Exported(merged, failures)


def rows_of(exported: Exported) -> list[BenchmarkRow]:
    """One row per target, in the targets table's order; failed exports are failed rows."""
    rows: dict[str, BenchmarkRow] = {}
    for f in exported.report.files:
        v = f.validation
        row = BenchmarkRow(f.target.format.value, f.target.precision.value, path=str(f.path),
                           size_bytes=f.size_bytes or None, accuracy=v.accuracy if v else None,
                           agreement=v.agreement if v else None)
        if f.error:
            row.fail(f.error)
        rows[f.target.key] = row
    for target, reason in exported.failures:
        rows[target.key] = BenchmarkRow(target.format.value, target.precision.value, status="failed",
                                        note=f"export failed: {reason}")
    order = {t.key: i for i, t in enumerate(TARGETS)}
    return sorted(rows.values(), key=lambda r: order.get(r.key, len(order)))


def benchmark_export(exported: Exported | ExportReport, data: str, threads: int = 1,
                     timing: TimingPlan = TimingPlan(warmup=5, min_time_s=2.0),
                     log: Callable[[str], None] = stderr, progress: Progress | None = None) -> BenchmarkReport:
    """Measure the files of an export (its validation gives accuracy and agreement)."""
    if isinstance(exported, ExportReport):
        exported = Exported(exported)
    report = exported.report
    rows = rows_of(exported)
    notes, env = measure_rows(rows, threads, timing, log, progress)
    skipped = [f"skipped {key}: {reason}" for key, reason in report.skipped]
    made_for, measuring = (report.target or {}).get("name"), resolve_host()
    return BenchmarkReport(model=report.model, data=data, rows=rows, threads=threads, timing=timing.describe(),
                           validation=report.validation_source, keras_accuracy=report.keras_accuracy,
                           environment=env, notes=[*skipped, *notes, *report.warnings],
                           target={"file": made_for, "measuring": measuring.name},
                           target_mismatch=mismatch(made_for, measuring))


def write_outputs(report: BenchmarkReport, json_path: Path | None = None, csv_path: Path | None = None,
                  png_path: Path | None = None) -> list[Path]:
    """Write the JSON document, the CSV table and the PNG plot (each atomically); the paths written."""
    import json

    written = []
    for path, make in ((json_path, lambda: json.dumps(report.to_dict(), indent=2).encode()),
                       (csv_path, lambda: report.to_csv().encode()), (png_path, lambda: plot_png(report))):
        if path is None:
            continue
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, make())
        written.append(path)
    return written
