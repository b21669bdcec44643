"""``profile_model``: static figures, then latency and memory at each thread count, per-op times.

JSON schema ``edgekit.profile/1`` (what ``to_dict`` returns and ``edgekit profile --json`` prints):

- the file: ``model``, ``format``, ``size_bytes``, ``params``, ``macs`` (batch 1; null when
  shapes are unknown), ``op_count``, ``ops`` (count by type), ``op_share`` (fraction of
  operators per precision: int8 / hybrid / float / convert / other), ``int8_mac_share``,
  ``shape_source``, ``static_notes``;
- the measurement: ``batch``, ``warmup``, ``timing`` (the run-count rule), and ``runs``: one
  record per thread count, in the order given, each with ``threads``, ``backend``,
  ``xnnpack`` (null where not applicable), ``init_ms``, ``first_inference_ms``,
  ``latency_ms`` {min, mean, std, p50, p90, p99, max, cv, runs, total_s}, ``fps``
  (``batch`` x 1000 / mean), ``memory`` {rss_before_load_bytes, rss_after_load_bytes,
  peak_rss_after_load_bytes, peak_rss_bytes, peak_source, arena_bytes, arena_note},
  ``per_op`` (null without ``per_op``; else {method, estimated, kernel_total_ms, ops: [{name,
  type, macs, ms, share}]}) and ``warnings``;
- ``latency_ms``, ``fps``, ``init_ms``, ``first_inference_ms`` and ``memory`` at the top level
  repeat the first record's, so that a single-thread-count profile reads flat;
- ``environment`` (CPU, cores, affinity, load average, OS, arch, runtime and versions, the
  thread spinning policy ``spinning``, see :mod:`.latency`);
- ``target``: {``file``: the device target the file's metadata says it was made for (null when
  it records none), ``measuring``: this machine's target (:func:`edgekit.devices.resolve_host`)},
  and ``target_mismatch``: why those differ, or null (also the first of ``warnings``);
- ``warnings`` (the target mismatch, then all records' warnings, each prefixed with its thread count).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgekit.devices import mismatch, resolve_host
from edgekit.messages import stderr
from edgekit.runtime.errors import RuntimeModelError
from edgekit.runtime.files import model_format, open_model_file
from edgekit.runtime.metadata import read_metadata

from . import latency
from .env import allowed_cpus, environment
from .latency import LatencyStats, TimingPlan
from .memory import MemoryRecord
from .runners import Loaded, import_runtime, load_file
from .static import StaticReport, read_static

SCHEMA = "edgekit.profile/1"
PER_OP_RUNS = 10  # profiled runs (after one warm-up) for onnxruntime's per-op times
_TFLITE_ARENA_NOTE = "LiteRT's Python API does not report the size of its tensor arena"


@dataclass(frozen=True)
class ProfileOptions:
    threads: tuple[int, ...] = (1,)
    timing: TimingPlan = field(default_factory=TimingPlan)
    batch: int = 1
    per_op: bool = False
    cpus: tuple[int, ...] | None = None  # pin the process to these CPUs (Linux)

    def __post_init__(self) -> None:
        if not self.threads or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in self.threads):
            raise ValueError(f"threads got {self.threads!r}; expected one or more positive integers")
        if len(set(self.threads)) != len(self.threads):
            raise ValueError(f"threads got {self.threads!r}; each thread count once")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch got {self.batch!r}; expected a positive integer")
        if self.cpus is not None and (not self.cpus or any(not isinstance(c, int) or c < 0 for c in self.cpus)):
            raise ValueError(f"cpus got {self.cpus!r}; expected CPU numbers >= 0")


@dataclass
class ThreadRun:
    threads: int
    backend: str
    xnnpack: bool | None
    init_ms: float
    first_ms: float
    stats: LatencyStats
    batch: int
    memory: MemoryRecord
    per_op: dict | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.batch * 1000.0 / self.stats.mean if self.stats.mean > 0 else 0.0

    def to_dict(self) -> dict:
        return {"threads": self.threads, "backend": self.backend, "xnnpack": self.xnnpack,
                "init_ms": round(self.init_ms, 3), "first_inference_ms": round(self.first_ms, 3),
                "latency_ms": self.stats.to_dict(), "fps": round(self.fps, 2), "memory": self.memory.to_dict(),
                "per_op": self.per_op, "warnings": self.warnings}


@dataclass
class ProfileReport:
    model: str
    static: StaticReport
    options: ProfileOptions
    runs: list[ThreadRun]
    environment: dict
    target: dict = field(default_factory=dict)  # {"file", "measuring", "mismatch"}: see target_check

    @property
    def warnings(self) -> list[str]:
        mismatched = [self.target["mismatch"]] if self.target.get("mismatch") else []
        return mismatched + [f"{r.threads} thread(s): {w}" for r in self.runs for w in r.warnings]

    def to_dict(self) -> dict:
        runs = [r.to_dict() for r in self.runs]
        first = runs[0]
        return {"schema": SCHEMA, "model": self.model, **self.static.to_dict(),
                "batch": self.options.batch, "warmup": self.options.timing.warmup,
                "timing": self.options.timing.describe(),
                **{k: first[k] for k in ("latency_ms", "fps", "init_ms", "first_inference_ms", "memory")},
                "runs": runs, "environment": self.environment,
                "target": {k: self.target.get(k) for k in ("file", "measuring")},
                "target_mismatch": self.target.get("mismatch"), "warnings": self.warnings}


def model_kind(path: Path) -> str:
    """'tflite', 'onnx', 'ort' or 'keras' (a .keras file or a run folder); ValueError otherwise."""
    if path.is_dir() or path.suffix.lower() == ".keras":
        return "keras"
    try:
        return model_format(path)
    except ValueError:
        raise ValueError(f"MODEL got {str(path)!r}; expected a .tflite, .onnx, .ort or .keras file or a run folder") from None


def target_check(path: Path, kind: str) -> dict:
    """The target the file was made for (its edgekit metadata), this machine's, and why they
    differ (None when they do not, or when the file records no target)."""
    measuring = resolve_host()
    made_for = None
    if kind != "keras":
        try:
            meta = read_metadata(path)
        except RuntimeModelError:  # loading the file reports it; a profile needs no metadata
            meta = None
        made_for = meta.target if meta is not None else None
    return {"file": made_for, "measuring": measuring.name, "mismatch": mismatch(made_for, measuring)}


def pin_cpus(cpus: tuple[int, ...]) -> None:
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("--cpus needs Linux (os.sched_setaffinity)")
    try:
        os.sched_setaffinity(0, set(cpus))
    except OSError as exc:
        raise ValueError(f"--cpus got {','.join(map(str, cpus))}; cannot pin to them: {exc.strerror} "
                         f"(this machine allows {sorted(os.sched_getaffinity(0))})") from None


def profile_model(path: str | os.PathLike, options: ProfileOptions = ProfileOptions(),
                  log: Callable[[str], None] = stderr) -> ProfileReport:
    """Profile ``path`` as ``options`` asks. ValueError (RuntimeModelError) for bad input."""
    path = Path(path)
    kind = model_kind(path)
    if kind == "keras" and len(options.threads) > 1:
        raise ValueError("a Keras model takes one --threads value per process (TensorFlow fixes it at start-up)")
    if kind != "keras":
        open_model_file(path)  # one-line errors for missing, empty, foreign or truncated files
    if options.cpus is not None:
        pin_cpus(options.cpus)
    static = read_static(path, kind) if kind != "keras" else None
    runs = []
    for threads in options.threads:
        run, static = _profile_threads(path, kind, threads, options, static, log)
        runs.append(run)
    report = ProfileReport(str(path), static, options, runs,
                           environment(runs[0].backend, list(options.cpus) if options.cpus else None),
                           target_check(path, kind))
    _check_threads(report)
    return report


def _profile_threads(path: Path, kind: str, threads: int, options: ProfileOptions,
                     static: StaticReport | None, log) -> tuple[ThreadRun, StaticReport]:
    import_runtime(kind)
    memory = MemoryRecord()
    memory.start()
    notes: list[str] = []
    if kind == "keras":
        from .keras_profile import load_keras

        loaded, static, notes = load_keras(path, threads, options.batch)
    else:
        loaded = load_file(path, threads, options.batch)
    memory.loaded()
    log(f"profile: {path.name} on {loaded.backend}, {threads} thread(s), batch {options.batch}, "
        f"{options.timing.describe()}")
    first, stats = latency.measure(loaded.call, options.timing)
    memory.finished()
    run = ThreadRun(threads, loaded.backend, loaded.xnnpack, loaded.init_ms, first, stats, options.batch,
                    memory, warnings=notes)
    _arena_and_per_op(run, path, kind, loaded, static, options)
    warning = latency.spread_warning(stats, pinned=options.cpus is not None, cpus=allowed_cpus())
    if warning:
        run.warnings.append(warning)
    del loaded
    gc.collect()
    return run, static


def _arena_and_per_op(run: ThreadRun, path: Path, kind: str, loaded: Loaded, static: StaticReport,
                      options: ProfileOptions) -> None:
    if kind in ("onnx", "ort"):
        from .per_op import onnx_arena_and_per_op

        onnx_arena_and_per_op(run, path, loaded.feeds, static, PER_OP_RUNS if options.per_op else 0)
        return
    run.memory.arena_note = _TFLITE_ARENA_NOTE if kind == "tflite" else \
        "TensorFlow does not report a tensor arena for a Keras model"
    if options.per_op:
        from .per_op import estimated_per_op

        run.per_op = estimated_per_op(static, run.stats.mean, kind)


def _check_threads(report: ProfileReport) -> None:
    available = report.environment.get("cpus_allowed") or []
    for run in report.runs:
        if available and run.threads > len(available):
            run.warnings.append(f"{run.threads} threads on {len(available)} available CPU(s): "
                                "threads will compete for cores")
