"""``fit``: measure sampled zoo configurations on a device and fit a :class:`LatencyModel`.

Each configuration is built, exported to every asked (format, precision) (:mod:`.measure`) and
timed at ``threads`` (median) together with the reference model (:mod:`.measure`: the medians
are normalized to the reference's median speed over the fit, so that a device whose speed
drifts is fitted at one speed), until the time budget is spent; then one predictor per
(format, precision) is fitted by NNLS on the configurations' kernel features
(:mod:`.from_config`, the features ``predict_config`` uses) against the normalized medians. Configurations in ``exclude``
(held out for evaluation) are never measured. The budget is checked before each configuration,
and a fit always measures at least :data:`MIN_CONFIGS`, however short the budget.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
import time
from pathlib import Path
from typing import Callable

from edgekit import __version__
from edgekit.messages import first_line, stderr

from .from_config import config_kernels
from .measure import ReferenceTimer, Timing, export_config, normalize
from .model import FORMATS, PRECISIONS, LatencyModel, Predictor, fit_kernels, predictor_key, rmspe, within
from .sampling import GRIDS, Config, sample

MIN_CONFIGS = 2


def check_choices(formats, precisions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    formats = tuple(dict.fromkeys(str(f).strip().lower() for f in formats))
    precisions = tuple(dict.fromkeys(str(p).strip().lower() for p in precisions))
    for values, known, option in ((formats, FORMATS, "--format"), (precisions, PRECISIONS, "--precision")):
        bad = [v for v in values if v not in known]
        if bad or not values:
            raise ValueError(f"{option} got {','.join(values) or 'nothing'}; expected one or more of {', '.join(known)}")
    return formats, precisions


def fit(formats=("tflite",), precisions=("int8",), threads: int = 1, minutes: float = 30.0,
        remote: str | None = None, seed: int = 0, configs: list[Config] | str = "zoo", exclude=(),
        min_time_s: float = 1.0, max_configs: int | None = None, target: str = "host",
        log: Callable[[str], None] = stderr) -> LatencyModel:
    """Measure and fit (see the module docstring); ValueError for bad arguments or too few measurements."""
    formats, precisions = check_choices(formats, precisions)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads got {threads!r}; expected a positive integer")
    if not minutes > 0:
        raise ValueError(f"--minutes got {minutes!r}; expected a positive number")
    if isinstance(configs, str):
        if configs not in GRIDS:
            raise ValueError(f"grid got {configs!r}; expected one of {', '.join(GRIDS)}")
        configs = GRIDS[configs]()
    pairs = [(f, p) for f in formats for p in precisions]
    order = sample(list(configs), seed, exclude)
    if max_configs is not None:
        order = order[:max_configs]
    measured: dict[str, list[Timing]] = {predictor_key(f, p): [] for f, p in pairs}
    deadline = time.monotonic() + 60 * minutes
    with tempfile.TemporaryDirectory(prefix="edgekit-latency-fit-") as tmp:
        timer = ReferenceTimer(formats, precisions, Path(tmp), target, threads, min_time_s, remote)
        first, versions = timer.describe_device()
        for i, config in enumerate(order):
            if time.monotonic() > deadline and min(len(v) for v in measured.values()) >= MIN_CONFIGS:
                log(f"latency fit: time budget of {minutes:g} min spent after {i} configuration(s)")
                break
            try:
                paths = export_config(config, formats, precisions, Path(tmp), target)
            except Exception as exc:  # a converter failing on one configuration costs only that one
                log(f"latency fit: skipped {config.key}: export failed: {first_line(exc)}")
                continue
            for pair, path in paths.items():
                timing = timer.time(config, path, pair)
                path.unlink(missing_ok=True)
                measured[predictor_key(*pair)].append(timing)
                log(f"latency fit: [{i + 1}/{len(order)}] {config.key} {'/'.join(pair)}: {timing.ms:.3f} ms "
                    f"(reference {timing.reference_ms:.3f} ms)")
    counts = {k: len(v) for k, v in measured.items()}
    if min(counts.values()) < MIN_CONFIGS:
        raise ValueError(f"only {min(counts.values()) if counts else 0} configuration(s) could be exported and "
                         f"measured; a fit needs at least {MIN_CONFIGS} (see the messages above)")
    predictors = {key: fit_timings(timings, key.split("/")[1], exclude, log) for key, timings in measured.items()}
    device = {"target": first.target, "cpu_model": first.cpu_model, "machine": first.machine, "cores": first.cores,
              "remote": remote}
    return LatencyModel(device, threads, predictors, versions, __version__,
                        _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def fit_timings(timings: list[Timing], precision: str, exclude=(), log: Callable[[str], None] = stderr) -> Predictor:
    """:func:`fit_samples` on the timings normalized to the reference's median speed; the
    predictor records the reference and each sample's raw and reference medians."""
    samples, reference = normalize(timings)
    spread = reference["max_ms"] / reference["min_ms"] - 1
    log(f"latency fit: the reference {reference['config']} ran at {reference['min_ms']:.3f}-{reference['max_ms']:.3f} ms "
        f"({100 * spread:.0f}% apart); timings normalized to its median, {reference['baseline_ms']:.3f} ms")
    predictor = fit_samples(samples, precision, exclude)
    predictor.reference = reference
    for record, t in zip(predictor.samples, timings):
        record.update(raw_ms=round(t.ms, 4), reference_ms=round(t.reference_ms, 4))
    return predictor


def fit_samples(samples: list[tuple[Config, float]], precision: str, exclude=()) -> Predictor:
    """The predictor of measured (configuration, median ms) samples at ``precision``."""
    kernel_lists = [config_kernels(c.arch, dict(c.overrides), c.input_size, precision) for c, _ in samples]
    measured = [ms for _, ms in samples]
    predictor = fit_kernels(kernel_lists, measured)
    fitted = [predictor.predict(predictor.features(k)).latency_ms for k in kernel_lists]
    predictor.fit_rmspe = round(rmspe(fitted, measured), 3)
    predictor.within_10pct = round(within(fitted, measured), 4)
    predictor.samples = [{**c.to_dict(), "measured_ms": round(ms, 4), "fitted_ms": round(f, 4)}
                         for (c, ms), f in zip(samples, fitted)]
    predictor.excluded = sorted(c.key if isinstance(c, Config) else str(c) for c in exclude)
    return predictor
