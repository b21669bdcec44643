"""``scale``: enumerate a family's configurations by its scaling rule, keep those under the
budget, choose the largest, check the best few by measurement (and optionally a short proxy
training), and report every candidate.

A latency budget needs a latency model (``edgekit.latency``, fitted per device): candidates are
kept by predicted latency, then the best ``measure`` of them (most MACs first) are exported and
timed on this machine, in rounds of ``measure`` down the ranking until one measures within the
budget; when the best of those measures under :data:`STEP_UP_BELOW` of the budget, the model
was pessimistic, and larger configurations whose prediction, scaled by the measured/predicted
ratio, fits the budget are measured too (up to ``MAX_ROUNDS`` rounds up). MACs, parameter and
size budgets are exact or estimated from the counts alone: no conversion, no TensorFlow work
beyond building the graphs; ``measure`` > 0 adds measured latencies to the best few all the same.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from edgekit.devices import get_device, mismatch, resolve_host
from edgekit.messages import stderr
from edgekit.profile.latency import TimingPlan
from edgekit.tempfiles import atomic_write_bytes

from .budget import Budget, Metric, UnreachableBudget, human, mark_and_rank
from .candidates import BYTES_PER_WEIGHT, Candidate, count_configs
from .measure import MeasureSettings, measure
from .plot import pareto_png
from .proxy import ProxyRecipe, proxy_accuracy
from .rules import Family, Rule, get_family, parse_rule

SCHEMA = "edgekit.scale/1"
DEFAULT_MEASURE = 3  # finalists measured per round with a latency budget
MAX_ROUNDS = 3  # rounds of measurement before the predictions are declared too optimistic
# A finalist measured under this share of a latency budget: the latency model was pessimistic
# for this machine, so larger configurations predicted over the budget are measured too.
STEP_UP_BELOW = 0.85
FORMATS = ("tflite", "onnx")


def load_latency_model(path: str | Path):
    """``edgekit.latency.load_latency_model``, imported only when a latency budget asks for it."""
    try:
        from edgekit.latency import load_latency_model as load
    except ImportError:
        raise ValueError("--latency-model needs edgekit.latency (edgekit latency fit), which this install "
                         "lacks") from None
    return load(str(path))


@dataclass(frozen=True)
class ScaleOptions:
    family: str | Family  # a name of FAMILIES, or a Family with a grid of its own
    budget: Budget
    rule: Rule | str = Rule.COMPOUND
    precision: str = "int8"
    fmt: str = "tflite"
    target: str = "host"
    threads: int = 1
    measure: int | None = None  # finalists per round; None: DEFAULT_MEASURE with a latency budget, else 0
    num_classes: int = 1000
    latency_model: Any = None  # a path, or a loaded LatencyModel (predict_config, check)
    data: str | None = None  # proxy training data (and int8 calibration images)
    proxy: ProxyRecipe | None = None
    out: Path | None = None  # keep the exported candidates here, and scale.png
    plot: Path | None = None  # the Pareto PNG (default: OUT/scale.png with out, else none)
    timing: TimingPlan = TimingPlan(warmup=5, min_time_s=2.0)

    def __post_init__(self) -> None:
        get_family(self.family)
        object.__setattr__(self, "rule", parse_rule(self.rule))
        if self.precision not in BYTES_PER_WEIGHT:
            raise ValueError(f"--precision got {self.precision!r}; expected one of {', '.join(BYTES_PER_WEIGHT)}")
        if self.fmt not in FORMATS:
            raise ValueError(f"--format got {self.fmt!r}; expected one of {', '.join(FORMATS)}")
        latency = self.budget.metric is Metric.LATENCY_MS
        if latency and self.latency_model is None:
            raise ValueError("--max-latency-ms needs --latency-model FILE (fitted with 'edgekit latency fit')")
        if not latency and self.latency_model is not None:
            raise ValueError("--latency-model applies to --max-latency-ms only")
        if self.measure is not None and (isinstance(self.measure, bool) or not isinstance(self.measure, int)
                                         or self.measure < 0):
            raise ValueError(f"--measure got {self.measure!r}; expected an integer >= 0")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"--threads got {self.threads!r}; expected an integer >= 1")
        if self.proxy is not None and self.data is None:
            raise ValueError("--proxy-epochs needs --data DIR")
        get_device(self.target)

    @property
    def elsewhere(self) -> str | None:
        """Why measuring on this machine does not stand for --target (None when it does)."""
        return mismatch(get_device(self.target).name, resolve_host())

    @property
    def finalists(self) -> int:
        if self.measure is not None:
            return self.measure
        # The default measures on this machine only when it is the target.
        latency = self.budget.metric is Metric.LATENCY_MS
        return DEFAULT_MEASURE if latency and self.elsewhere is None else 0


@dataclass
class ScaleResult:
    options: ScaleOptions
    candidates: list[Candidate]
    chosen: Candidate
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        o = self.options
        chosen = {k: v for k, v in self.chosen.to_dict(o.data).items() if k not in ("under_budget", "notes")}
        family = get_family(o.family)
        return {"schema": SCHEMA, "family": family.name, "base_resolution": family.base_resolution,
                "rule": o.rule.value, "budget": o.budget.to_dict(),
                "precision": o.precision, "format": o.fmt, "target": get_device(o.target).name,
                "threads": o.threads, "chosen": chosen,
                "candidates": [c.to_dict(o.data) for c in self.candidates],
                "measured": sum(1 for c in self.candidates if c.measured_ms is not None),
                "plot": None if self.plot is None else str(self.plot), "notes": self.notes}


def scale(options: ScaleOptions, log: Callable[[str], None] = stderr) -> ScaleResult:
    """Choose a configuration of ``options.family`` under ``options.budget`` (module docstring).

    ValueError (one line) for bad options and for a budget nothing meets (UnreachableBudget,
    naming the smallest reachable configuration).
    """
    family = get_family(options.family)
    predictor = _predictor(options)
    configs = family.configs(options.rule)
    candidates = count_configs(configs, options.precision, options.num_classes)
    if predictor is not None:
        for c in candidates:
            c.predicted_ms = float(predictor.predict_config(c.arch, c.overrides, c.input_size,
                                                            fmt=options.fmt, precision=options.precision))
    ranked = mark_and_rank(family.name, candidates, options.budget)
    log(f"scale: {len(ranked)} of {len(candidates)} under {options.budget.metric.option} {options.budget.limit:g}; "
        f"largest {ranked[0].describe()} ({human(ranked[0].macs)} MACs)")
    with _workdir(options.out) as folder:
        finalists = _measured_finalists(family.name, ranked, options, folder, log)
        if options.budget.metric is Metric.LATENCY_MS and finalists[0].measured_ms is not None:
            finalists = _step_up(finalists, candidates, options, folder, log)
        chosen = _proxy_choice(finalists, options, folder, log) if options.proxy else finalists[0]
    result = ScaleResult(options, candidates, chosen)
    measured = any(c.measured_ms is not None for c in candidates)
    if options.elsewhere is not None and (predictor is not None or measured):
        result.notes.append(f"--target {options.target}: " + (
            options.elsewhere if options.finalists else "finalists not measured (this machine is not the target; "
            "--measure K measures them here all the same); chosen by predicted latency"))
    plot = options.plot or (options.out / "scale.png" if options.out is not None else None)
    if plot is not None:
        atomic_write_bytes(Path(plot), pareto_png(family.name, options.rule.value, candidates, chosen, options.budget))
        result.plot = Path(plot)
    return result


def _predictor(options: ScaleOptions):
    if options.budget.metric is not Metric.LATENCY_MS:
        return None
    model = options.latency_model
    if isinstance(model, (str, Path)):
        model = load_latency_model(model)
    model.check(get_device(options.target).name, options.fmt, options.precision)
    return model


@contextlib.contextmanager
def _workdir(out: Path | None) -> Iterator[Path]:
    """``out`` (made if missing), or a temporary folder removed afterwards."""
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        yield Path(out)
        return
    with tempfile.TemporaryDirectory(prefix="edgekit-scale-") as tmp:
        yield Path(tmp)


def _settings(options: ScaleOptions) -> MeasureSettings:
    return MeasureSettings(options.fmt, options.precision, options.target, options.threads, options.num_classes,
                           options.data, options.timing)


def _measured_finalists(family: str, ranked: list[Candidate], options: ScaleOptions, folder: Path,
                        log: Callable[[str], None]) -> list[Candidate]:
    """The candidates to choose among, best first: those measured within a latency budget,
    else the ``finalists`` best by prediction/count (measured when asked)."""
    k = options.finalists
    if k == 0:
        return ranked[:max(1, DEFAULT_MEASURE)]
    latency = options.budget.metric is Metric.LATENCY_MS
    settings = _settings(options)
    for start in range(0, min(len(ranked), k * MAX_ROUNDS), k):
        batch = ranked[start:start + k]
        measure(batch, folder, settings, log)
        if not latency:
            return batch
        fit = [c for c in batch if c.measured_ms <= options.budget.limit]
        for c in batch:
            if c not in fit:
                c.notes.append(f"measured {c.measured_ms:.2f} ms, over the budget (predicted {c.predicted_ms:.2f} ms)")
        if fit:
            return fit
    measured = [c for c in ranked if c.measured_ms is not None]
    fastest = min(measured, key=lambda c: c.measured_ms)
    raise UnreachableBudget(
        f"none of the {len(measured)} {family} configurations measured met {options.budget.metric.option} "
        f"{options.budget.limit:g} although predicted to (fastest: {fastest.describe()}, predicted "
        f"{fastest.predicted_ms:.2f} ms, measured {fastest.measured_ms:.2f} ms); the latency model is optimistic "
        "for this machine: refit it, or lower the budget")


def _step_up(fit: list[Candidate], candidates: list[Candidate], options: ScaleOptions, folder: Path,
             log: Callable[[str], None]) -> list[Candidate]:
    """``fit`` (measured within the latency budget) and any larger candidate measured within it
    after a pessimistic prediction, best (most MACs) first."""
    limit, k = options.budget.limit, max(1, options.finalists)
    fit = list(fit)
    for _ in range(MAX_ROUNDS):
        best = max(fit, key=lambda c: (c.macs, c.param_count))
        if best.measured_ms >= STEP_UP_BELOW * limit:
            break
        ratio = statistics.median(c.measured_ms / c.predicted_ms for c in candidates
                                  if c.measured_ms is not None and c.predicted_ms)
        larger = sorted((c for c in candidates if c.measured_ms is None and c.predicted_ms is not None
                         and c.macs > best.macs and c.predicted_ms * ratio <= limit),
                        key=lambda c: (-c.macs, -c.param_count))[:k]
        if not larger:
            break
        log(f"scale: {best.describe()} measured {best.measured_ms:.2f} ms, under {100 * STEP_UP_BELOW:.0f}% of the "
            f"budget (measured/predicted {ratio:.2f}): measuring {len(larger)} larger configuration(s)")
        measure(larger, folder, _settings(options), log)
        for c in larger:
            if c.measured_ms <= limit:
                c.under_budget = True
                c.notes.append(f"predicted {c.predicted_ms:.2f} ms, measured {c.measured_ms:.2f} ms: within the budget "
                               "(the latency model is pessimistic here)")
                fit.append(c)
            else:
                c.notes.append(f"measured {c.measured_ms:.2f} ms, over the budget (predicted {c.predicted_ms:.2f} ms)")
    return sorted(fit, key=lambda c: (-c.macs, -c.param_count))


def _proxy_choice(finalists: list[Candidate], options: ScaleOptions, folder: Path,
                  log: Callable[[str], None]) -> Candidate:
    """The finalist with the best proxy validation accuracy (ties: the one with more MACs)."""
    for i, c in enumerate(finalists):
        c.val_accuracy = proxy_accuracy(c, options.data, options.proxy, folder / f"proxy_{i}", log)
    return max(finalists, key=lambda c: (c.val_accuracy if c.val_accuracy is not None else -1.0, c.macs))


__all__ = ["SCHEMA", "ScaleOptions", "ScaleResult", "load_latency_model", "scale"]
