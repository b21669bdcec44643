"""Timing one inference call: first call, warm-up, then timed runs until a count or a time budget.

Method (as TFLite's ``benchmark_model`` and onnxruntime's ``perf_test`` do): inputs are set
once, only the engine's own call is timed (``Interpreter.invoke``, ``InferenceSession.run``,
Keras ``predict_on_batch``) with ``time.perf_counter_ns``; the first call is reported on its
own (it pays for lazy initialisation: delegate preparation, kernel selection, allocation);
``warmup`` further calls are discarded. The spread of the timed runs is summarised by its
coefficient of variation (std / mean): above :data:`CV_WARN` the machine was busy or the CPU
frequency moved, and the figures should not be compared with others.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

CV_WARN = 0.10  # std / mean above which a measurement is flagged as too noisy to trust
MIN_RUNS = 10  # a time budget still times at least this many runs
MAX_RUNS = 100_000


@dataclass(frozen=True)
class TimingPlan:
    """How many runs to time: exactly ``runs``, or as many as fit in ``min_time_s``."""

    warmup: int = 5
    runs: int | None = None
    min_time_s: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup got {self.warmup!r}; expected an integer >= 0")
        if self.runs is not None and (isinstance(self.runs, bool) or not isinstance(self.runs, int) or self.runs < 1):
            raise ValueError(f"runs got {self.runs!r}; expected a positive integer")
        if not (isinstance(self.min_time_s, (int, float)) and math.isfinite(self.min_time_s) and self.min_time_s > 0):
            raise ValueError(f"min_time got {self.min_time_s!r}; expected a positive number of seconds")

    def describe(self) -> str:
        return f"{self.runs} runs" if self.runs is not None else \
            f"at least {self.min_time_s:g} s and {MIN_RUNS} runs"


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call over the timed runs."""

    runs: int
    total_s: float
    min: float
    max: float
    mean: float
    std: float
    p50: float
    p90: float
    p99: float

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean > 0 else 0.0

    def to_dict(self) -> dict:
        r = lambda v: round(v, 6)  # noqa: E731  (nanoseconds: the timer's resolution)
        return {"min": r(self.min), "mean": r(self.mean), "std": r(self.std), "p50": r(self.p50),
                "p90": r(self.p90), "p99": r(self.p99), "max": r(self.max), "cv": round(self.cv, 4),
                "runs": self.runs, "total_s": round(self.total_s, 4)}


def summarize(samples_ms) -> LatencyStats:
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no timed runs to summarise")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return LatencyStats(int(x.size), float(x.sum()) / 1000, float(x.min()), float(x.max()), float(x.mean()),
                        float(x.std(ddof=1)) if x.size > 1 else 0.0, float(p50), float(p90), float(p99))


def _call_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def measure(call: Callable[[], object], plan: TimingPlan) -> tuple[float, LatencyStats]:
    """(first call in ms, statistics of the timed runs) of ``call``."""
    first = _call_ms(call)
    for _ in range(plan.warmup):
        call()
    samples: list[float] = []
    timed_ms, want_ms = 0.0, 1000 * plan.min_time_s
    while True:
        samples.append(_call_ms(call))
        timed_ms += samples[-1]
        if plan.runs is not None:
            if len(samples) >= plan.runs:
                break
        # min_time_s counts the timed calls themselves (what total_s reports), not the loop's
        # own overhead between them.
        elif (len(samples) >= MIN_RUNS and timed_ms >= want_ms) or len(samples) >= MAX_RUNS:
            break
    return first, summarize(samples)


def spread_warning(stats: LatencyStats, pinned: bool, cpus: list[int] | None = None) -> str | None:
    """A warning when the runs vary too much to trust (None when they do not); ``cpus`` are
    the CPUs this process may use, for an example ``--cpus`` value."""
    if stats.runs < 2 or stats.cv <= CV_WARN:
        return None
    example = f" (e.g. --cpus {cpus[-1]})" if cpus else ""
    advice = ("other work shares these CPUs; stop it or pick idle ones with --cpus" if pinned else
              f"pin the process to idle cores with --cpus{example} and stop other work")
    return (f"latency varies too much to trust: CV {100 * stats.cv:.0f}% (std {stats.std:.3f} ms over "
            f"mean {stats.mean:.3f} ms; above {100 * CV_WARN:.0f}%); {advice}")
