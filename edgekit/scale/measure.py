"""Measure candidates for real: build each (random weights: latency does not depend on them),
export it at the requested format and precision as ``edgekit export`` does
(:func:`edgekit.latency.measure.export_config`: accuracy budget off, so that no layer is kept in
float, and int8 calibrated on seeded random images unless ``--data`` is given), and time the
files together (:func:`edgekit.profile.runners.time_files`, ``edgekit benchmark``'s
interleaved timing), so that drift on a shared machine affects every candidate alike. The
median (p50) is the measured latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekit.latency.measure import export_config
from edgekit.messages import stderr
from edgekit.profile.latency import TimingPlan
from edgekit.profile.runners import time_files

from .candidates import Candidate


@dataclass(frozen=True)
class MeasureSettings:
    fmt: str = "tflite"
    precision: str = "int8"
    target: str = "host"
    threads: int = 1
    num_classes: int = 1000
    calibration: str | None = None  # an image source for int8 calibration; None: random images
    timing: TimingPlan = TimingPlan(warmup=5, min_time_s=2.0)


def export_candidate(c: Candidate, folder: Path, settings: MeasureSettings,
                     log: Callable[[str], None] = stderr) -> Path:
    """Build ``c`` and export it into ``folder``; the path of the file written."""
    path, = export_config(c.config, [settings.fmt], [settings.precision], folder, settings.target,
                          settings.calibration, settings.num_classes).values()
    log(f"scale: exported {c.arch} {c.describe()} to {path}")
    return path


def measure(candidates: list[Candidate], folder: Path, settings: MeasureSettings,
            log: Callable[[str], None] = stderr) -> None:
    """Export and time ``candidates`` together; sets each one's ``measured_ms``."""
    paths = {str(i): export_candidate(c, folder, settings, log) for i, c in enumerate(candidates)}
    log(f"scale: timing {len(paths)} file(s) interleaved, {settings.threads} thread(s), "
        f"{settings.timing.describe()} each")
    timed = time_files(paths, settings.threads, settings.timing)
    if timed.errors:
        key, reason = next(iter(timed.errors.items()))
        raise RuntimeError(f"timing {paths[key].name} failed: {reason}")
    for i, c in enumerate(candidates):
        c.measured_ms = timed.stats[str(i)].p50
