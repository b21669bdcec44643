"""Latency of fp32 vs int8 exports: TFLite (LiteRT) and ONNX (onnxruntime), 1 and 2 threads.

Runs are interleaved (fp32, int8, fp32, int8, ... for each runtime and thread count) so that
frequency scaling and other load hit every variant alike; medians are reported. onnxruntime
sessions use ``session.intra_op.allow_spinning=0`` so their idle threads do not spin and steal
the CPU from the LiteRT run that follows.

    python benchmarks/export_latency.py RUN_DIR_OR_OUT_DIR [--rounds 20] [--repeats 20]

The folder must hold NAME_fp32.tflite / NAME_int8.tflite / NAME_fp32.onnx / NAME_int8.onnx
(as ``edgekit export --format tflite,onnx --quantize fp32,int8`` writes them); missing files
are skipped. Writes benchmarks/results/export_latency_<name>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _tflite_runner(path: Path, threads: int):
    from edgekit.runtime import Model

    model = Model(path, threads=threads)
    return lambda x: model.predict(x)


def _onnx_runner(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


RUNNERS = {".tflite": _tflite_runner, ".onnx": _onnx_runner}


def find_files(folder: Path) -> dict[tuple[str, str], Path]:
    files = {}
    for suffix in RUNNERS:
        for precision in ("fp32", "int8"):
            hits = sorted(folder.glob(f"*_{precision}{suffix}"))
            if hits:
                files[(suffix[1:], precision)] = hits[0]
    return files


def _input_for(path: Path) -> np.ndarray:
    from edgekit.runtime import read_metadata

    meta = read_metadata(path)
    if meta is None:
        raise SystemExit(f"{path} has no edgekit metadata; export it with edgekit export")
    h, w = meta.preprocess.size
    c = meta.preprocess.channels
    shape = (1, c, h, w) if meta.layout == "NCHW" else (1, h, w, c)
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def bench(files: dict, threads_list=(1, 2), rounds: int = 20, repeats: int = 20) -> list[dict]:
    rows = []
    for threads in threads_list:
        for fmt in ("tflite", "onnx"):
            variants = {p: files[(fmt, p)] for p in ("fp32", "int8") if (fmt, p) in files}
            if not variants:
                continue
            runners = {p: RUNNERS["." + fmt](path, threads) for p, path in variants.items()}
            inputs = {p: _input_for(path) for p, path in variants.items()}
            times = {p: [] for p in runners}
            for p, run in runners.items():  # warm-up
                for _ in range(5):
                    run(inputs[p])
            for _ in range(rounds):  # interleaved: each round times every variant once
                for p, run in runners.items():
                    t = time.perf_counter()
                    for _ in range(repeats):
                        run(inputs[p])
                    times[p].append((time.perf_counter() - t) / repeats)
            base = statistics.median(times["fp32"]) if "fp32" in times else None
            for p, ts in times.items():
                med = statistics.median(ts)
                rows.append({"format": fmt, "precision": p, "threads": threads, "file": str(variants[p]),
                             "size_bytes": variants[p].stat().st_size, "median_ms": 1000 * med,
                             "vs_fp32": None if base is None else med / base})
    return rows


def markdown(rows: list[dict], name: str) -> str:
    lines = [f"# Export latency: {name}", "", f"{platform.machine()}, {platform.processor() or 'cpu'}; "
             "medians of interleaved rounds, batch 1", "",
             "| format | precision | threads | size (KiB) | median (ms) | vs fp32 |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "" if r["vs_fp32"] is None else f"{r['vs_fp32']:.2f}x"
        lines.append(f"| {r['format']} | {r['precision']} | {r['threads']} | {r['size_bytes'] / 1024:.1f} | "
                     f"{r['median_ms']:.4f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = find_files(args.folder)
    if not files:
        raise SystemExit(f"no *_fp32/*_int8 .tflite/.onnx files in {args.folder}")
    from edgekit.export.cpu import cpu_flags, default_onnx_quant

    rows = bench(files, tuple(int(t) for t in args.threads.split(",")), args.rounds, args.repeats)
    name = args.folder.resolve().name
    flags = cpu_flags()
    doc = {"name": name, "machine": platform.machine(), "avx2": "avx2" in flags,
           "vnni": sorted(f for f in ("avx512_vnni", "avx_vnni") if f in flags),
           "onnx_default": default_onnx_quant().reason, "rounds": args.rounds, "repeats": args.repeats, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"export_latency_{name}.json").write_text(json.dumps(doc, indent=2))
    (args.out / f"export_latency_{name}.md").write_text(markdown(rows, name))
    print(markdown(rows, name))


if __name__ == "__main__":
    main()
