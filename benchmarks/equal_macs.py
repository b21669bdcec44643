"""Compound scaling against width-only and resolution-only scaling at equal MACs (issue 16).

EfficientNet's argument (Tan & Le 2019, arXiv:1905.11946, section 3.3 and figure 3) is that for
the same extra (or fewer) FLOPs, scaling width, depth and resolution together beats scaling one
of them. This script asks ``edgekit scale`` for each rule's choice under one MACs budget, trains
each choice with the same short recipe on the official Fashion-MNIST files, and measures what a
user gets: test accuracy of the Keras model on the 10,000 official test images, and the
exported TFLite fp32 and int8 files' accuracy and latency (``edgekit benchmark``, 1 thread).

The short recipe (documented here and in the results file): ``edgekit scale FAMILY
--base-resolution B --max-macs M --rule R --classes 10 --json`` gives ``chosen.train_command``;
that command is run with ``--data /usr/share/datasets/fashion-mnist --epochs E --limit N``
(defaults: 5 epochs on 12,000 training images, the rest of the CLI's defaults), then ``edgekit
evaluate RUN --split test`` and ``edgekit benchmark RUN --formats tflite --quantize fp32,int8
--threads 1 --num-images 2000``. Fashion-MNIST's images are 28x28, so the rules are anchored at
``--base-resolution`` (default 64: EfficientNet-Lite0 at 64 px, about 31M MACs), not at 224.

    .venv/bin/python benchmarks/equal_macs.py --out runs/equal_macs                # Lite, 21M MACs
    .venv/bin/python benchmarks/equal_macs.py --out runs/equal_macs --rules width  # one rule at a time

Results accumulate in OUT/results.json (a rule already there is not trained again); the table
goes to ``benchmarks/results/equal_macs_FAMILY.{json,md}``. One seed per rule: differences under
about 1 pp are within what another seed moves (benchmarks/results/small_data.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cli_json import edgekit_json  # noqa: E402

FMNIST = Path("/usr/share/datasets/fashion-mnist")
RESULTS = REPO / "benchmarks" / "results"
RULES = ("compound", "width", "resolution")


def edgekit(*args: str) -> dict:
    return edgekit_json(*args, who="equal_macs benchmark")


def train_args(train_command: str, data: Path, out: Path, extra: list[str]) -> list[str]:
    """``scale``'s train command (``edgekit train ARCH ... --data DIR --out RUN``) with this run's
    data, folder and recipe options."""
    words = shlex.split(train_command)
    if words[:2] != ["edgekit", "train"]:
        raise SystemExit(f"equal_macs benchmark: unexpected train command {train_command!r}")
    words = words[2:]
    for option, value in (("--data", str(data)), ("--out", str(out))):
        words[words.index(option) + 1] = value
    return ["train", *words, *extra]


def run_rule(rule: str, args: argparse.Namespace) -> dict:
    doc = edgekit("scale", args.family, "--base-resolution", str(args.base_resolution), "--max-macs",
                  f"{args.max_macs:g}", "--rule", rule, "--classes", "10")
    chosen, run = doc["chosen"], args.out / rule
    extra = ["--epochs", str(args.epochs), "--seed", str(args.seed)] + (["--limit", str(args.limit)] if args.limit else [])
    start = time.perf_counter()
    edgekit(*train_args(chosen["train_command"], args.data, run, extra))
    seconds = time.perf_counter() - start
    keras = edgekit("evaluate", str(run), "--data", str(args.data), "--split", "test")
    bench = edgekit("benchmark", str(run), "--data", str(args.data), "--formats", "tflite", "--quantize",
                    "fp32,int8", "--threads", "1", "--num-images", str(args.num_images), "--out", str(run / "benchmark"))
    files = {r["precision"]: {"accuracy": r["accuracy"], "agreement": r["agreement"], "size_bytes": r["size_bytes"],
                              "latency_p50_ms": (r["latency_ms"] or {}).get("p50"), "status": r["status"]}
             for r in bench["rows"]}
    return {"rule": rule, "arch": chosen["arch"], "overrides": chosen["overrides"], "input_size": chosen["input_size"],
            "macs": chosen["macs"], "param_count": chosen["param_count"],
            "command": " ".join(train_args(chosen["train_command"], Path("DATA"), Path("RUN"), extra)),
            "test_accuracy": keras["accuracy"], "test_images": keras["images"], "train_seconds": round(seconds, 1),
            "tflite": files, "benchmark_images": args.num_images, "load_average": os.getloadavg()[0]}


def knobs(row: dict) -> str:
    o = row["overrides"]
    parts = [f"{k} {o[k]:g}" for k in ("alpha", "width", "depth") if k in o]
    return ", ".join(parts) + f" at {row['input_size']} px"


def markdown(doc: dict) -> str:
    a = doc["args"]
    lines = [f"# Equal MACs on Fashion-MNIST: compound vs width-only vs resolution-only ({a['family']})", "",
             f"{doc['machine']}. Budget `--max-macs {a['max_macs']:g}`, rules anchored at `--base-resolution "
             f"{a['base_resolution']}`; each rule's choice trained {a['epochs']} epochs on "
             f"{a['limit'] or 'all'} training images (seed {a['seed']}), Keras accuracy on the "
             "10,000 official test images, TFLite files' accuracy and 1-thread p50 latency on "
             f"{a['num_images']} of them (`edgekit benchmark`; files timed one model after another on a "
             "shared 2-core VM, whose speed drifts by up to ~20% over tens of minutes: indicative). "
             "`benchmarks/equal_macs.py`.", "",
             "| rule | chosen | MACs | params | Keras test acc. | TFLite fp32 acc. / ms | TFLite int8 acc. / ms "
             "| train s |", "|---|---|---|---|---|---|---|---|"]
    for rule in RULES:
        row = doc["runs"].get(rule)
        if row is None:
            continue
        t = row["tflite"]

        def cell(p: str) -> str:
            f = t.get(p) or {}
            if f.get("accuracy") is None:
                return f.get("status", "-")
            return f"{100 * f['accuracy']:.2f}% / {f['latency_p50_ms']:.3f}"
        lines.append(f"| {rule} | {row['arch']} {knobs(row)} | {row['macs'] / 1e6:.2f}M | {row['param_count']:,} | "
                     f"{100 * row['test_accuracy']:.2f}% | {cell('fp32')} | {cell('int8')} | {row['train_seconds']:.0f} |")
    lines += ["", "Commands (DATA = /usr/share/datasets/fashion-mnist):", ""]
    lines += [f"- {rule}: `edgekit {doc['runs'][rule]['command']}`" for rule in RULES if rule in doc["runs"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--family", default="efficientnet_lite")
    p.add_argument("--base-resolution", type=int, default=64)
    p.add_argument("--max-macs", type=float, default=2.1e7)
    p.add_argument("--rules", default=",".join(RULES))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit", type=int, default=12000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-images", type=int, default=2000)
    p.add_argument("--data", type=Path, default=FMNIST)
    args = p.parse_args()
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    if not set(rules) <= set(RULES):
        p.error(f"--rules got {args.rules!r}; expected some of {', '.join(RULES)}")
    if not args.data.is_dir():
        p.error(f"--data {str(args.data)!r} is not a folder (Fashion-MNIST: apt-get install dataset-fashion-mnist)")
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "results.json"
    doc = json.loads(store.read_text()) if store.is_file() else {"runs": {}}
    doc["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    doc["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"
    for rule in rules:
        if rule in doc["runs"]:
            print(f"equal_macs: {rule} already in {store}", file=sys.stderr)
            continue
        doc["runs"][rule] = run_rule(rule, args)
        store.write_text(json.dumps(doc, indent=2))
    name = f"equal_macs_{args.family}"
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
