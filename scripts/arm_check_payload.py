"""The device side of ``scripts/arm_check.py``: run exported models on sample images, save outputs.

Uses only what a device install of edgekit has (numpy, :mod:`edgekit.runtime`, LiteRT or
onnxruntime, Pillow to read the PNG files) and never imports TensorFlow, so that the same file
runs on the x86 host and, under qemu, in the arm64 Debian root::

    python arm_check_payload.py OUT.npz IMAGE_DIR MODEL...

Every image under IMAGE_DIR (sorted ``*/*.png``) is read with :func:`edgekit.runtime.load_image`,
prepared with :meth:`Model.preprocess` (the file's own metadata: resize, channels, mean/std)
and run as one batch through :meth:`Model.predict`. OUT.npz holds, per model file name,
``<name>:input`` (the prepared float32 batch) and ``<name>:output`` (float32, dequantized for
int8 files). One JSON document on stdout says where it ran (``platform.machine()``, the CPU
part the runtime saw in /proc/cpuinfo, library versions), which backend ran each model, or the
one-line error a model raised; the exit status is 0 even then, so that the caller can report
each model separately. A native crash (a signal) ends the process, which the caller sees.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_part() -> str | None:
    """The 'CPU part' that LiteRT's CPU detection reads (ARM's MIDR part number), if any."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    parts = sorted({line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("CPU part")})
    return ",".join(parts) or None


def where() -> dict:
    import edgekit

    return {
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_part": _cpu_part(),
        "numpy": np.__version__,
        "ai_edge_litert": _version("ai-edge-litert"),
        "onnxruntime": _version("onnxruntime"),
        "edgekit": _version("edgekit"),
        "edgekit_file": edgekit.__file__,
        "host_target": _host_target(),
    }


def _host_target() -> str:
    from edgekit.devices import resolve_host

    return resolve_host().name


def _target_mismatch(model) -> str | None:
    """Why the runtime here would say the file was made for another device, or None."""
    from edgekit.devices import mismatch, resolve_host

    return mismatch(model.metadata.target if model.metadata else None, resolve_host())


def run_model(path: Path, images: list[Path], arrays: dict) -> dict:
    from edgekit.runtime import Model, RuntimeModelError, load_image

    start = time.perf_counter()
    try:
        model = Model(path)
        channels = model.metadata.preprocess.channels if model.metadata else 3
        batch = np.stack([model.preprocess(load_image(image, channels)) for image in images])
        output = np.asarray(model.predict(batch), dtype=np.float32)
    except RuntimeModelError as exc:
        return {"error": str(exc)}
    arrays[f"{path.name}:input"] = batch
    arrays[f"{path.name}:output"] = output
    return {"backend": model.backend, "shape": list(output.shape), "seconds": round(time.perf_counter() - start, 3),
            "target": model.metadata.target if model.metadata else None, "target_mismatch": _target_mismatch(model),
            "qdq_int8_allowed": model.settings.qdq_int8_allowed}


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: arm_check_payload.py OUT.npz IMAGE_DIR MODEL...", file=sys.stderr)
        return 2
    out, image_dir, models = Path(argv[0]), Path(argv[1]), [Path(p) for p in argv[2:]]
    images = sorted(image_dir.glob("*/*.png"))
    if not images:
        print(f"arm_check_payload: no */*.png images under {str(image_dir)!r}", file=sys.stderr)
        return 2
    arrays: dict = {}
    results = {path.name: run_model(path, images, arrays) for path in models}
    np.savez(out, **arrays)
    report = {"where": where(), "images": len(images), "models": results,
              "tensorflow_imported": "tensorflow" in sys.modules}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
