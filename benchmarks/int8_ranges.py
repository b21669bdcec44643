"""Post-training int8 choices measured across models (issue 13, item 3): a change is kept only
when it helps on at least three models of two families.

Each variant exports int8 TFLite and ONNX with the accuracy budget off (``max_accuracy_drop``
None), so the figures are those of plain post-training quantization, and records accuracy and
top-1 agreement with Keras on the export's validation images:

- ``default``: what ``edgekit export`` does (300 calibration images; ONNX with 7-bit weights
  (reduce_range) on an x86 CPU without VNNI);
- ``full_range``: ONNX with 8-bit weights on this CPU (the default before reduce_range);
- ``calib_1000``: 1,000 calibration images instead of 300.

    .venv/bin/python benchmarks/int8_ranges.py /work/runs/fm_i3 /work/runs/fam_mobilenet_v1 \
        /work/runs/fam_efficientnet_lite0 --num-validation 2000 --out benchmarks/results/int8_ranges
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VARIANTS = ("default", "full_range", "calib_1000")


def run_variant(run: str, variant: str, num_validation: int) -> dict:
    from edgekit.devices import resolve_host
    from edgekit.export import ExportOptions, Format, Precision, export_model

    host = resolve_host()
    patched = replace(host.onnx_int8, reduce_range=False) if variant == "full_range" else host.onnx_int8
    # The host target with full-range weights: the ONNX int8 flavour comes from the export's target.
    options = ExportOptions(formats=(Format.TFLITE, Format.ONNX), precisions=(Precision.INT8,),
                            num_validation=num_validation, max_accuracy_drop=None,
                            num_calibration=1000 if variant == "calib_1000" else None,
                            target=replace(host, onnx_int8=patched))
    with tempfile.TemporaryDirectory() as out:
        report = export_model(run, replace(options, out_dir=Path(out)), log=lambda line: None)
    rows = {}
    for f in report.files:
        v = f.validation
        rows[f.target.format.value] = {"accuracy": v.accuracy, "agreement": v.agreement,
                                       "size_bytes": f.size_bytes}
    return {"run": run, "variant": variant, "keras_accuracy": report.keras_accuracy,
            "validation": report.validation_source, "reduce_range": patched.reduce_range, "files": rows}


def markdown(results: list[dict]) -> str:
    lines = ["| run | variant | Keras acc. | TFLite int8 acc. | TFLite agreement | ONNX int8 acc. | ONNX agreement |",
             "|---|---|---|---|---|---|---|"]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    for r in results:
        t, o = r["files"].get("tflite", {}), r["files"].get("onnx", {})
        lines.append(f"| {Path(r['run']).name} | {r['variant']} | {pct(r['keras_accuracy'])} | "
                     f"{pct(t.get('accuracy'))} | {pct(t.get('agreement'))} | {pct(o.get('accuracy'))} | "
                     f"{pct(o.get('agreement'))} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--num-validation", type=int, default=2000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", required=True, help="path prefix for .json and .md")
    args = parser.parse_args(argv)
    results = []
    for run in args.runs:
        for variant in args.variants.split(","):
            results.append(run_variant(run, variant, args.num_validation))
            print(markdown(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    Path(args.out + ".json").write_text(json.dumps(results, indent=1))
    Path(args.out + ".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
