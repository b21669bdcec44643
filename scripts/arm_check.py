"""Check edgekit's runtime and ``edgekit predict`` on 64-bit ARM Linux, by emulation (issue 5).

    bash scripts/arm_check.sh [--json] [--cpu cortex-a72] [--no-onnx] [--model RUN_OR_KERAS]

Raspberry Pi OS 64-bit is Debian bookworm on arm64. This script builds that userland once,
installs edgekit's device package in it, runs it under qemu's user-mode emulator, and compares
what the aarch64 builds of LiteRT (and onnxruntime) compute with what the x86 builds compute on
the same files and images. Exit status: 0 all checks passed, 1 a check failed, 2 an error on
the x86 side (export, wheel build), 77 skipped, with a one-line reason (not Linux, no qemu
possible, no root or no network to build the arm64 root on the first run).

How it works, and why this way
------------------------------
1. arm64 root, built once and cached in ``.cache/arm64/root``: ``debootstrap --foreign
   --variant=minbase --arch=arm64 --include=python3,python3-venv bookworm`` fetches Debian's own
   arm64 packages, and every .deb is unpacked with ``dpkg-deb -x``. Debootstrap's second stage
   (arm64 maintainer scripts) is not needed to run Python, and skipping it avoids the need for
   binfmt_misc.
2. No binfmt_misc, chroot or mount: each arm64 program is started explicitly as
   ``qemu-aarch64-static -cpu CPU -L ROOT PROGRAM``. ``-L`` makes qemu look up every absolute
   path that the guest opens in ROOT first (the loader, libc, /usr/lib/python3.11) and fall back to
   the host (this repository, the venv, /tmp). Containers and CI runners often cannot register
   binfmt handlers; this only needs root for apt-get and debootstrap on the first run.
3. The CPU. LiteRT's CPU detection (the cpuinfo library in XNNPACK) reads /proc/cpuinfo.
   qemu 7.2 passes through the x86 host's file, where the detection finds no ARM ``CPU part``
   and crashes (SIGSEGV) while the first model loads. So ROOT/proc/cpuinfo describes the
   emulated core (Cortex-A72: implementer 0x41, part 0xd08, r0p3, as on a Raspberry Pi 4), and
   ``-L`` serves that file. ``-cpu`` makes qemu advertise exactly that core's features (HWCAPs),
   so XNNPACK picks the kernels that a Pi would run. ``-cpu max`` advertises every extension
   that qemu 7.2 emulates. There, int8 .tflite results differ from x86 by up to 192 output steps
   on 1620 of 2000 values (top-1 agrees on 13% of images), while the emulated A53, A72 and A76
   agree with x86: most likely an emulation fault in an extension that no Pi has.
4. Install: ``python3 -m venv`` in the emulated Python, then Debian's pip wheel installs the
   edgekit wheel built from this tree (``pip wheel --no-deps``) with its ``[images]`` extra
   (Pillow, to read image files) and constraints.txt (the same LiteRT as the host). The aarch64
   pip chooses aarch64 wheels for numpy, click, rich and ai-edge-litert itself: this shows that
   the base install works on the Pi. onnxruntime is added for the ONNX check.
5. Models, made on x86: a small MobileNetV2-style classifier (strided conv, inverted residual
   with depthwise conv, ReLU6 and a residual add, global pooling, softmax; 32x32x1 inputs, so
   the 28x28 images are resized) is trained for 30 epochs on calibration/fashion-mnist/train. Then
   ``edgekit export --format tflite,onnx --quantize fp32,int8 --target TARGET --calibration
   calibration/fashion-mnist`` exports it on x86 **for the emulated board** (``--target``,
   default the core's board: cortex-a72 raspberry-pi-4, cortex-a76 raspberry-pi-5, cortex-a53
   arm64), as a user exporting on a laptop for a Pi does. ``--model`` exports a run folder or
   .keras file instead.
6. ``scripts/arm_check_payload.py`` runs each file on the 200 shipped test images with
   ``edgekit.runtime.Model`` (read, preprocess, predict), on x86 and in the emulation, and so
   does ``edgekit predict --json`` (as ``python -m edgekit.cli``, since without binfmt a
   console script cannot start an arm64 interpreter). The prepared inputs must be identical.
   The outputs must agree as CRITERIA says.
7. The target (issue 16): every file's metadata names TARGET; the ONNX int8 file is the
   flavour the target implies, read from its graph (a Pi: QDQ with int8 activations and
   weights, not x86's QOperator uint8); and the runtime on the emulated board resolves its
   host to TARGET, so it does not report the file as made for another device.

Measured here (2-core x86 host vs emulated Cortex-A72, LiteRT 2.3.0, onnxruntime 1.32.0, the
200 test images). Files with an int8 classifier head (``edgekit export --int8-head int8``, the
export default until the float head landed): on the tiny model fp32 .tflite 6.9e-7, fp32 .onnx
1.3e-6, int8 .onnx identical, int8 .tflite 3 of 2000 values one step (1/256) apart; on a trained
MobileNetV2 (``--model runs/fmnist``) 9.5e-7, 6.3e-7, identical, 1 value one step apart. Every
tensor that XNNPACK computes was bit-identical (all intermediate tensors dumped); the only
differences were in the final int8 Softmax, which TFLite's built-in kernel runs, probably because
its exp() lookup table is filled with each platform's float exp(). With the default float head
(softmax in float, then one QUANTIZE) the int8 .tflite outputs are bit-identical, so identical
is the default criterion; ``--int8-steps N`` allows N output steps for files with an int8
softmax. The float head makes int8 .onnx outputs float arithmetic too (MatMul and Softmax after
the last int8 layer), so they match within float rounding, not bit for bit. 2026-11-25, the
issue-3 model (``--model runs/fm_wE``, 91.07%): fp32 .tflite 6.0e-7, int8 .tflite identical
(0 of 2000 values differ), fp32 .onnx 6.0e-7, int8 .onnx 6.4e-6, top-1 identical everywhere,
through the runtime and through ``edgekit predict``; 87 s with the root cached.
2026-12-07, the tiny model exported on x86 with ``--target raspberry-pi-4`` (ONNX int8 as QDQ
with int8 activations) and ``--max-accuracy-drop none``, the int8 .tflite with float scores
out (the export default by then): fp32 .tflite 3.6e-7, int8 .tflite 2.5e-3 (its hybrid float
head; top-1 identical on all 200), fp32 .onnx 1.3e-6, int8 .onnx 1.8e-7; the four target checks
pass; 130 s on the first run (root built, pip in emulation), 33 s after.
The same day, a model it was not tuned on (``--model`` an EfficientNet-Lite0 run at 40x40, 9
residual adds): the ONNX int8 outputs differed by up to 0.011-0.015 (top-1 identical). Every
tensor dumped on both sides showed why: onnxruntime's x86 build fuses int8 QDQ groups only where
it can turn an int8 Q/DQ pair into uint8, which fails for a tensor with two consumers (the
residual branch), so x86 ran 14 Convs and all 9 Adds in float between DequantizeLinear and
QuantizeLinear, where the ARM build ran all 49 Convs as QLinearConv and the Adds as QLinearAdd
(and float convolution sums differ in the last bit between the two, which flips a rounding
here and there). The runtime now runs a file made for ARM with ARM's fusion on x86 too
(``session.qdqisint8allowed``, from the file's target; the target row checks it), and then:
fp32 .tflite 2.0e-6, int8 .tflite 2.4e-7, fp32 .onnx 6.6e-7, int8 .onnx 2.4e-7 (from 0.011),
top-1 identical on all 200, every target check passing; 257 s with the root cached.

Time on this shared 2-core machine: the first run took 5.5-7.5 min (44 s to build the root,
120-220 s for the aarch64 pip to download and install, 90 s to train and export). A rerun with
nothing changed takes ~50 s. edgekit's wheel is reinstalled on every run, and the models are
re-exported (+25-60 s) when edgekit's source has changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = REPO / "scripts" / "arm_check_payload.py"
SAMPLE = REPO / "calibration" / "fashion-mnist"
DEFAULT_CACHE = REPO / ".cache" / "arm64"
SUITE = "bookworm"  # Raspberry Pi OS 64-bit (2023-) is Debian bookworm
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PYPI_PROBE = "https://pypi.org/simple/pip/"
QEMU = "qemu-aarch64-static"
ROOT_MARKER = ".edgekit-arm64-root"
TINY_RECIPE = "tiny-mbv2-32x32x1-e30-v2"  # change to retrain the cached model
GUEST_TIMEOUT = 1800  # seconds; emulated pip and inference are 10-50x slower than native

EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_SKIP = 0, 1, 2, 77


@dataclass(frozen=True)
class CpuModel:
    """An emulated core: qemu's -cpu name and what its /proc/cpuinfo says on a real board."""

    qemu: str
    board: str
    variant: str
    part: str
    revision: int
    features: str
    target: str  # the edgekit device target (edgekit targets) whose files this core checks


CPUS = {c.qemu: c for c in (
    CpuModel("cortex-a53", "Raspberry Pi 3 / Zero 2 W", "0x0", "0xd03", 4, "fp asimd evtstrm crc32 cpuid",
             "arm64"),
    CpuModel("cortex-a72", "Raspberry Pi 4 / 400 / CM4", "0x0", "0xd08", 3, "fp asimd evtstrm crc32 cpuid",
             "raspberry-pi-4"),
    CpuModel("cortex-a76", "Raspberry Pi 5", "0x4", "0xd0b", 1,
             "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
             "raspberry-pi-5"),
    # Not a Pi: qemu's every-feature CPU, described as an A76. Kept to show the check can fail.
    CpuModel("max", "qemu max (not a Pi)", "0x4", "0xd0b", 1,
             "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
             "raspberry-pi-5"),
)}  # fmt: skip


@dataclass(frozen=True)
class Criterion:
    """When x86 and ARM outputs agree: |diff| <= max_abs, or <= max_steps output quantization steps."""

    max_abs: float | None = None
    max_steps: int | None = None

    def describe(self) -> str:
        if self.max_steps is not None:
            return "identical" if self.max_steps == 0 else f"<= {self.max_steps} step"
        return f"<= {self.max_abs:g}"


# Keyed by (format, precision). ONNX int8 files end in DequantizeLinear (float outputs), so
# their step is the scale of the last quantized tensor, which the check does not read: it uses
# an absolute bound instead.
CRITERIA = {
    ("tflite", "fp32"): Criterion(max_abs=1e-5),
    ("tflite", "int8"): Criterion(max_steps=0),
    ("onnx", "fp32"): Criterion(max_abs=1e-5),
    ("onnx", "int8"): Criterion(max_abs=1e-5),
}


class Skip(Exception):
    """The check cannot run here; the message is the one-line reason."""


class SetupError(Exception):
    """A step failed: on the x86 side (wheel build, export) exit 2; the arm64 install, a failed check."""


def log(message: str) -> None:
    print(f"arm_check: {message}", file=sys.stderr, flush=True)


# -- comparisons (pure numpy: tested in tests/test_arm.py) ------------------------------------


@dataclass
class Comparison:
    """x86 against ARM for one model file and one way of running it."""

    check: str  # e.g. "tflite/int8 runtime", "tflite/int8 predict"
    criterion: str
    status: str  # pass, fail, skipped
    reason: str = ""
    values: int = 0
    differing: int = 0
    max_abs_diff: float | None = None
    max_steps: float | None = None
    top1_agreement: float | None = None
    inputs_identical: bool | None = None


def compare(check: str, criterion: Criterion, x86: np.ndarray, arm: np.ndarray, step: float | None = None,
            inputs_identical: bool | None = None) -> Comparison:
    """Compare two output arrays of shape (samples, classes) under ``criterion``."""
    if x86.shape != arm.shape:
        return Comparison(check, criterion.describe(), "fail", f"shapes differ: x86 {x86.shape}, arm {arm.shape}")
    if not (np.isfinite(x86).all() and np.isfinite(arm).all()):
        return Comparison(check, criterion.describe(), "fail", "outputs hold NaN or infinite values (or miss classes)")
    diff = np.abs(x86.astype(np.float64) - arm.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    steps = max_abs / step if step else None
    result = Comparison(check, criterion.describe(), "pass", values=int(diff.size), differing=int((diff > 0).sum()),
                        max_abs_diff=max_abs, max_steps=steps, inputs_identical=inputs_identical,
                        top1_agreement=float((x86.argmax(-1) == arm.argmax(-1)).mean()) if x86.size else None)
    if inputs_identical is False:
        result.status, result.reason = "fail", "the prepared inputs differ between x86 and ARM"
    elif criterion.max_steps is not None and step is None:
        result.status, result.reason = "fail", "no output quantization step to measure int8 differences in"
    elif criterion.max_steps is not None and round(steps, 6) > criterion.max_steps:
        result.status, result.reason = "fail", f"{steps:.3g} output steps apart, allowed {criterion.max_steps}"
    elif criterion.max_abs is not None and max_abs > criterion.max_abs:
        result.status, result.reason = "fail", f"max |diff| {max_abs:.3g}, allowed {criterion.max_abs:g}"
    return result


def predictions_to_array(doc: dict, classes: int) -> tuple[list[str], np.ndarray]:
    """``edgekit predict --json`` output -> (images, probabilities (images, classes) by index)."""
    images, rows = [], []
    for result in doc["results"]:
        row = np.full(classes, np.nan)
        for entry in result["top_k"]:
            row[int(entry["index"])] = float(entry["probability"])
        images.append(result["image"])
        rows.append(row)
    return images, np.array(rows)


def cpuinfo_text(cpu: CpuModel, count: int) -> str:
    """/proc/cpuinfo as an arm64 Linux kernel writes it for ``count`` cores of ``cpu``."""
    block = (f"processor\t: {{i}}\nBogoMIPS\t: 108.00\nFeatures\t: {cpu.features}\nCPU implementer\t: 0x41\n"
             f"CPU architecture: 8\nCPU variant\t: {cpu.variant}\nCPU part\t: {cpu.part}\n"
             f"CPU revision\t: {cpu.revision}\n\n")
    return "".join(block.format(i=i) for i in range(count))


def host_cpu_count() -> int:
    """Cores the kernel lists as possible (what cpuinfo reads from /sys next to /proc/cpuinfo)."""
    try:
        last = Path("/sys/devices/system/cpu/possible").read_text().strip().split(",")[-1]
        return int(last.split("-")[-1]) + 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


# -- running things ---------------------------------------------------------------------------


def run(cmd: list, what: str, log_file: Path | None = None, timeout: float | None = None,
        env: dict | None = None, cwd: Path | None = None, capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``cmd``; output to ``log_file`` (or captured); raise SetupError naming ``what`` on failure."""
    cmd = [str(c) for c in cmd]
    out = open(log_file, "w") if log_file else subprocess.PIPE
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE if capture else out, stderr=out, text=True,
                              timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} ran past {timeout:.0f} s") from None
    finally:
        if log_file:
            out.close()
    if proc.returncode != 0:
        tail = (log_file.read_text() if log_file else proc.stderr or "").strip().splitlines()[-3:]
        where = f" (log: {log_file})" if log_file else ""
        raise SetupError(f"{what} failed with exit {proc.returncode}{where}: {' | '.join(tail)}")
    return proc


def exit_text(code: int) -> str:
    """'exit 3', or the signal's name for a process a signal ended (qemu re-raises the guest's)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def tail_of(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Context:
    cache: Path
    cpu: CpuModel
    mirror: str
    onnx: bool
    target: str = "arm64"  # edgekit export --target
    criteria: dict = field(default_factory=lambda: dict(CRITERIA))
    timings: dict = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.cache / "root"

    @property
    def venv(self) -> Path:
        return self.cache / "venv"

    @property
    def logs(self) -> Path:
        return self.cache / "logs"

    def guest(self, program, *args) -> list:
        return [QEMU, "-cpu", self.cpu.qemu, "-L", self.root, program, *args]

    def guest_python(self, *args) -> list:
        return self.guest(self.venv / "bin" / "python3", *args)

    def timed(self, name: str, start: float) -> None:
        self.timings[name] = round(time.perf_counter() - start, 1)


def guest_env() -> dict:
    """The host environment without what would steer the emulated Python or pip to the host's."""
    drop = ("PIP_", "PYTHON", "VIRTUAL_ENV", "QEMU_", "LD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    return env


# -- preconditions and the arm64 root ---------------------------------------------------------


def check_host() -> None:
    if platform.system() != "Linux":
        raise Skip(f"needs Linux (qemu user-mode emulation); this is {platform.system()}")
    if platform.machine() in ("aarch64", "arm64"):
        raise Skip("this machine is already aarch64: run the test suite natively instead of emulating")


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_tools(tools: dict[str, str]) -> None:
    """Install the Debian packages of any missing command ({command: package}), as root only."""
    missing = sorted({pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise Skip(f"needs {', '.join(missing)} and there is no apt-get to install them")
    if not is_root():
        raise Skip(f"needs {', '.join(missing)}: install them as root (apt-get install {' '.join(missing)})")
    log(f"installing {', '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise Skip(f"could not install {', '.join(missing)}: {tail_of(proc.stderr)}")


def probe_network(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=20).close()
    except OSError as exc:
        raise Skip(f"no network to reach {url} on the first run and nothing cached yet: {exc}") from None


def root_ready(root: Path) -> bool:
    return (root / ROOT_MARKER).is_file()


def build_root(ctx: Context) -> None:
    """debootstrap's first stage, then every package unpacked: a Debian arm64 tree that runs under -L."""
    if not is_root():
        raise Skip(f"building the arm64 Debian root (debootstrap) needs root, and none is cached in {ctx.root}")
    ensure_tools({"debootstrap": "debootstrap", "dpkg-deb": "dpkg"})
    probe_network(f"{ctx.mirror}/dists/{SUITE}/Release")
    partial = ctx.root.with_name(ctx.root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log(f"building the arm64 {SUITE} root in {ctx.root} (first run only; about 45 MB of packages)")
    try:  # fails where the container forbids mknod/chown, or the mirror is broken: not edgekit's fault
        run(["debootstrap", "--foreign", "--variant=minbase", "--arch=arm64", "--include=python3,python3-venv",
             SUITE, partial, ctx.mirror], "debootstrap", ctx.logs / "debootstrap.log")
    except SetupError as exc:
        raise Skip(f"could not build the arm64 root here: {exc}") from None
    for deb in sorted((partial / "var/cache/apt/archives").glob("*.deb")):
        run(["dpkg-deb", "-x", deb, partial], f"unpacking {deb.name}")
        deb.unlink()
    # The host's resolver files apply at run time, through -L's fallback, wherever the cache moves.
    for name in ("etc/resolv.conf", "etc/hosts", "etc/hostname"):
        (partial / name).unlink(missing_ok=True)
    (partial / ROOT_MARKER).write_text(f"{SUITE} arm64 from {ctx.mirror}\n")
    shutil.rmtree(ctx.root, ignore_errors=True)
    partial.rename(ctx.root)


def prepare_root(ctx: Context) -> dict:
    """The cached root, with /proc/cpuinfo for the chosen core; checks that qemu runs its Python."""
    ctx.logs.mkdir(parents=True, exist_ok=True)
    ensure_tools({QEMU: "qemu-user-static"})
    start = time.perf_counter()
    if not root_ready(ctx.root):
        build_root(ctx)
        ctx.timed("build_root", start)
    (ctx.root / "proc").mkdir(exist_ok=True)
    (ctx.root / "proc" / "cpuinfo").write_text(cpuinfo_text(ctx.cpu, host_cpu_count()))
    probe = "import platform; print(platform.machine(), platform.platform())"
    proc = subprocess.run([str(c) for c in ctx.guest(ctx.root / "usr/bin/python3", "-c", probe)],
                          capture_output=True, text=True, env=guest_env(), timeout=300)
    if proc.returncode != 0 or not proc.stdout.startswith("aarch64"):
        raise Skip(f"{QEMU} cannot run the arm64 Python here: {tail_of(proc.stderr or proc.stdout)}")
    version = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"qemu": version, "cpu": ctx.cpu.qemu, "board": ctx.cpu.board, "cpu_part": ctx.cpu.part,
            "python_platform": proc.stdout.strip()}


# -- the device install -----------------------------------------------------------------------


def build_wheel(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, REPO]
    try:  # no build isolation: uses the venv's setuptools, no index needed
        run([*base[:4], "--no-build-isolation", *base[4:]], "pip wheel (no build isolation)")
    except SetupError:
        run(base, "pip wheel")
    (wheel,) = out.glob("edgekit-*.whl")
    return wheel


def wheel_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def wheel_has(wheel: Path, member: str) -> bool:
    with zipfile.ZipFile(wheel) as zf:
        return member in zf.namelist()


def guest_pip(ctx: Context, args: list, what: str, log_name: str) -> None:
    cmd = ctx.guest_python("-m", "pip", *args)
    run(cmd, what, ctx.logs / log_name, timeout=GUEST_TIMEOUT, env=guest_env(), cwd=ctx.cache)


def install(ctx: Context, wheel: Path) -> dict:
    """The wheel and its dependencies in an aarch64 venv, installed by the aarch64 pip."""
    env, start = guest_env(), time.perf_counter()
    if not (ctx.venv / "bin" / "python3").is_file():
        shutil.rmtree(ctx.venv, ignore_errors=True)
        run(ctx.guest(ctx.root / "usr/bin/python3", "-m", "venv", "--copies", "--without-pip", ctx.venv),
            "python3 -m venv (arm64)", env=env, timeout=GUEST_TIMEOUT)
        (pip_wheel,) = ctx.root.glob("usr/share/python-wheels/pip-*.whl")  # Debian's, for ensurepip
        run(ctx.guest_python(f"{pip_wheel}/pip", "install", "-q", "--no-index", pip_wheel), "installing pip (arm64)",
            env=env, timeout=GUEST_TIMEOUT)
    constraints = REPO / "constraints.txt"
    common = ["install", "--no-cache-dir", "--only-binary=:all:", "-c", constraints]
    wanted = json.dumps([wheel_requirements(wheel), constraints.read_text(), ctx.onnx])
    stamp = ctx.venv / ".edgekit-deps"
    onnx_error = None
    if not stamp.is_file() or stamp.read_text() != wanted:
        probe_network(PYPI_PROBE)
        log("installing the wheel and its dependencies with the aarch64 pip (slow under emulation)")
        guest_pip(ctx, [*common, f"{wheel}[images]"], "pip install edgekit[images] (arm64)", "pip-install.log")
        if ctx.onnx:
            try:
                guest_pip(ctx, [*common, "onnxruntime"], "pip install onnxruntime (arm64)", "pip-onnxruntime.log")
            except SetupError as exc:
                onnx_error = str(exc)
        stamp.write_text(wanted)
    guest_pip(ctx, ["install", "--no-deps", "--force-reinstall", "-q", wheel], "pip install the edgekit wheel (arm64)",
              "pip-edgekit.log")
    ctx.timed("install", start)
    return {"onnx_install_error": onnx_error}


# -- models made on x86 -----------------------------------------------------------------------


def make_tiny_run(run_dir: Path) -> None:
    """A run folder (model.keras + edgekit.json) of a small MobileNetV2-style classifier."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edgekit.data import load_split, make_dataset
    from edgekit.runtime import PreprocessSpec

    keras.utils.set_random_seed(0)
    spec = PreprocessSpec(size=(32, 32), channels=1)
    layers = keras.layers
    # No BatchNormalization: the converter folds it into the convolutions anyway, and its moving
    # averages after 300 steps from scratch leave the model at chance (constant outputs would
    # make the comparison weak). Trained this way it scores ~55% on the 200 test images.
    inp = keras.Input((32, 32, 1), name="image")
    x = layers.ReLU(6.0)(layers.Conv2D(16, 3, strides=2, padding="same")(inp))
    y = layers.ReLU(6.0)(layers.Conv2D(48, 1)(x))  # inverted residual: expand, depthwise, project
    y = layers.ReLU(6.0)(layers.DepthwiseConv2D(3, padding="same")(y))
    x = layers.Add()([x, layers.Conv2D(16, 1)(y)])
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(32, 1, activation="relu")(x))
    model = keras.Model(inp, layers.Dense(10, activation="softmax", name="probs")(x))
    data = load_split(SAMPLE, "train")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(make_dataset(data, spec, 32, training=True), epochs=30, verbose=0)
    partial = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial / "model.keras")
    (partial / "edgekit.json").write_text(json.dumps({
        "architecture": TINY_RECIPE, "preprocess": spec.to_dict(), "class_names": list(data.class_names)}))
    shutil.rmtree(run_dir, ignore_errors=True)
    partial.rename(run_dir)


def keras_file_of(model: Path) -> Path:
    keras_file = model / "model.keras" if model.is_dir() else model
    if keras_file.suffix != ".keras" or not keras_file.is_file():
        raise SetupError(f"--model got {str(model)!r}; expected a run folder (with model.keras) or a .keras file")
    return keras_file


def source_hash(*extra: str) -> str:
    digest = hashlib.sha256("\0".join(extra).encode())
    for path in sorted((REPO / "edgekit").rglob("*.py")) + [REPO / "pyproject.toml"]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def export_models(ctx: Context, model: Path | None) -> list[dict]:
    """Exported files [{path, format, precision}], cached while edgekit's source is unchanged."""
    start = time.perf_counter()
    if model is None:
        model = ctx.cache / "tiny-run" / TINY_RECIPE
        if not (model / "model.keras").is_file():
            log("training the tiny model on calibration/fashion-mnist/train (first run only)")
            shutil.rmtree(model.parent, ignore_errors=True)  # other recipes' runs
            make_tiny_run(model)
            ctx.timed("train", start)
    stamp = f"{model.resolve()}:{keras_file_of(model).stat().st_mtime_ns}"
    out = ctx.cache / "models" / source_hash(stamp, str(ctx.onnx), ctx.target)
    listing = out / "files.json"
    if not listing.is_file():
        shutil.rmtree(ctx.cache / "models", ignore_errors=True)
        formats = "tflite,onnx" if ctx.onnx else "tflite"
        log(f"exporting {model} to {formats} fp32 and int8 for target {ctx.target}")
        cmd = [sys.executable, "-m", "edgekit.cli", "export", model.resolve(), "--format", formats,
               "--quantize", "fp32,int8", "--target", ctx.target, "--calibration", SAMPLE, "--out", out,
               "--max-accuracy-drop", "none", "--force", "--json"]
        proc = run(cmd, "edgekit export", capture=True, log_file=ctx.logs / "export.log")
        files = [{k: f[k] for k in ("path", "format", "precision")} for f in json.loads(proc.stdout)["files"]]
        listing.write_text(json.dumps(files))
        ctx.timed("export", start)
    return json.loads(listing.read_text())


# -- running and comparing --------------------------------------------------------------------


@dataclass
class SideRun:
    """One side's payload result: outputs by file name, its report, or why it failed."""

    arrays: dict
    report: dict | None
    error: str | None = None


def run_payload(cmd: list, out: Path, files: list[Path], env: dict | None, timeout: float | None) -> SideRun:
    proc = subprocess.run([str(c) for c in (*cmd, PAYLOAD, out, SAMPLE / "test", *files)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd="/")
    if proc.returncode != 0:
        return SideRun({}, None, f"{exit_text(proc.returncode)}: {tail_of(proc.stderr)}")
    with np.load(out) as data:
        arrays = {k: data[k] for k in data.files}
    return SideRun(arrays, json.loads(proc.stdout.strip().splitlines()[-1]))


def run_predict_cli(cmd: list, model: Path, images: list[Path], classes: int, env, timeout) -> tuple[dict | None, str]:
    args = [*cmd, "-m", "edgekit.cli", "predict", model, *images, "--top-k", classes, "--json"]
    proc = subprocess.run([str(c) for c in args], capture_output=True, text=True, env=env, timeout=timeout, cwd="/")
    if proc.returncode != 0:
        return None, f"exit {proc.returncode}: {tail_of(proc.stderr)}"
    try:
        return json.loads(proc.stdout), ""
    except json.JSONDecodeError as exc:
        return None, f"stdout is not one JSON document: {exc}"


def output_step(path: Path) -> float | None:
    """The output quantization scale of a file whose output tensor is int8/uint8, else None."""
    from edgekit.runtime import Model

    info = Model(path).outputs[0]
    return info.quantization.scale if info.quantization is not None and info.dtype.kind in "iu" else None


# An int8 .tflite file with float scores out (``edgekit export --io auto``, the default): its
# float classifier head runs TFLite's hybrid fully connected op, which quantizes the pooled
# features at run time; x86 and ARM round that differently (2026-12-07, tiny model: up to
# 0.0025 apart, top-1 identical). Held to one step of the uint8 output such a file had before
# the float output (1/256 of probability).
FLOAT_OUT_INT8 = Criterion(max_abs=1 / 256)


def criterion_for(criteria: dict, key: tuple[str, str], path: Path) -> Criterion:
    """CRITERIA's for (format, precision), or :data:`FLOAT_OUT_INT8` for an int8 .tflite file
    whose output is float (no quantization step to count in)."""
    criterion = criteria[key]
    if criterion.max_steps is not None and output_step(path) is None:
        return FLOAT_OUT_INT8
    return criterion


def compare_runtime(criteria: dict, fmt: str, files: list[dict], x86: SideRun, arm: SideRun) -> list[Comparison]:
    rows = []
    for f in files:
        path, key = Path(f["path"]), (f["format"], f["precision"])
        check, criterion = f"{fmt}/{f['precision']} runtime", criterion_for(criteria, key, path)
        errors = {side: run.error or (run.report or {}).get("models", {}).get(path.name, {}).get("error")
                  for side, run in (("x86", x86), ("arm", arm))}
        if errors["x86"]:
            rows.append(Comparison(check, criterion.describe(), "fail", f"x86: {errors['x86']}"))
        elif errors["arm"]:  # ONNX is a nice-to-have on the Pi: reported, not failed
            status = "skipped" if fmt == "onnx" else "fail"
            rows.append(Comparison(check, criterion.describe(), status, f"arm: {errors['arm']}"))
        else:
            same_inputs = bool(np.array_equal(x86.arrays[f"{path.name}:input"], arm.arrays[f"{path.name}:input"]))
            rows.append(compare(check, criterion, x86.arrays[f"{path.name}:output"],
                                arm.arrays[f"{path.name}:output"], output_step(path), same_inputs))
    return rows


def compare_cli(ctx: Context, files: list[dict], classes: int, onnx_ok: bool) -> list[Comparison]:
    images = sorted((SAMPLE / "test").glob("*/*.png"))
    rows = []
    for f in files:
        path, key = Path(f["path"]), (f["format"], f["precision"])
        check, criterion = f"{f['format']}/{f['precision']} predict", criterion_for(ctx.criteria, key, path)
        if f["format"] == "onnx" and not onnx_ok:
            rows.append(Comparison(check, criterion.describe(), "skipped", "onnxruntime does not run on arm"))
            continue
        x86_doc, x86_err = run_predict_cli([sys.executable], path, images, classes, None, None)
        arm_doc, arm_err = run_predict_cli(ctx.guest_python(), path, images, classes, guest_env(), GUEST_TIMEOUT)
        if x86_doc is None or arm_doc is None:
            which, err = ("x86", x86_err) if x86_doc is None else ("arm", arm_err)
            rows.append(Comparison(check, criterion.describe(), "fail", f"{which}: edgekit predict {err}"))
            continue
        x86_images, x86_probs = predictions_to_array(x86_doc, classes)
        arm_images, arm_probs = predictions_to_array(arm_doc, classes)
        if x86_images != arm_images:
            rows.append(Comparison(check, criterion.describe(), "fail", "the two runs list different images"))
            continue
        rows.append(compare(check, criterion, x86_probs, arm_probs, output_step(path)))
    return rows


def run_checks(ctx: Context, files: list[dict], classes: int, onnx_error: str | None,
               with_cli: bool) -> tuple[list[Comparison], dict]:
    work = ctx.cache / "outputs"
    work.mkdir(parents=True, exist_ok=True)
    rows, reports = [], {}
    for fmt in ("tflite", "onnx"):
        chosen = [f for f in files if f["format"] == fmt]
        if fmt == "onnx" and chosen and onnx_error:
            rows += [Comparison(f"onnx/{f['precision']} runtime", ctx.criteria[("onnx", f["precision"])].describe(),
                                "skipped", f"arm: {onnx_error}") for f in chosen]
            files = [f for f in files if f["format"] != "onnx"]
            continue
        if not chosen:
            continue
        paths = [Path(f["path"]) for f in chosen]
        start = time.perf_counter()
        x86 = run_payload([sys.executable], work / f"x86-{fmt}.npz", paths, None, None)
        ctx.timed(f"run_x86_{fmt}", start)
        start = time.perf_counter()
        arm = run_payload(ctx.guest_python(), work / f"arm-{fmt}.npz", paths, guest_env(), GUEST_TIMEOUT)
        ctx.timed(f"run_arm_{fmt}", start)
        rows += compare_runtime(ctx.criteria, fmt, chosen, x86, arm)
        reports[fmt] = {"x86": x86.report, "arm": arm.report, "arm_error": arm.error}
    if with_cli:
        start = time.perf_counter()
        onnx_ok = bool((reports.get("onnx") or {}).get("arm"))
        rows += compare_cli(ctx, files, classes, onnx_ok)
        ctx.timed("predict_cli", start)
    return rows, reports


def onnx_int8_flavour(path: Path) -> dict:
    """What an ONNX file's graph is, read from its nodes: ``quant_format`` qdq (QuantizeLinear/
    DequantizeLinear around float ops), qoperator (QLinearConv, QLinearMatMul, ...) or float, and
    ``activation_type``: the type of the zero points that QuantizeLinear nodes produce."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = {n.op_type for n in graph.node}
    consts = {t.name: t for t in graph.initializer}
    act_types = set()
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in consts:
            act_types.add(onnx.helper.tensor_dtype_to_np_dtype(consts[node.input[2]].data_type).name)
    qlinear = sorted(op for op in ops if op.startswith("QLinear") or op in ("ConvInteger", "MatMulInteger"))
    fmt = "qoperator" if qlinear else ("qdq" if "QuantizeLinear" in ops else "float")
    return {"quant_format": fmt, "activation_type": ",".join(sorted(act_types)) or None, "qlinear_ops": qlinear}


def check_target(target: str, files: list[dict], reports: dict) -> list[Comparison]:
    """Were the files made for ``target``: its name in each file's metadata, the ONNX int8 flavour
    the target implies (read from the graph, not the export report), on the emulated board the
    runtime finds the file made for the machine it runs on (no target mismatch), and on x86 the
    runtime ran the ONNX int8 file with the target's int8 QDQ fusion (``for_target``)."""
    from edgekit.devices import get_device, qdq_int8_fused
    from edgekit.runtime import read_metadata

    rows = []
    expected = get_device(target)
    for f in files:
        check = f"{f['format']}/{f['precision']} target"
        meta = read_metadata(f["path"])
        made_for = meta.target if meta is not None else None
        if made_for != expected.name:
            rows.append(Comparison(check, f"made for {expected.name}", "fail",
                                   f"the file's metadata says target {made_for!r}"))
            continue
        problems, flavour = [], ""
        if f["format"] == "onnx" and f["precision"] == "int8":
            found, want = onnx_int8_flavour(Path(f["path"])), expected.onnx_int8
            flavour = f", {want.quant_format.value} {want.activation_type.value}"
            if found["quant_format"] != want.quant_format.value or found["activation_type"] != want.activation_type.value:
                problems.append(f"graph is {found['quant_format']} with {found['activation_type']} activations "
                                f"{found['qlinear_ops'] or ''}; target {expected.name} wants "
                                f"{want.quant_format.value} with {want.activation_type.value} activations")
        side = {name: ((reports.get(f["format"]) or {}).get(name) or {}).get("models", {}).get(Path(f["path"]).name, {})
                for name in ("x86", "arm")}
        if side["arm"].get("target_mismatch"):
            problems.append(f"arm runtime: {side['arm']['target_mismatch']}")
        if f["format"] == "onnx" and f["precision"] == "int8" and side["x86"] \
                and side["x86"].get("qdq_int8_allowed") is not qdq_int8_fused(expected.arch):
            problems.append(f"x86 runtime: onnxruntime's int8 QDQ fusion {side['x86'].get('qdq_int8_allowed')!r}, "
                            f"not {expected.name}'s ({qdq_int8_fused(expected.arch)})")
        rows.append(Comparison(check, f"made for {expected.name}{flavour}", "fail" if problems else "pass",
                               "; ".join(problems)))
    return rows


def class_names(files: list[dict]) -> list[str]:
    from edgekit.runtime import read_metadata

    meta = read_metadata(files[0]["path"])
    if meta is None or not meta.class_names:
        raise SetupError(f"{files[0]['path']} carries no class names in its edgekit metadata")
    return list(meta.class_names)


# -- report -----------------------------------------------------------------------------------


def verdict(rows: list[Comparison]) -> str:
    if any(r.status == "fail" for r in rows):
        return "fail"
    return "pass" if any(r.status == "pass" for r in rows) else "fail"


def fmt_row(r: Comparison) -> str:
    diff = "-" if r.max_abs_diff is None else f"{r.max_abs_diff:.3g}"
    if r.max_steps is not None:
        diff += f" ({r.max_steps:.3g} step)"
    count = f"{r.differing}/{r.values}" if r.values else "-"
    top1 = "-" if r.top1_agreement is None else f"{100 * r.top1_agreement:.1f}%"
    tail = f"  {r.reason}" if r.reason else ""
    return f"  {r.check:<22} {diff:<22} {count:<11} {top1:<7} {r.status.upper()} ({r.criterion}){tail}"


def print_summary(doc: dict, stream) -> None:
    emu, arm = doc.get("emulation", {}), doc.get("arm") or {}
    print(f"arm_check: {emu.get('qemu', '?')} -cpu {emu.get('cpu', '?')} ({emu.get('board', '?')}); inside: "
          f"{arm.get('machine', '?')} {arm.get('platform', '')}, CPU part {arm.get('cpu_part')}, "
          f"LiteRT {arm.get('ai_edge_litert')}, onnxruntime {arm.get('onnxruntime')}, numpy {arm.get('numpy')}",
          file=stream)
    print(f"  {'check':<22} {'max |x86 - arm|':<22} {'differing':<11} {'top-1':<7} verdict", file=stream)
    for row in doc["checks"]:
        print(fmt_row(Comparison(**row)), file=stream)
    print(f"timings (s): {json.dumps(doc['timings'])}", file=stream)
    print(f"{doc['status'].upper()}: x86 and emulated aarch64 "
          f"{'agree' if doc['status'] == 'pass' else 'DISAGREE (or failed)'}", file=stream)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--cpu", choices=sorted(CPUS), default="cortex-a72", help="emulated core [cortex-a72: Pi 4]")
    p.add_argument("--no-onnx", action="store_true", help="check .tflite files only")
    p.add_argument("--no-cli", action="store_true", help="skip the edgekit predict comparison")
    p.add_argument("--int8-steps", type=int, default=0, metavar="N",
                   help="int8 .tflite outputs may differ by N quantization steps [0: identical]")
    p.add_argument("--model", type=Path, default=None, help="export this run folder or .keras file instead")
    p.add_argument("--target", default=None,
                   help="edgekit export --target for the files [the emulated core's board: cortex-a72 "
                        "raspberry-pi-4, cortex-a76 and max raspberry-pi-5, cortex-a53 arm64]")
    p.add_argument("--cache", type=Path, default=Path(os.environ.get("EDGEKIT_ARM_CACHE", DEFAULT_CACHE)))
    p.add_argument("--mirror", default=os.environ.get("EDGEKIT_ARM_MIRROR", DEFAULT_MIRROR))
    args = p.parse_args(argv)
    if args.int8_steps < 0:
        p.error(f"--int8-steps got {args.int8_steps}; expected 0 or more")
    from edgekit.devices import get_device

    args.target = args.target or CPUS[args.cpu].target
    try:
        get_device(args.target)
    except ValueError as exc:
        p.error(f"--target: {exc}")
    return args


def check(args: argparse.Namespace) -> dict:
    check_host()
    if args.model is not None:
        keras_file_of(args.model)  # a bad path fails now, not after the install
    ctx = Context(args.cache.resolve(), CPUS[args.cpu], args.mirror, not args.no_onnx, args.target)
    ctx.criteria[("tflite", "int8")] = Criterion(max_steps=args.int8_steps)
    total = time.perf_counter()
    emulation = prepare_root(ctx)
    start = time.perf_counter()
    wheel = build_wheel(ctx.cache / "wheel")
    ctx.timed("wheel", start)
    try:
        install_info = install(ctx, wheel)
    except SetupError as exc:  # the aarch64 pip could not install edgekit: what this check is for
        row = Comparison("install (arm64 pip)", "installs", "fail", str(exc))
        return {"status": "fail", "reason": str(exc), "emulation": emulation, "checks": [asdict(row)],
                "timings": ctx.timings, "cache": str(ctx.cache)}
    files = export_models(ctx, args.model)
    with_cli = not args.no_cli and wheel_has(wheel, "edgekit/cli/predict_cmd.py")
    rows, reports = run_checks(ctx, files, len(class_names(files)), install_info["onnx_install_error"], with_cli)
    rows += check_target(ctx.target, files, reports)
    ctx.timed("total", total)
    arm = (reports.get("tflite") or {}).get("arm") or {}
    x86 = (reports.get("tflite") or {}).get("x86") or {}
    return {"status": verdict(rows), "reason": "", "target": ctx.target, "emulation": emulation,
            "arm": arm.get("where"),
            "x86": x86.get("where"), "images": arm.get("images"), "predict_cli": with_cli,
            "tensorflow_imported_on_arm": arm.get("tensorflow_imported"), "install": install_info,
            "checks": [asdict(r) for r in rows], "timings": ctx.timings, "cache": str(ctx.cache)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        doc = check(args)
        code = EXIT_PASS if doc["status"] == "pass" else EXIT_FAIL
    except Skip as exc:
        doc, code = {"status": "skipped", "reason": str(exc)}, EXIT_SKIP
        log(f"skipped: {exc}")
    except SetupError as exc:
        doc, code = {"status": "error", "reason": str(exc)}, EXIT_ERROR
        log(f"error: {exc}")
    if args.json:
        print(json.dumps(doc, indent=2))
    elif "checks" in doc:
        print_summary(doc, sys.stdout)
    if "checks" in doc and args.json:
        print_summary(doc, sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
