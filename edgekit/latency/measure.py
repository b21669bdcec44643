"""Export a zoo configuration and time the file, here or on a device over SSH.

Export is ``edgekit export``'s own (:func:`edgekit.export.export_model`, its defaults for the
target: uint8 pixels into an int8 TFLite file, the ONNX int8 form picked for the CPU), with the
accuracy budget off, so the file timed is the one a user exporting that model gets. Without
calibration data the int8 files are calibrated on a few **seeded random images**: only a file's
operators and shapes matter for its latency, and the ranges of an untrained network on noise
give the same operators and kernels; such files are for timing, not for use.
Timing is the profiler's: :func:`edgekit.profile.profile_model` here, or
:func:`edgekit.profile.profile_remote` (``edgekit profile --json`` on the device, as
``edgekit profile --remote`` runs it); the median (p50) of the timed runs is what the model fits.

A device's speed drifts over a fit of half an hour (a Raspberry Pi throttles when hot; a shared
machine slows when its neighbours are busy: on this project's 2-core VM the same file ran up
to 20% slower twenty minutes later). So each file is timed together with a fixed
:data:`REFERENCE` model (:func:`time_with_reference`: interleaved here, one after the other
over SSH), and the fit uses ``ms * baseline / reference_ms``: the latency at the reference's
median speed over the fit (:func:`normalize`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sampling import Config

CALIBRATION_IMAGES = 8
VALIDATION_IMAGES = 8
# Timed alongside every configuration: mid-sized (about 1-2 ms at 1 thread on a laptop core).
REFERENCE = Config.of("mobilenet_v2", {"alpha": 1.0}, 128)


def file_stem(config: Config) -> str:
    """``config`` as a file name: ``mobilenet_v2_alpha0p5_160`` (its knobs, then the input size)."""
    knobs = "_".join(f"{k}{v:g}" for k, v in config.knobs.items())
    return "_".join(part for part in (config.arch, knobs, str(config.input_size)) if part).replace(".", "p")


def random_calibration(config: Config, images: int = CALIBRATION_IMAGES):
    """Seeded uniform 0-255 pixels, normalised as the architecture's preprocessing says, as an
    ``edgekit.data.CalibrationData`` for ``ExportOptions.calibration``."""
    from edgekit.data import ArrayCalibration
    from edgekit.models import get_spec

    spec = get_spec(config.arch)
    pixels = np.random.default_rng(0).uniform(0, 255, (images, config.input_size, config.input_size, 3))
    return ArrayCalibration(((pixels - spec.mean) / spec.std).astype(np.float32))


def export_config(config: Config, formats: Sequence[str], precisions: Sequence[str], out_dir: Path, target: str = "host",
                  calibration=None, num_classes: int = 1000) -> dict[tuple[str, str], Path]:
    """Build ``config`` (random weights: latency does not depend on them) and export it in one
    ``edgekit export`` as every format x precision of ``formats`` and ``precisions`` into
    ``out_dir``; {(fmt, precision): path}.

    ``calibration``: an image source (path) or ``CalibrationData`` for the int8 files (default
    :func:`random_calibration`). ExportError naming the configuration when a file is not written.
    """
    from edgekit.export import ExportError, ExportOptions, Format, Precision, export_model
    from edgekit.export.options import CalibrationMethod, parse_choices
    from edgekit.models import create_model, get_spec
    from edgekit.runtime import PreprocessSpec

    spec = get_spec(config.arch)
    model = create_model(config.arch, (config.input_size, config.input_size, 3), num_classes, **config.knobs)
    preprocess = PreprocessSpec(size=(config.input_size, config.input_size), channels=3,
                                mean=(float(spec.mean),), std=(float(spec.std),))
    formats, precisions = parse_choices(formats, Format, "--format"), parse_choices(precisions, Precision, "--quantize")
    calibration = random_calibration(config) if calibration is None else calibration
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".edgekit-config-") as tmp:
        keras_path = Path(tmp) / f"{file_stem(config)}.keras"
        model.save(keras_path)
        options = ExportOptions(formats=formats, precisions=precisions, out_dir=Path(out_dir),
                                preprocess=preprocess, calibration=calibration,
                                num_calibration=CALIBRATION_IMAGES, num_validation=VALIDATION_IMAGES,
                                target=target, force=True, max_accuracy_drop=None, min_agreement=None,
                                calibration_method=CalibrationMethod.MINMAX)
        files = export_model(keras_path, options, log=lambda line: None).files
    wanted = [(f.value, p.value) for f in formats for p in precisions]
    written = {(f.target.format.value, f.target.precision.value): Path(f.path) for f in files if f.error is None}
    missing = [f"{f}/{p}" for f, p in wanted if (f, p) not in written]
    if missing:
        reasons = "; ".join(f"{f.target.key}: {f.error}" for f in files if f.error is not None)
        raise ExportError(f"exporting {config.key} failed for {', '.join(missing)}: {reasons or 'not written'}")
    return {pair: written[pair] for pair in wanted}


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


@dataclass(frozen=True)
class Timing:
    """One configuration's median and the reference's, timed together."""

    config: Config
    ms: float
    reference_ms: float


def time_with_reference(path: Path, reference: Path, threads: int, min_time_s: float,
                        remote: str | None = None) -> tuple[float, float]:
    """Medians (ms) of ``path`` and ``reference`` timed together: interleaved in turns here
    (``edgekit benchmark``'s timing, ``min_time_s`` each), one after the other on ``remote``."""
    if remote is not None:
        return (time_file(path, threads, min_time_s, remote).median_ms,
                time_file(reference, threads, min_time_s, remote).median_ms)
    from edgekit.profile import TimingPlan
    from edgekit.profile.runners import time_files

    timed = time_files({"model": path, "reference": reference}, threads, TimingPlan(warmup=3, min_time_s=min_time_s))
    if timed.errors:
        key, reason = next(iter(timed.errors.items()))
        raise RuntimeError(f"timing {key} failed: {reason}")
    return timed.stats["model"].p50, timed.stats["reference"].p50


class ReferenceTimer:
    """Times exported files beside :data:`REFERENCE`, which it exports once per (format,
    precision) into ``folder``/reference: the one timing protocol of the fit and of anything
    measured against a fit (held-out checks)."""

    def __init__(self, formats: Sequence[str], precisions: Sequence[str], folder: Path, target: str = "host",
                 threads: int = 1, min_time_s: float = 1.0, remote: str | None = None):
        self.paths = export_config(REFERENCE, formats, precisions, Path(folder) / "reference", target)
        self.threads, self.min_time_s, self.remote = threads, min_time_s, remote

    def describe_device(self) -> tuple[Measurement, dict[str, str | None]]:
        """A short profile of each reference file: the measuring device's description, and the
        runtimes' versions ({runtime: version})."""
        measurements = [time_file(path, self.threads, min(self.min_time_s, 0.25), self.remote, warmup=1)
                        for path in self.paths.values()]
        return measurements[0], {m.runtime: m.runtime_version for m in measurements}

    def time(self, config: Config, path: Path, pair: tuple[str, str]) -> Timing:
        """``path`` (``config`` exported as ``pair`` = (format, precision)) and the reference, timed together."""
        ms, reference_ms = time_with_reference(path, self.paths[pair], self.threads, self.min_time_s, self.remote)
        return Timing(config, ms, reference_ms)


def normalize(timings: list[Timing], baseline_ms: float | None = None) -> tuple[list[tuple[Config, float]], dict]:
    """Each timing at the reference's ``baseline_ms`` (default: the median of its timings here):
    [(config, ms * baseline / reference_ms)], and the record of the reference."""
    refs = np.array([t.reference_ms for t in timings], dtype=np.float64)
    baseline = float(np.median(refs)) if baseline_ms is None else float(baseline_ms)
    record = {"config": REFERENCE.key, "baseline_ms": round(baseline, 4), "min_ms": round(float(refs.min()), 4),
              "max_ms": round(float(refs.max()), 4)}
    return [(t.config, t.ms * baseline / t.reference_ms) for t in timings], record
