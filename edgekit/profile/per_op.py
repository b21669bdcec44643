"""Time per operator: measured by ONNX Runtime's profiler, estimated for LiteRT and Keras.

ONNX Runtime times every kernel of the optimized graph (:mod:`ort_profile`); one warm-up run
is dropped and the median over the rest is kept. The same profile reports the CPU arena it holds.
LiteRT's Python interpreter has no per-operator timer, so for .tflite (and Keras) the
measured mean latency is apportioned over the operators by their MACs: an estimate that
gives operators without MACs (pooling, adds, activations) no time at all, and says so.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from edgekit.messages import first_line

from .latency import timing_settings
from .static import StaticReport

ESTIMATE_METHOD = ("estimate: the measured mean latency apportioned by MACs ({why}); operators without MACs "
                   "show 0 ms")
_WHY = {"tflite": "LiteRT's Python API has no per-operator timer",
        "keras": "TensorFlow's per-layer times need its profiler, not run here"}


def estimated_per_op(static: StaticReport, mean_ms: float, kind: str) -> dict:
    total = static.macs
    method = ESTIMATE_METHOD.format(why=_WHY.get(kind, kind))
    if not total:
        return {"method": method + "; unavailable: the MACs are unknown", "estimated": True,
                "kernel_total_ms": None, "ops": []}
    ops = [{"name": op.name, "type": op.type, "macs": op.macs, "ms": round(mean_ms * op.macs / total, 6),
            "share": round(op.macs / total, 4)} for op in static.ops]
    return {"method": method, "estimated": True, "kernel_total_ms": round(mean_ms, 6), "ops": ops}


def onnx_arena_and_per_op(run, path: Path, feeds: dict, static: StaticReport, per_op_runs: int) -> None:
    """Fill ``run.memory.arena_*`` and, when ``per_op_runs`` > 0, ``run.per_op`` from a profiled session."""
    from .ort_profile import profile_runs

    try:
        events = profile_runs(path, feeds, 1 + per_op_runs, timing_settings(run.threads))
    except Exception as exc:  # ORT's own error types; the timing above already succeeded
        run.memory.arena_note = f"the profiled onnxruntime session failed: {first_line(exc)}"
        return
    held = [e.arena_held for e in events if e.arena_held is not None]
    run.memory.arena_bytes = max(held) if held else None
    run.memory.arena_note = ("bytes held by onnxruntime's CPU arena (profiler's mem_arena_held, largest over "
                             "the kernels of a run)" if held else
                             "this onnxruntime's profiler does not report mem_arena_held")
    if per_op_runs <= 0:
        return
    macs = {op.name: op.macs for op in static.ops}
    durations: dict[str, list[int]] = defaultdict(list)
    types: dict[str, str] = {}
    for e in events:
        if e.run >= 1:  # run 0 is the warm-up
            durations[e.name].append(e.dur_us)
            types[e.name] = e.op_type
    # The median over runs: one preempted kernel on a busy machine would dominate a mean.
    per_run = {name: statistics.median(d) / 1000 for name, d in durations.items()}
    total = sum(per_run.values())
    ops = [{"name": name, "type": types[name], "macs": macs.get(name), "ms": round(ms, 6),
            "share": round(ms / total, 4) if total else 0.0} for name, ms in per_run.items()]
    run.per_op = {"method": f"onnxruntime profiler: median kernel time over {per_op_runs} runs of the optimized "
                            "graph (fused nodes carry the first node's name; macs null where no file node "
                            "has that name)",
                  "estimated": False, "kernel_total_ms": round(total, 6), "ops": ops}
