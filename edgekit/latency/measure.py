"""Export a zoo configuration and time the file, here or on a device over SSH.

Export goes through the export table's own converters (:func:`edgekit.export.get_target`), with
the accuracy budget off and **random calibration images**: only the file's operators and shapes
matter for its latency, not its accuracy, so the int8 files of a fit are not for use.
Timing is the profiler's: :func:`edgekit.profile.profile_model` here, or
:func:`edgekit.profile.profile_remote` (``edgekit profile --json`` on the device, as
``edgekit profile --remote`` runs it); the median (p50) of the timed runs is what the model fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.tempfiles import atomic_write_bytes

from .sampling import Config

CALIBRATION_IMAGES = 8


def export_config(config: Config, fmt_precisions: list[tuple[str, str]], out_dir: Path,
                  target: str = "host") -> dict[tuple[str, str], Path]:
    """Write ``config`` as each (format, precision) into ``out_dir``; {(fmt, precision): path}."""
    from edgekit.export.context import ConversionContext
    from edgekit.export.options import CalibrationMethod, ExportOptions
    from edgekit.export.targets import get_target
    from edgekit.models import create_model, get_spec

    spec = get_spec(config.arch)
    model = create_model(config.arch, input_shape=(config.input_size, config.input_size, 3), **dict(config.overrides))
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (CALIBRATION_IMAGES, config.input_size, config.input_size, 3))
    calibration = ((pixels - spec.mean) / spec.std).astype(np.float32)
    options = ExportOptions(formats=tuple(f for f, _ in fmt_precisions), precisions=tuple(p for _, p in fmt_precisions),
                            max_accuracy_drop=None, min_agreement=None, target=target,
                            calibration_method=CalibrationMethod.MINMAX)
    ctx = ConversionContext(model, options, calibration)
    paths = {}
    try:
        for fmt, precision in fmt_precisions:
            path = Path(out_dir) / f"{config.key.replace('/', '_')}_{precision}.{fmt}"
            atomic_write_bytes(path, get_target(fmt, precision).convert(ctx))
            paths[(fmt, precision)] = path
    finally:
        ctx.close()
    return paths


@dataclass
class Measurement:
    median_ms: float
    target: str  # the measuring machine's target name
    cpu_model: str
    machine: str
    cores: int | None
    runtime: str
    runtime_version: str | None
    cv: float
    per_op: dict | None = None


def time_file(path: Path, threads: int, min_time_s: float, remote: str | None = None, per_op: bool = False,
              warmup: int = 3) -> Measurement:
    """The profiler's median latency of ``path`` at ``threads`` (on ``remote`` over SSH when given)."""
    if remote is not None:
        from edgekit.profile.remote import SshTarget, profile_remote

        args = ["--threads", str(threads), "--min-time", repr(float(min_time_s)), "--warmup", str(warmup)]
        doc = profile_remote(path, SshTarget(remote), args + (["--per-op"] if per_op else []))
    else:
        from edgekit.profile import ProfileOptions, TimingPlan, profile_model

        options = ProfileOptions(threads=(threads,), per_op=per_op,
                                 timing=TimingPlan(warmup=warmup, min_time_s=float(min_time_s)))
        doc = profile_model(path, options, log=lambda line: None).to_dict()
    env = doc.get("environment", {})
    run = doc["runs"][0]
    return Measurement(float(doc["latency_ms"]["p50"]), str(doc.get("target", {}).get("measuring")),
                       str(env.get("cpu_model")), str(env.get("arch")), env.get("cpu_cores"),
                       str(env.get("runtime")), env.get("runtime_version"), float(doc["latency_ms"]["cv"]),
                       run.get("per_op"))
