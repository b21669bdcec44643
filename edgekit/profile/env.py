"""Where and how a measurement was taken: CPU, cores, CPU affinity, OS, runtime and edgekit
versions, and the engines' thread spinning policy (:func:`edgekit.profile.latency.spinning_record`).

A latency figure means little without these, so every profile records them. The CPU name
comes from ``/proc/cpuinfo`` (``model name`` on x86, ``Model``/``Hardware`` on ARM boards)
or ``/proc/device-tree/model`` (Raspberry Pi), else from :mod:`platform`.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from edgekit import __version__

from .latency import spinning_record

# backend name (edgekit.runtime) -> the distribution that ships it
_DISTRIBUTIONS = {"litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow",
                  "onnxruntime": "onnxruntime", "keras": "keras"}


def cpu_model() -> str:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if fields.get(key):
            return fields[key]
    try:
        with open("/proc/device-tree/model") as f:
            return f.read().strip("\x00\n ")
    except OSError:
        return platform.processor() or platform.machine() or "unknown"


def allowed_cpus() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def runtime_version(backend: str) -> str | None:
    names = [_DISTRIBUTIONS.get(backend, backend)]
    if backend == "onnxruntime":
        names += ["onnxruntime-gpu", "onnxruntime-openvino"]
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    module = sys.modules.get({"litert": "ai_edge_litert"}.get(backend, backend))
    return getattr(module, "__version__", None)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def environment(backend: str, pinned: list[int] | None) -> dict:
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpus_allowed": allowed_cpus(),
        "cpus_pinned": pinned,
        "load_average": load_average(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "python": platform.python_version(),
        "runtime": backend,
        "runtime_version": runtime_version(backend),
        "edgekit_version": __version__,
        "numpy_version": metadata.version("numpy"),
        "spinning": spinning_record(),
    }
