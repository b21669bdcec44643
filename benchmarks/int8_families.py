"""int8 across families: plain post-training quantization, PTQ with the accuracy budget's float
fallback (the default), and quantization-aware training, side by side (issue 13).

For each run folder it calls the CLI exactly as a user would:

- ``edgekit export RUN --format tflite,onnx --quantize fp32,int8 --num-validation N`` (the
  defaults: 0.5 pp and 98.5% agreement budget) -> rows ``ptq+fallback``, and rows ``ptq`` (plain
  post-training int8) from the budget's notes on the file before any layer was kept float; a run
  written by ``edgekit qat`` (no budget applies) gives rows ``qat``;
- ``edgekit profile FILE --threads 1 --json`` on every file -> median latency at 1 thread;
- ``RUN=SOURCE`` (a QAT run and the run it was fine-tuned from) -> the ``qat`` rows' Keras column,
  drop and agreement are against SOURCE (``edgekit evaluate SOURCE`` and ``edgekit evaluate FILE
  --reference SOURCE`` on the same images); the QAT run's own float accuracy is kept in the JSON.

Each row: Keras accuracy, the file's accuracy, the drop in pp, top-1 agreement with Keras, the
size as a fraction of the fp32 file of the same format, the 1-thread latency, and the layers the
budget kept float. Results go to ``OUT.json`` and ``OUT.md``.

    .venv/bin/python benchmarks/int8_families.py /work/runs/fm_b0 --num-validation 10000 \
        --out benchmarks/results/int8_families
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.cli_json import edgekit_json  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def _json(args: list[str]) -> dict:
    return edgekit_json(*args, ok=(0, 1), who="int8_families")  # export exits 1 on a missed budget


def _latency_ms(path: str) -> float:
    return _json(["profile", path, "--threads", "1", "--min-time", "3"])["latency_ms"]["p50"]


def _agreement(path: str, reference: str, num_validation: int) -> float | None:
    doc = _json(["evaluate", path, "--data", DATA, "--split", "test", "--limit", str(num_validation),
                 "--reference", reference])
    return doc.get("agreement")


def _row(run: str, variant: str, fmt: str, keras: float, acc: float, agreement: float, size: int,
         fp32_size: int, latency: float, fp32_latency: float, kept: int, budget: str | None) -> dict:
    return {"run": Path(run).name, "variant": variant, "format": fmt, "keras_accuracy": round(keras, 2),
            "accuracy": round(acc, 2), "drop_pp": round(keras - acc, 2), "agreement": round(agreement, 2),
            "size_ratio": round(size / fp32_size, 3), "size_bytes": size, "latency_ms_1t": round(latency, 4),
            "fp32_latency_ms_1t": round(fp32_latency, 4), "kept_float": kept, "budget": budget}


def export_rows(run: str, qat_reference: str | None, num_validation: int, formats: str) -> list[dict]:
    """One default export of RUN (fp32 + int8, TFLite + ONNX). The budget's notes hold the plain
    int8 file's accuracy, agreement, size and latency, so the ``ptq`` row needs no second export;
    for a QAT run (no budget) the one row is ``qat``, its agreement taken against the source run."""
    out = tempfile.mkdtemp(prefix=f"int8fam-{Path(run).name}-")
    report = _json(["export", run, "--format", formats, "--quantize", "fp32,int8",
                    "--num-validation", str(num_validation), "--out", out])
    keras = report["keras_accuracy"] * 100
    fp32 = {f["format"]: f for f in report["files"] if f["precision"] == "fp32"}
    rows = []
    for f in (f for f in report["files"] if f["precision"] == "int8"):
        base = fp32[f["format"]]
        fp32_ms, file_ms = _latency_ms(base["path"]), _latency_ms(f["path"])
        acc = f["accuracy"] * 100
        if qat_reference:  # Keras column, drop and agreement: against the source run, not the QAT float model
            agreement = _agreement(f["path"], qat_reference, num_validation) * 100
            source = _json(["evaluate", qat_reference, "--data", DATA, "--split", "test",
                            "--limit", str(num_validation)])["accuracy"] * 100
            row = _row(run, "qat", f["format"], source, acc, agreement, f["size_bytes"], base["size_bytes"],
                       file_ms, fp32_ms, 0, "not applied (QAT run)")
            rows.append({**row, "qat_float_accuracy": round(keras, 2), "source_run": qat_reference})
            continue
        b = f["notes"]["budget"]
        kept = len(b["kept_float"])
        # Latency of the plain file: the budget timed both with the same loop; scale ours by its ratio.
        plain_ms = file_ms * b["plain_latency_ms"] / b["latency_ms"] if kept else file_ms
        rows.append(_row(run, "ptq", f["format"], keras, b["plain_percent"], b["plain_agreement"],
                         b["plain_size_bytes"], base["size_bytes"], plain_ms, fp32_ms, 0, None))
        rows.append(_row(run, "ptq+fallback", f["format"], keras, acc, f["agreement"] * 100, f["size_bytes"],
                         base["size_bytes"], file_ms, fp32_ms, kept, b["summary"]))
    return rows


def table(rows: list[dict]) -> str:
    head = ("| run | variant | format | Keras | int8 | drop pp | agreement | size vs fp32 | "
            "ms 1 thread (fp32) | layers kept float |\n|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['run']} | {r['variant']} | {r['format']} | {r['keras_accuracy']:.2f}% | {r['accuracy']:.2f}% | "
        f"{r['drop_pp']:+.2f} | {r['agreement']:.2f}% | {r['size_ratio']:.2f}x | "
        f"{r['latency_ms_1t']:.3f} ({r['fp32_latency_ms_1t']:.3f}) | {r['kept_float']} |\n" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders; RUN=REFERENCE for a QAT run and its source run")
    parser.add_argument("--num-validation", type=int, default=10000)
    parser.add_argument("--formats", default="tflite,onnx")
    parser.add_argument("--out", required=True, help="path stem for OUT.json and OUT.md")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    rows: list[dict] = []
    for item in args.runs:
        run, _, reference = item.partition("=")
        rows += export_rows(run, reference or None, args.num_validation, args.formats)
        print(table(rows), file=sys.stderr)
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table(rows))


if __name__ == "__main__":
    main()
