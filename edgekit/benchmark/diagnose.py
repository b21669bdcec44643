"""Why an int8 file is not faster than its fp32 sibling: the verdict and its likely causes.

Full-integer quantization (Jacob et al., "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", CVPR 2018) pays off when the MACs run in int8
kernels; it is lost when operators fall back to float (each surrounded by quantize /
dequantize), when the file takes float input and output (a quantize and a dequantize on every
call), when thread settings make the run measure scheduling instead of arithmetic, when the
model is so small that per-operator overhead dominates, and on x86 CPUs without VNNI (int8
dot products barely beat AVX2 float FMAs). ONNX Runtime's x86 kernels also want uint8
activations (see :mod:`edgekit.devices`). The facts come from the int8 file itself (its
operators and tensor types) and from the run's settings, so the function here is pure and
unit-tested with synthetic rows.
"""

from __future__ import annotations

from dataclasses import dataclass

# int8 counts as faster when its median latency is at most this fraction of fp32's: a smaller
# gain is within the run-to-run noise of a shared CPU.
FASTER_RATIO = 0.9
TINY_MACS = 20_000_000  # below this (a 32x32 MobileNet is ~1 M) per-operator overhead dominates
TINY_MS = 0.5
MINOR_FLOAT_MACS = 0.05  # float operators with less of the MACs than this are a minor cause


@dataclass(frozen=True)
class Int8Facts:
    """What the int8 file says about itself."""

    float_io: bool  # a float32 input (quantized on every call)
    op_count: int
    float_ops: tuple[str, ...] = ()  # types of the computing operators that run in float (or hybrid)
    float_mac_share: float | None = None  # fraction of MACs outside int8 kernels
    onnx_quant: str | None = None  # "qdq int8", "qoperator uint8", ... (ONNX files)


@dataclass(frozen=True)
class RunSettings:
    """Where and how the timing ran."""

    threads: int
    cpus: int | None = None  # CPUs this process may use
    load: float | None = None  # 1-minute load average
    x86_vnni: bool | None = None  # None: not an x86 CPU


@dataclass(frozen=True)
class Pair:
    """The fp32 and int8 rows of one format, as the verdict needs them."""

    format: str
    fp32_ms: float
    int8_ms: float
    facts: Int8Facts
    macs: int | None = None


def int8_verdict(pair: Pair, settings: RunSettings) -> str | None:
    """None when int8 is faster than fp32, else one line: the numbers and the likely causes."""
    if pair.fp32_ms <= 0 or pair.int8_ms <= 0:
        raise ValueError(f"latencies got fp32 {pair.fp32_ms!r} ms, int8 {pair.int8_ms!r} ms; expected > 0")
    if pair.int8_ms <= FASTER_RATIO * pair.fp32_ms:
        return None
    speed = pair.fp32_ms / pair.int8_ms
    head = (f"{pair.format} int8 is not faster than fp32 ({pair.int8_ms:.3f} vs {pair.fp32_ms:.3f} ms p50, "
            f"{speed:.2f}x)")
    return f"{head}; likely: {'; '.join(likely_causes(pair, settings))}"


def likely_causes(pair: Pair, settings: RunSettings) -> list[str]:
    """Causes in the order they are worth checking; never empty."""
    facts = pair.facts
    # Float operators carrying a small share of the MACs (a float classifier head, say) cost
    # little: they are listed after the other causes, not first.
    minor = facts.float_mac_share is not None and facts.float_mac_share < MINOR_FLOAT_MACS
    float_ops = _float_ops(facts)
    causes = [c for c in (None if minor else float_ops, _float_io(pair.format, facts), _onnx_flavour(facts, settings),
                          *_threads(settings), _tiny(pair), _no_vnni(settings), float_ops if minor else None) if c]
    return causes or ["no cause found in the file (every operator int8, int8 input/output) or the settings: "
                      "this CPU's fp32 kernels are as fast as its int8 ones for this model"]


def _float_ops(facts: Int8Facts) -> str | None:
    if not facts.float_ops:
        return None
    counts: dict[str, int] = {}
    for op in facts.float_ops:
        counts[op] = counts.get(op, 0) + 1
    kinds = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    macs = "" if not facts.float_mac_share else f", {100 * facts.float_mac_share:.0f}% of the MACs"
    return (f"{len(facts.float_ops)} of {facts.op_count} operators fall back to float ({kinds}{macs}), "
            "with a quantize/dequantize at each boundary")


def _float_io(fmt: str, facts: Int8Facts) -> str | None:
    if not facts.float_io:
        return None
    fix = "export with --io uint8, the default" if fmt == "tflite" else "ONNX int8 files always take float"
    return f"float input: every call quantizes the input ({fix})"


def _onnx_flavour(facts: Int8Facts, settings: RunSettings) -> str | None:
    if settings.x86_vnni is None or not facts.onnx_quant or facts.onnx_quant.endswith("uint8"):
        return None
    return (f"{facts.onnx_quant} activations on x86: onnxruntime's fast x86 int8 kernels take uint8 activations "
            "(export --onnx-quant-format qoperator --onnx-activation-type uint8)")


def _threads(settings: RunSettings) -> list[str]:
    causes = []
    if settings.cpus and settings.threads > settings.cpus:
        causes.append(f"--threads {settings.threads} on {settings.cpus} available CPU(s): threads compete for cores")
    elif settings.threads > 1:
        causes.append(f"--threads {settings.threads}: fp32 and int8 kernels split work across threads differently; "
                      "compare at --threads 1 too")
    if settings.cpus and settings.load is not None and settings.load > settings.cpus:
        causes.append(f"a busy machine (load average {settings.load:.1f} on {settings.cpus} CPU(s)): "
                      "the timings are noisy")
    return causes


def _tiny(pair: Pair) -> str | None:
    if (pair.macs is None or pair.macs >= TINY_MACS) and pair.fp32_ms >= TINY_MS:
        return None
    size = f"{pair.macs / 1e6:.1f} M MACs, " if pair.macs is not None else ""
    return (f"a tiny model ({size}fp32 {pair.fp32_ms:.3f} ms): per-operator overhead, not arithmetic, "
            "dominates the time")


def _no_vnni(settings: RunSettings) -> str | None:
    if settings.x86_vnni is not False:
        return None
    return "an x86 CPU without VNNI (avx512_vnni / avx_vnni): int8 dot products are barely faster than fp32 FMAs"
