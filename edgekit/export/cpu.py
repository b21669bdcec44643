"""The default ONNX int8 flavour for the CPU this export runs on, and why.

Measured on an x86 AVX2 CPU without VNNI (edgekit's reference laptop): QDQ with int8
activations ran 1.31x slower than fp32, QOperator with uint8 activations / int8 weights at
0.80x of fp32. Without VNNI, onnxruntime's x86 int8 GEMM kernels (u8s8 via vpmaddubsw) want
unsigned activations, and s8s8 falls back to slower paths. With VNNI (avx512_vnni / avx_vnni)
and on ARM (sdot/udot), QDQ + int8 is the format onnxruntime recommends and runs well.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from .options import ActivationType, OnnxQuantFormat

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


@dataclass(frozen=True)
class OnnxQuantChoice:
    quant_format: OnnxQuantFormat
    activation_type: ActivationType
    reason: str


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The x86 feature flags from /proc/cpuinfo (empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def default_onnx_quant(machine: str | None = None, flags: set[str] | None = None) -> OnnxQuantChoice:
    machine = (machine or platform.machine()).lower()
    flags = cpu_flags() if flags is None else flags
    if machine in ("x86_64", "amd64", "i386", "i686", "x86"):
        vnni = sorted(f for f in VNNI_FLAGS if f in flags)
        if not vnni:
            return OnnxQuantChoice(
                OnnxQuantFormat.QOPERATOR, ActivationType.UINT8,
                f"x86 CPU ({machine}) without VNNI: QOperator with uint8 activations ran at 0.80x of "
                "fp32 latency while QDQ int8/int8 ran 1.31x slower",
            )
        return OnnxQuantChoice(OnnxQuantFormat.QDQ, ActivationType.INT8,
                               f"x86 CPU with {', '.join(vnni)}: QDQ with int8 activations uses the VNNI kernels")
    return OnnxQuantChoice(OnnxQuantFormat.QDQ, ActivationType.INT8,
                           f"{machine} CPU: QDQ with int8 activations is onnxruntime's recommended ARM format")
