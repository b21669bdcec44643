"""Reading ONNX Runtime's profiler output (``SessionOptions.enable_profiling``).

The profiler writes a Chrome-trace JSON list of events
(https://onnxruntime.ai/docs/performance/tune-performance/profiling-tools.html). Events with
``cat == "Node"`` and a name ending in ``_kernel_time`` time one kernel call; their ``args``
carry ``op_name``, ``node_index``, ``input_type_shape`` / ``output_type_shape`` (lists of
``{dtype: dims}``) and, in recent versions, ``mem_arena_held`` (bytes held by the CPU arena).
``cat == "Session"`` events named ``model_run`` bracket each ``run`` call.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgekit.runtime.engines import EngineSettings, onnx_session

_ORT_DTYPES = {"float": "float32", "double": "float64", "float16": "float16", "bool": "bool"}


@dataclass(frozen=True)
class KernelEvent:
    run: int  # index of the session.run call it belongs to (0 = first)
    node_index: int | None
    name: str  # node name (as in the optimized graph, for an optimized session)
    op_type: str
    dur_us: int
    inputs: tuple[tuple[str, tuple[int, ...]], ...]  # (dtype, dims) per input
    outputs: tuple[tuple[str, tuple[int, ...]], ...]
    arena_held: int | None


def _type_shapes(items) -> tuple[tuple[str, tuple[int, ...]], ...]:
    out = []
    for item in items or ():
        for dtype, dims in dict(item).items():
            out.append((_ORT_DTYPES.get(dtype, dtype), tuple(int(d) for d in dims)))
    return tuple(out)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_events(events: list) -> list[KernelEvent]:
    """Kernel events of a profile, each tagged with the run it belongs to."""
    runs = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    kernels = []
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        run = next((i for i, (start, end) in enumerate(runs) if start <= e["ts"] <= end), -1)
        kernels.append(KernelEvent(run, _int(args.get("node_index")), e["name"][: -len("_kernel_time")],
                                   str(args.get("op_name", "")), int(e.get("dur", 0)),
                                   _type_shapes(args.get("input_type_shape")),
                                   _type_shapes(args.get("output_type_shape")),
                                   _int(args.get("mem_arena_held"))))
    return kernels


def profile_runs(path: Path, feeds: dict[str, np.ndarray], runs: int, settings: EngineSettings) -> list[KernelEvent]:
    """Run ``path`` ``runs`` times in a session built with ``settings`` plus onnxruntime's
    profiler (and its warnings silenced: unused initializers and the like are not the user's
    business here), and return its kernel events."""
    with tempfile.TemporaryDirectory(prefix="edgekit-ort-profile-") as tmp:
        session = onnx_session(path, replace(settings, quiet=True, profile_prefix=os.path.join(tmp, "profile")))
        for _ in range(runs):
            session.run(None, feeds)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    return parse_events(events)
