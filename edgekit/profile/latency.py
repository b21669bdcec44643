"""edgekit's one home for timing inference calls, in two modes.

- **Sequential** (:func:`measure`, ``edgekit profile``): one call, timed alone. The first call
  is reported on its own (it pays for lazy initialisation: delegate preparation, kernel
  selection, allocation); ``warmup`` further calls are discarded; then timed runs until a count
  or a time budget.
- **Interleaved** (:func:`interleaved`, ``edgekit benchmark``, the scripts in ``benchmarks/``):
  several calls measured together, so that drift on a shared machine (another job starting,
  the CPU clock moving) affects every one alike. Each call is warmed up, then the calls take
  turns (round-robin, the starting call rotating each turn), each turn a short block of calls
  of about :data:`BLOCK_MS`. The first call of a block pays for caches the other models evicted
  and is discarded when the block has more than one call.

In both modes (as TFLite's ``benchmark_model`` and onnxruntime's ``perf_test`` do) inputs are
set once and only the engine's own call is timed (``Interpreter.invoke``,
``InferenceSession.run``, Keras ``predict_on_batch``), each call alone, with
``time.perf_counter_ns``. The spread of the timed runs is summarised by its coefficient of
variation (std / mean): above :data:`CV_WARN` the machine was busy or the CPU frequency moved,
and the figures should not be compared with others (:func:`spread_warning`).

**Spinning** (one policy for both modes, recorded in the environment block of ``edgekit
profile`` and ``edgekit benchmark``, :func:`spinning_record`): files are loaded with
:func:`timing_settings`, whose onnxruntime workers spin during a run and stop when it returns
(:attr:`edgekit.runtime.Spinning.DURING_RUN`). Spinning inside a run keeps the workers ready
between the graph's operators, as onnxruntime's default does (an app loading the file with
default settings gets that); stopping when the run returns keeps idle workers from taking
the CPU from whatever runs next: the next file of an interleaved benchmark, or the app's own
work. LiteRT's XNNPACK thread pool spins as it was built; no setting changes it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgekit.messages import one_line
from edgekit.runtime.engines import EngineSettings, Spinning

CV_WARN = 0.10  # std / mean above which a measurement is flagged as too noisy to trust
MIN_RUNS = 10  # a time budget still times at least this many runs
MAX_RUNS = 100_000
BLOCK_MS = 100.0  # one turn of a call in interleaved mode: long enough to refill its caches, short enough to interleave
MAX_BLOCK = 50
SPINNING = Spinning.DURING_RUN  # the policy above

Progress = Callable[[float], None]  # fraction of the timing done, 0..1
Clock = Callable[[], int]  # nanoseconds: time.perf_counter_ns (wall), time.thread_time_ns (this thread's CPU)


def timing_settings(threads: int | None, spinning: Spinning = SPINNING) -> EngineSettings:
    """How every timed file is loaded: ``threads`` intra-op threads and the spinning policy
    (another ``spinning`` only for a benchmark that compares policies)."""
    return EngineSettings(threads=threads, spinning=spinning)


def spinning_record() -> dict:
    """The spinning policy, for a report's environment block."""
    return {"policy": SPINNING.value,
            "onnxruntime": ", ".join(f"{k}={v}" for k, v in SPINNING.config_entries().items()) or "its default",
            "litert": "XNNPACK's thread pool as built (not configurable)"}


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


def _call_ms(call: Callable[[], object], clock: Clock = time.perf_counter_ns) -> float:
    start = clock()
    call()
    return (clock() - start) / 1e6


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


@dataclass
class Timed:
    """What :func:`interleaved` measured: statistics per call key, and the keys that failed."""

    stats: dict[str, LatencyStats] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # key -> one-line reason
    turns: dict[str, list[float]] = field(default_factory=dict)  # mean ms of each turn's kept calls, in turn order


def interleaved(calls: dict[str, Callable[[], object]], plan: TimingPlan, progress: Progress | None = None,
                block: int | None = None, clock: Clock = time.perf_counter_ns) -> Timed:
    """Time every call in turn until each has ``plan.runs`` samples (or, without ``runs``, until
    ``plan.min_time_s`` per call has passed in all and each has :data:`MIN_RUNS`).

    ``block``: calls per turn (default: sized from each call's fastest warm-up run to about
    :data:`BLOCK_MS`); ``clock``: the nanosecond clock that times each call. A call that raises
    is dropped from the rotation with its one-line reason; the others go on.
    """
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise ValueError(f"block got {block!r}; expected None or a positive integer")
    result = Timed()
    blocks = _warm_up(calls, plan.warmup, result, block, clock)
    samples: dict[str, list[float]] = {key: [] for key in blocks}
    turns: dict[str, list[float]] = {key: [] for key in blocks}
    budget_s = plan.min_time_s * max(len(blocks), 1)
    start, turn = time.perf_counter(), 0
    while samples:
        keys = list(samples)
        for key in keys[turn % len(keys):] + keys[:turn % len(keys)]:
            try:
                times = [_call_ms(calls[key], clock) for _ in range(blocks[key])]
            except Exception as exc:  # native runtimes raise anything
                result.errors[key] = f"timing failed: {one_line(exc)}"
                del samples[key], turns[key]
                continue
            kept = times[1:] if len(times) > 1 else times
            samples[key].extend(kept)
            turns[key].append(sum(kept) / len(kept))
        turn += 1
        done = _fraction(samples, plan, time.perf_counter() - start, budget_s)
        if progress is not None:
            progress(min(done, 1.0))
        if done >= 1.0:
            break
    for key, values in samples.items():
        result.stats[key] = summarize(values[:plan.runs] if plan.runs is not None else values)
        result.turns[key] = turns[key]
    return result


def _warm_up(calls: dict[str, Callable[[], object]], warmup: int, result: Timed, block: int | None,
             clock: Clock) -> dict[str, int]:
    """Run each call ``1 + warmup`` times; the fastest of them sizes its block of calls per turn."""
    blocks = {}
    for key, call in calls.items():
        try:
            fastest = min(_call_ms(call, clock) for _ in range(1 + warmup))
        except Exception as exc:
            result.errors[key] = f"first run failed: {one_line(exc)}"
            continue
        blocks[key] = block or int(min(MAX_BLOCK, max(1, round(BLOCK_MS / max(fastest, 1e-3)))))
    return blocks


def _fraction(samples: dict[str, list[float]], plan: TimingPlan, elapsed: float, budget_s: float) -> float:
    if not samples:
        return 1.0
    fewest = min(len(v) for v in samples.values())
    if plan.runs is not None:
        return fewest / plan.runs
    if fewest >= MAX_RUNS:
        return 1.0
    return min(elapsed / budget_s, fewest / MIN_RUNS)
