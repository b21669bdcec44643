"""Measure exported files side by side: static MACs and operator mix (``edgekit.profile``),
interleaved latency (:func:`edgekit.profile.runners.time_files`, files loaded as ``edgekit
profile`` loads them), and the int8-versus-fp32 verdict (:mod:`.diagnose`).

A row that cannot be loaded or run is marked failed with its reason; the other rows go on.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Callable

from edgekit.devices import VNNI_FLAGS, X86_MACHINES, cpu_flags
from edgekit.messages import one_line, stderr
from edgekit.profile.env import allowed_cpus, environment, runtime_version
from edgekit.profile.latency import Progress, TimingPlan
from edgekit.profile.runners import Loaded, time_files
from edgekit.profile.static import StaticReport, read_static

from .diagnose import Int8Facts, Pair, RunSettings, int8_verdict
from .report import BenchmarkRow


def measure_rows(rows: list[BenchmarkRow], threads: int, timing: TimingPlan,
                 log: Callable[[str], None] = stderr, progress: Progress | None = None) -> tuple[list[str], dict]:
    """Fill in MACs, float-op counts, latency and notes of the ``ok`` rows, in place.

    Returns (notes: one line per int8 verdict, environment as ``edgekit profile`` records it).
    """
    facts: dict[str, Int8Facts] = {}
    by_key = {row.key: row for row in rows if row.ok}
    statics = {key: _static(row) for key, row in by_key.items()}

    def loaded(key: str, file: Loaded) -> None:
        by_key[key].backend = file.backend
        if by_key[key].precision == "int8":
            facts[key] = _facts(file.model, statics[key])

    log(f"benchmark: timing {len(by_key)} file(s) interleaved, {threads} thread(s), {timing.describe()} each")
    timed = time_files({key: Path(row.path) for key, row in by_key.items()}, threads, timing, progress, loaded)
    for key, row in by_key.items():
        if key in timed.errors:
            row.fail(timed.errors[key])
        elif key in timed.stats:
            row.latency = timed.stats[key]
    settings = run_settings(threads)
    notes = int8_notes(rows, facts, settings)
    backends = sorted({r.backend for r in rows if r.backend})
    env = environment(backends[0] if backends else "litert", None)
    env.pop("runtime", None), env.pop("runtime_version", None)
    env["runtimes"] = {b: runtime_version(b) for b in backends}
    return notes, env


def _static(row: BenchmarkRow) -> StaticReport | None:
    try:
        static = read_static(row.path, row.format)
    except Exception as exc:  # MACs are a column, not a reason to drop the row
        row.note = f"MACs unknown: {one_line(exc)}"
        return None
    row.macs = static.macs
    row.float_ops = sum(1 for op in static.ops if op.precision in ("float", "hybrid"))
    return static


# Operators that only move or relabel data: left in float they cost next to nothing, so they
# are not offered as a reason for a slow int8 file.
_DATA_MOVEMENT = {"reshape", "squeeze", "unsqueeze", "flatten", "shape", "identity", "expand_dims"}


def _facts(model, static: StaticReport | None) -> Int8Facts:
    # A float input costs a quantization per call; a float output is what the float head
    # computes anyway (its softmax runs in float), so it is no sign of a slow file.
    float_io = any(t.dtype.kind == "f" for t in model.inputs)
    export = (model.metadata.extra or {}).get("export", {}) if model.metadata is not None else {}
    onnx_quant = f"{export['quant_format']} {export['activation_type']}" \
        if model.format in ("onnx", "ort") and {"quant_format", "activation_type"} <= set(export) else None
    if static is None:
        return Int8Facts(float_io, 0, onnx_quant=onnx_quant)
    share = static.int8_mac_share()
    return Int8Facts(float_io, len(static.ops),
                     tuple(op.type for op in static.ops
                           if op.precision in ("float", "hybrid") and op.type.lower() not in _DATA_MOVEMENT),
                     None if share is None else round(1 - share, 4), onnx_quant)


def run_settings(threads: int) -> RunSettings:
    cpus = allowed_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    vnni = None
    if platform.machine().lower() in X86_MACHINES:
        vnni = any(flag in cpu_flags() for flag in VNNI_FLAGS)
    return RunSettings(threads, len(cpus) if cpus else os.cpu_count(), load, vnni)


def int8_notes(rows: list[BenchmarkRow], facts: dict[str, Int8Facts], settings: RunSettings) -> list[str]:
    """For each format with timed fp32 and int8 rows: the verdict when int8 is not faster,
    also written into the int8 row's note."""
    by_key = {r.key: r for r in rows}
    notes = []
    for fmt in dict.fromkeys(r.format for r in rows):
        fp32, int8 = by_key.get(f"{fmt}/fp32"), by_key.get(f"{fmt}/int8")
        if not (fp32 and int8 and fp32.latency and int8.latency and int8.key in facts):
            continue
        pair = Pair(fmt, fp32.latency.p50, int8.latency.p50, facts[int8.key], int8.macs or fp32.macs)
        verdict = int8_verdict(pair, settings)
        if verdict:
            int8.note = f"{int8.note}; {verdict}" if int8.note else verdict
            notes.append(verdict)
    return notes
