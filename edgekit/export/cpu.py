"""The default ONNX int8 flavour for the CPU this export runs on, and why: the ``host`` row of
the device targets (:mod:`edgekit.devices`, where the choices and their measurements live).

``edgekit export --target`` picks another row; this is what ``--target host`` (the default) gives.
"""

from __future__ import annotations

from edgekit.devices import VNNI_FLAGS, X86_MACHINES, OnnxQuantChoice, cpu_flags, resolve_host

# The CPU probes lived here before edgekit.devices; scripts and benchmarks still import them from here.
__all__ = ["VNNI_FLAGS", "X86_MACHINES", "OnnxQuantChoice", "cpu_flags", "default_onnx_quant"]


def default_onnx_quant(machine: str | None = None, flags: set[str] | None = None) -> OnnxQuantChoice:
    """The ONNX int8 choice of the ``host`` target (``machine`` and ``flags``: this machine's by default)."""
    return resolve_host(machine, flags).onnx_int8
