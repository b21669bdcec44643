"""The default ONNX int8 flavour for the CPU this export runs on, and why.

onnxruntime's x86 int8 kernels (MLAS) are built around uint8 activations times int8 weights:
that is what AVX2's vpmaddubsw and VNNI's vpdpbusd (avx512_vnni / avx_vnni) multiply. With
int8 activations, QOperator QLinearConv falls back to a slow s8s8 path and a QDQ graph is
only partly fused (some Conv/Add stay float between QuantizeLinear/DequantizeLinear pairs).
With uint8 activations QDQ and QOperator files become the same QLinearConv graph inside
onnxruntime; QOperator is the smaller file and the form measured fastest on both CPUs below.

Measured (MobileNetV2, batch 1, 1 thread, latency relative to the fp32 ONNX file):
- x86 AVX2 without VNNI (edgekit's reference laptop): QOperator uint8 0.80x, QDQ int8 1.31x.
- x86 with AVX-512 VNNI (benchmarks/results/export_latency_mnv2_224.md, MobileNetV2 1.0/224):
  QOperator uint8 and QDQ uint8 about 0.55x, QDQ int8 0.9x, QOperator int8 4-5x.
On ARM (sdot/udot) onnxruntime recommends QDQ with int8 activations; not measured here.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from .options import ActivationType, OnnxQuantFormat

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")


@dataclass(frozen=True)
class OnnxQuantChoice:
    quant_format: OnnxQuantFormat
    activation_type: ActivationType
    reason: str
    # 7-bit weights: without VNNI, AVX2's vpmaddubsw adds two uint8 x int8 products into a
    # saturating int16, which full-range weights overflow (onnxruntime's quantization guide).
    reduce_range: bool = False


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
    if machine in X86_MACHINES:
        vnni = sorted(f for f in VNNI_FLAGS if f in flags)
        if vnni:
            measured = (f"x86 CPU with {', '.join(vnni)}: VNNI multiplies uint8 activations by int8 weights; "
                        "on MobileNetV2 1.0/224 QOperator uint8 ran at about 0.55x of fp32 latency, QDQ int8 "
                        "at 0.9x (partly left float) and QOperator int8 4-5x slower")
            return OnnxQuantChoice(OnnxQuantFormat.QOPERATOR, ActivationType.UINT8,
                                   f"QOperator, uint8 activations: {measured}")
        measured = (f"x86 CPU ({machine}) without VNNI: QOperator with uint8 activations ran at 0.80x of "
                    "fp32 latency while QDQ int8/int8 ran 1.31x slower; 7-bit weights (reduce_range) because "
                    "AVX2's uint8 x int8 multiply-add saturates 16-bit sums with full-range weights")
        return OnnxQuantChoice(OnnxQuantFormat.QOPERATOR, ActivationType.UINT8,
                               f"QOperator, uint8 activations: {measured}", reduce_range=True)
    return OnnxQuantChoice(OnnxQuantFormat.QDQ, ActivationType.INT8,
                           f"QDQ, int8 activations: {machine} CPU, onnxruntime's recommended ARM format")
