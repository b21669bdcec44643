"""Device targets as data: what a file exported for a device should be, looked up by name.

One frozen :class:`DeviceTarget` per device (``list_devices()``, ``get_device(name)``): its CPU,
cores and default threads, the ONNX int8 flavour onnxruntime runs fastest there, and the TFLite
options. ``host`` is not a row of its own: it resolves to the row of the CPU this process runs
on (``resolve_host``), with this machine's cores. ``edgekit export --target`` picks the ONNX int8
flavour from the target and records the target in the file's metadata; ``edgekit profile`` and
``benchmark`` warn when a file made for one target is measured on another.

The ONNX int8 choices follow onnxruntime's quantization guide
(https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html, "Data type
selection" and the FAQ on reduce_range): QDQ with int8 activations and int8 weights (S8S8) is
its default and first choice, and the ARM64 kernels use it directly (sdot where the core has the
dot product); on x86-64, MLAS's int8 kernels multiply uint8 activations by int8 weights (U8S8):
AVX2's ``vpmaddubsw`` adds pairs of products into a saturating int16, so without VNNI the
weights are quantized to 7 bits (``reduce_range``); VNNI's ``vpdpbusd`` accumulates in int32
and needs no reduced range. With uint8 activations onnxruntime makes the same QLinearConv graph
of a QDQ and a QOperator file; QOperator is the smaller file and was measured fastest on x86
(MobileNetV2, batch 1, 1 thread, latency relative to the fp32 ONNX file):

- x86 AVX2 without VNNI (edgekit's reference laptop): QOperator uint8 0.80x, QDQ int8 1.31x.
- x86 with AVX-512 VNNI (benchmarks/results/export_latency_mnv2_224.md, MobileNetV2 1.0/224):
  QOperator uint8 and QDQ uint8 about 0.55x, QDQ int8 0.9x, QOperator int8 4-5x.

ARM rows are onnxruntime's recommendation, not measured here. Standard library only: the
runtime reads a file's target and compares it with ``host`` without importing anything above it.
"""

from __future__ import annotations

import difflib
import os
import platform
import sys
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

HOST = "host"
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")
ARM64_MACHINES = ("aarch64", "arm64", "armv8l", "armv8b")
# /proc/cpuinfo "CPU part" of ARM's cores (implementer 0x41) -> the board row it identifies.
_BOARD_PARTS = {"0xd08": "raspberry-pi-4", "0xd0b": "raspberry-pi-5"}  # Cortex-A72, Cortex-A76


class OnnxQuantFormat(str, Enum):
    QDQ = "qdq"  # QuantizeLinear/DequantizeLinear pairs around float ops
    QOPERATOR = "qoperator"  # QLinearConv/QLinearMatMul operators


class ActivationType(str, Enum):
    """An 8-bit integer type: of activations, and (``OnnxQuantChoice.weight_type``) of weights."""

    UINT8 = "uint8"
    INT8 = "int8"


@dataclass(frozen=True)
class OnnxQuantChoice:
    """The ONNX int8 flavour of a target, and why."""

    quant_format: OnnxQuantFormat
    activation_type: ActivationType
    reason: str
    # 7-bit weights: without VNNI, AVX2's vpmaddubsw adds two uint8 x int8 products into a
    # saturating int16, which full-range weights overflow (onnxruntime's quantization guide).
    reduce_range: bool = False
    weight_type: ActivationType = ActivationType.INT8

    def to_dict(self) -> dict:
        return {"quant_format": self.quant_format.value, "activation_type": self.activation_type.value,
                "weight_type": self.weight_type.value, "reduce_range": self.reduce_range, "reason": self.reason}


@dataclass(frozen=True)
class TfliteOptions:
    """How a .tflite file is run on the target (LiteRT's CPU path)."""

    xnnpack: bool = True  # XNNPACK delegate: LiteRT's default CPU kernels for float and int8
    threads: int | None = None  # None: as many as the machine's cores

    def to_dict(self) -> dict:
        return {"xnnpack": self.xnnpack, "threads": self.threads}


@dataclass(frozen=True)
class DeviceTarget:
    name: str
    arch: str  # the machine as platform.machine() names it on the device: x86_64, aarch64
    cpu: str
    onnx_int8: OnnxQuantChoice
    cores: int | None = None  # None: varies between devices of this kind
    threads: int | None = None  # default inference threads; None: all the cores of the machine
    dot_product: bool | None = None  # int8 dot-product instructions (ARM sdot/udot, x86 VNNI); None: varies
    tflite: TfliteOptions = field(default_factory=TfliteOptions)
    generic: bool = False  # stands for every device of its arch: any of them may measure its files
    host: bool = False  # resolved from the CPU this process runs on

    def to_dict(self) -> dict:
        return {"name": self.name, "arch": self.arch, "cpu": self.cpu, "cores": self.cores,
                "threads": self.threads, "dot_product": self.dot_product, "generic": self.generic,
                "host": self.host, "onnx_int8": self.onnx_int8.to_dict(), "tflite": self.tflite.to_dict()}

    def metadata(self) -> dict:
        """What an exported file records about the target it was made for."""
        return {"name": self.name, "arch": self.arch, "cpu": self.cpu, **({"host": True} if self.host else {})}


_X86_AVX2_INT8 = OnnxQuantChoice(
    OnnxQuantFormat.QOPERATOR, ActivationType.UINT8,
    "QOperator, uint8 activations: x86 CPU without VNNI: QOperator with uint8 activations ran at 0.80x of "
    "fp32 latency while QDQ int8/int8 ran 1.31x slower; 7-bit weights (reduce_range) because AVX2's "
    "uint8 x int8 multiply-add saturates 16-bit sums with full-range weights", reduce_range=True)
_X86_VNNI_INT8 = OnnxQuantChoice(
    OnnxQuantFormat.QOPERATOR, ActivationType.UINT8,
    "QOperator, uint8 activations: x86 CPU with VNNI (avx512_vnni or avx_vnni), which multiplies uint8 "
    "activations by int8 weights into int32 sums (full-range weights); on MobileNetV2 1.0/224 QOperator "
    "uint8 ran at about 0.55x of fp32 latency, QDQ int8 at 0.9x (partly left float) and QOperator int8 "
    "4-5x slower")


def _arm_int8(core: str) -> OnnxQuantChoice:
    return OnnxQuantChoice(OnnxQuantFormat.QDQ, ActivationType.INT8,
                           f"QDQ, int8 activations: {core} (aarch64), onnxruntime's default S8S8 QDQ format, "
                           "which its ARM64 kernels run directly (not measured here)")


_TABLE: tuple[DeviceTarget, ...] = (
    DeviceTarget("x86-avx2", "x86_64", "x86-64 with AVX2, without VNNI (Intel before Cascade Lake/Ice Lake, "
                 "AMD Zen 1-3)", _X86_AVX2_INT8, dot_product=False),
    DeviceTarget("x86-vnni", "x86_64", "x86-64 with AVX-512 VNNI or AVX-VNNI (Intel Cascade Lake, Ice Lake, "
                 "Alder Lake and later, AMD Zen 4)", _X86_VNNI_INT8, dot_product=True),
    DeviceTarget("arm64", "aarch64", "any 64-bit ARM CPU (ARMv8-A, NEON)", _arm_int8("64-bit ARM CPU"),
                 generic=True),
    DeviceTarget("raspberry-pi-4", "aarch64", "Broadcom BCM2711, 4x Cortex-A72 at 1.5-1.8 GHz "
                 "(ARMv8.0-A: no dot product)", _arm_int8("Cortex-A72 without dot product"),
                 cores=4, threads=4, dot_product=False, tflite=TfliteOptions(threads=4)),
    DeviceTarget("raspberry-pi-5", "aarch64", "Broadcom BCM2712, 4x Cortex-A76 at 2.4 GHz "
                 "(ARMv8.2-A: dot product)", _arm_int8("Cortex-A76 with dot product"),
                 cores=4, threads=4, dot_product=True, tflite=TfliteOptions(threads=4)),
    # Phones mix big and little cores: threads for the big ones (most have 4 or fewer), so that
    # a slow little core does not hold every inference back.
    DeviceTarget("android-arm64", "aarch64", "an arm64-v8a Android phone (big.LITTLE cores)",
                 _arm_int8("arm64-v8a Android CPU"), threads=4, tflite=TfliteOptions(threads=4)),
)
_REGISTRY: dict[str, DeviceTarget] = {d.name: d for d in _TABLE}


def list_devices() -> list[str]:
    """Every target name, ``host`` first, then the table's rows in order."""
    return [HOST, *_REGISTRY]


def get_device(name: str | DeviceTarget) -> DeviceTarget:
    """The target called ``name`` (``host``: this machine's, see :func:`resolve_host`);
    ValueError listing the known names and close matches for any other name."""
    if isinstance(name, DeviceTarget):
        return name
    key = str(name).strip().lower()
    if key == HOST:
        return resolve_host()
    if key in _REGISTRY:
        return _REGISTRY[key]
    known = list_devices()
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown target {name!r}; {hint}expected one of {', '.join(known)}")


def describe_devices() -> list[dict]:
    """Every target as ``DeviceTarget.to_dict``, ``host`` first with ``resolves_to`` its row's name
    (what ``edgekit targets --json`` prints)."""
    rows = []
    for name in list_devices():
        device = get_device(name)
        rows.append({**device.to_dict(), "name": name, "resolves_to": device.name})
    return rows


def read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (x86 ``flags``, ARM ``Features``; empty where there is none)."""
    flags: set[str] = set()
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def _cpuinfo_field(cpuinfo: str, name: str) -> str | None:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


def resolve_host(machine: str | None = None, flags: set[str] | None = None,
                 cpuinfo: str | None = None, android: bool | None = None) -> DeviceTarget:
    """The row for the CPU this process runs on, with this machine's cores and threads.

    x86: x86-vnni with avx512_vnni/avx_vnni, else x86-avx2. arm64: android-arm64 on Android, a
    Raspberry Pi 4/5 by its cores' "CPU part", else arm64. Another machine (riscv64, ...) gets
    onnxruntime's default QDQ int8 flavour under its own name.
    """
    machine = (machine or platform.machine()).lower()
    text = read_cpuinfo() if cpuinfo is None and flags is None else (cpuinfo or "")
    flags = cpu_flags(text) if flags is None else flags
    if machine in X86_MACHINES:
        vnni = sorted(f for f in VNNI_FLAGS if f in flags)
        row, found = (_REGISTRY["x86-vnni"], ", ".join(vnni)) if vnni else (_REGISTRY["x86-avx2"], "no VNNI")
        cpu = f"{_cpuinfo_field(text, 'model name') or machine} ({found})"
    elif machine in ARM64_MACHINES:
        if android is None:
            android = hasattr(sys, "getandroidapilevel") or "ANDROID_ROOT" in os.environ
        part = (_cpuinfo_field(text, "CPU part") or "").lower()
        row = _REGISTRY["android-arm64" if android else _BOARD_PARTS.get(part, "arm64")]
        cpu = f"{machine}, CPU part {part or 'unknown'}, features: {' '.join(sorted(flags)) or 'unknown'}"
    else:
        row = replace(_REGISTRY["arm64"], name=machine, arch=machine, dot_product=None, generic=False,
                      onnx_int8=replace(_REGISTRY["arm64"].onnx_int8, reason=(
                          f"QDQ, int8 activations: {machine} CPU, not in edgekit's table: onnxruntime's "
                          "default S8S8 QDQ format")))
        cpu = machine
    cores = _usable_cores()
    threads = cores if row.threads is None or cores is None else min(row.threads, cores)
    return replace(row, cpu=cpu, cores=cores, threads=threads, host=True,
                   tflite=replace(row.tflite, threads=threads))


def qdq_int8_fused(arch: str) -> bool:
    """Whether onnxruntime built for ``arch`` fuses QDQ groups with int8 activations into its
    int8 kernels (QLinearConv, QLinearAdd): ARM builds do (``QDQIsInt8Allowed`` in its
    qdq_selector_action_transformer.h); x86 builds first turn an int8 Q/DQ pair into uint8 only
    where the quantized tensor has one consumer, and run every Conv or Add that touches a tensor
    with several (a residual branch) in float between DequantizeLinear and QuantizeLinear. The
    session option ``session.qdqisint8allowed`` sets it either way, which is how a file made for
    one arch is run, and validated, elsewhere with its target's arithmetic."""
    return arch in ARM64_MACHINES


def mismatch(made_for: str | None, measuring: DeviceTarget) -> str | None:
    """Why a file made for the target named ``made_for`` is not measured on it, or None when it
    is (the same target, or a generic one of the measuring machine's arch, or none recorded)."""
    if not made_for or made_for == measuring.name:
        return None
    row = _REGISTRY.get(made_for)
    if row is not None and row.generic and row.arch == measuring.arch:
        return None
    where = "this machine" if measuring.host else "the measuring machine"
    return (f"made for target {made_for} but measured on {measuring.name} ({where}): its latency here does "
            f"not stand for {made_for}'s")
