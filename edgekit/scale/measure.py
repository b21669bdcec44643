"""Measure candidates for real: build each (random weights: latency does not depend on them),
export it at the requested format and precision (``edgekit.export``), and time the files
together (``edgekit.profile.latency.interleaved``, files loaded as ``edgekit profile`` loads
them), so that drift on a shared machine affects every candidate alike. The median (p50) is the
measured latency.

Without ``--data``, int8 files are calibrated on a few seeded random images: the ranges of an
untrained network on noise give the same operators and the same kernel choices, which is all a
timing needs. The export's accuracy budget is off here, so that no layer is kept in float and
the file timed is the plain int8 file ``edgekit export`` writes for a trained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.messages import stderr
from edgekit.profile.latency import TimingPlan, interleaved
from edgekit.profile.runners import load_file

from .candidates import Candidate

CALIBRATION_IMAGES = 16
VALIDATION_IMAGES = 8


@dataclass(frozen=True)
class MeasureSettings:
    fmt: str = "tflite"
    precision: str = "int8"
    target: str = "host"
    threads: int = 1
    num_classes: int = 1000
    calibration: str | None = None  # an image source for int8 calibration; None: random images
    timing: TimingPlan = TimingPlan(warmup=5, min_time_s=2.0)


def file_name(c: Candidate) -> str:
    knobs = "_".join(f"{k}{v:g}" for k, v in c.config.overrides.items() if k != "resolution")
    return f"{c.arch}_{knobs}_{c.input_size}".replace(".", "p")


def export_candidate(c: Candidate, folder: Path, settings: MeasureSettings,
                     log: Callable[[str], None] = stderr) -> Path:
    """Build ``c`` and export it into ``folder``; the path of the file written."""
    from edgekit.export import ExportError, ExportOptions, Format, Precision, export_model, parse_choice
    from edgekit.models import create_model

    knobs = {k: v for k, v in c.config.overrides.items() if k != "resolution"}
    model = create_model(c.arch, (c.input_size, c.input_size, 3), settings.num_classes, **knobs)
    keras_path = folder / f"{file_name(c)}.keras"
    model.save(keras_path)
    calibration = settings.calibration or str(_random_images(folder))
    options = ExportOptions(formats=(parse_choice(settings.fmt, Format, "--format"),),
                            precisions=(parse_choice(settings.precision, Precision, "--precision"),),
                            out_dir=folder, calibration=calibration, num_calibration=CALIBRATION_IMAGES,
                            num_validation=VALIDATION_IMAGES, target=settings.target, force=True,
                            max_accuracy_drop=None, min_agreement=None)
    report = export_model(keras_path, options, log=lambda line: None)
    written = [f for f in report.files if f.error is None]
    if not written:
        reason = report.files[0].error if report.files else "no file written"
        raise ExportError(f"exporting {c.describe()} failed: {reason}")
    log(f"scale: exported {c.arch} {c.describe()} to {written[0].path}")
    return Path(written[0].path)


def _random_images(folder: Path) -> Path:
    path = folder / "random_calibration.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        n = 2 * CALIBRATION_IMAGES  # the train split of a file without one holds out a tenth for validation
        np.savez(path, images=rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
                 labels=np.arange(n, dtype=np.int64) % 2)
    return path


def time_files(paths: dict[str, Path], threads: int, plan: TimingPlan) -> dict[str, float]:
    """Median milliseconds per file (keyed as ``paths``), timed interleaved at ``threads``."""
    loaded = {key: load_file(path, threads, 1) for key, path in paths.items()}
    timed = interleaved({key: lo.call for key, lo in loaded.items()}, plan)
    if timed.errors:
        key, reason = next(iter(timed.errors.items()))
        raise RuntimeError(f"timing {paths[key].name} failed: {reason}")
    return {key: stats.p50 for key, stats in timed.stats.items()}


def measure(candidates: list[Candidate], folder: Path, settings: MeasureSettings,
            log: Callable[[str], None] = stderr) -> None:
    """Export and time ``candidates`` together; sets each one's ``measured_ms``."""
    paths = {str(i): export_candidate(c, folder, settings, log) for i, c in enumerate(candidates)}
    log(f"scale: timing {len(paths)} file(s) interleaved, {settings.threads} thread(s), "
        f"{settings.timing.describe()} each")
    medians = time_files(paths, settings.threads, settings.timing)
    for i, c in enumerate(candidates):
        c.measured_ms = medians[str(i)]
