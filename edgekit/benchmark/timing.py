"""Latency of several model files measured together, interleaved, so that drift on a shared
machine (another job starting, the CPU clock moving) affects every file alike.

Each file is loaded once (:func:`load_for_timing`) and warmed up; then the files take turns
(round-robin, the starting file rotating each round), each turn a short block of calls of
about :data:`BLOCK_MS`. The first call of a block pays for caches the other models evicted
and is discarded when the block has more than one call. Each call is timed alone with
``time.perf_counter_ns`` around the engine's own call (as :mod:`edgekit.profile.latency`
does), and the statistics are those of :func:`edgekit.profile.latency.summarize`; the
benchmark reports their median.

ONNX Runtime sessions are created with intra-op (and inter-op) spinning off: by default its
worker threads spin for a while after each run, which would steal the CPU from whichever file
runs next (ONNX Runtime docs, "Thread management": ``session.intra_op.allow_spinning``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgekit.profile.latency import MAX_RUNS, MIN_RUNS, LatencyStats, TimingPlan, summarize
from edgekit.profile.runners import Loaded, input_arrays, load_file
from edgekit.runtime import Model

BLOCK_MS = 20.0  # one turn of a file: long enough to refill its caches, short enough to interleave
MAX_BLOCK = 50

Progress = Callable[[float], None]  # fraction of the timing done, 0..1


@dataclass
class Timed:
    stats: dict[str, LatencyStats] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # key -> one-line reason


def load_for_timing(path: Path, threads: int) -> tuple[Loaded, Model]:
    """A .tflite/.onnx/.ort file ready for one timed call at batch 1 (random inputs set once), and
    its :class:`edgekit.runtime.Model` (tensor types, metadata)."""
    if Path(path).suffix.lower() not in (".onnx", ".ort"):
        loaded = load_file(Path(path), threads, 1)
        return loaded, loaded.keep
    return _load_onnx(Path(path), threads)


def _load_onnx(path: Path, threads: int) -> tuple[Loaded, Model]:
    import onnxruntime as ort

    start = time.perf_counter_ns()
    model = Model(path, threads=1)  # the file checks and tensor descriptions; not the timed session
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    init_ms = (time.perf_counter_ns() - start) / 1e6
    arrays = input_arrays(model.inputs, 1)
    feeds = {info.name: a for info, a in zip(model.inputs, arrays)}
    loaded = Loaded(lambda: session.run(None, feeds), model.backend, init_ms, [a.shape for a in arrays], None,
                    feeds=feeds, keep=session)
    return loaded, model


def _call_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def interleaved(calls: dict[str, Callable[[], object]], plan: TimingPlan,
                progress: Progress | None = None) -> Timed:
    """Time every call in turn until each has ``plan.runs`` samples (or, without ``runs``, until
    ``plan.min_time_s`` per call has passed in all and each has :data:`MIN_RUNS`).

    A call that raises is dropped from the rotation with its one-line reason; the others go on.
    """
    result = Timed()
    blocks = _warm_up(calls, plan.warmup, result)
    samples: dict[str, list[float]] = {key: [] for key in blocks}
    budget_s = plan.min_time_s * max(len(blocks), 1)
    start, turn = time.perf_counter(), 0
    while samples:
        keys = list(samples)
        for key in keys[turn % len(keys):] + keys[:turn % len(keys)]:
            try:
                times = [_call_ms(calls[key]) for _ in range(blocks[key])]
            except Exception as exc:  # native runtimes raise anything
                result.errors[key] = f"timing failed: {_one_line(exc)}"
                del samples[key]
                continue
            samples[key].extend(times[1:] if len(times) > 1 else times)
        turn += 1
        done = _fraction(samples, plan, time.perf_counter() - start, budget_s)
        if progress is not None:
            progress(min(done, 1.0))
        if done >= 1.0:
            break
    for key, values in samples.items():
        result.stats[key] = summarize(values[:plan.runs] if plan.runs is not None else values)
    return result


def _warm_up(calls: dict[str, Callable[[], object]], warmup: int, result: Timed) -> dict[str, int]:
    """Run each call ``1 + warmup`` times; the fastest of them sizes its block of calls per turn."""
    blocks = {}
    for key, call in calls.items():
        try:
            fastest = min(_call_ms(call) for _ in range(1 + warmup))
        except Exception as exc:
            result.errors[key] = f"first run failed: {_one_line(exc)}"
            continue
        blocks[key] = int(min(MAX_BLOCK, max(1, round(BLOCK_MS / max(fastest, 1e-3)))))
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
