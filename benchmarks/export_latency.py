"""Latency of fp32 vs int8 exports: TFLite (LiteRT) and ONNX (onnxruntime), 1 and 2 threads.

Every file of a folder is timed with ``edgekit.profile``'s interleaved mode (the timing of
``edgekit benchmark``): each file is loaded as ``edgekit profile`` loads it and its engine's own
call timed; every round runs each variant once (a block of ``--repeats`` timed calls after one
discarded call), in an order rotated from round to round, so that frequency scaling and other
load on a shared machine hit every variant alike; the table gives medians over rounds of each
round's mean. ``--spinning`` picks onnxruntime's worker spinning (``edgekit.runtime.Spinning``);
the default is ``edgekit.profile``'s policy, ``during-run`` (workers spin during a run and stop
when it returns, so they take no CPU from the next variant). ``--spinning default`` keeps
onnxruntime's default (workers go on spinning after a run); the variants are then timed one
after another, each alone (its session is closed before the next one starts), because a
spinning session keeps its workers busy between calls (with a 1 s pause after each ONNX
variant, LiteRT fp32 at 2 threads still ran 7.4 ms instead of 3.5 ms) and ratios become ratios
of medians, so the machine must be quiet. ``off`` and the spinning modes differ at 2 threads
only: a worker that sleeps between the graph's ~100 ops must be woken for each one
(MobileNetV2 1.0/224 fp32, quiet machine: 4.8 ms spinning off vs 3.1 ms on).

    python benchmarks/export_latency.py FOLDER [--rounds 20] [--repeats 5] [--threads 1,2]
    python benchmarks/export_latency.py FOLDER --prepare [--alpha 1.0 --size 224]

FOLDER holds NAME_fp32.tflite, NAME_int8.tflite, NAME_fp32.onnx and any number of int8 ONNX
files (NAME_int8*.onnx); an ONNX int8 file is labelled by the quant format and activation type
recorded in its edgekit metadata. ``--prepare`` first makes such a folder: a MobileNetV2
(keras.applications ImageNet weights when they are in the local Keras cache, else seeded random
weights: latency does not depend on the weight values), saved as a run folder whose data is the
Fashion-MNIST sample (resized to the model's input for calibration and validation), exported to
TFLite fp32/int8, ONNX fp32 and ONNX int8 in all four forms: QDQ or QOperator, with int8 or
uint8 activations. The row marked ``default`` is the form ``edgekit export`` picks on this CPU.

Writes benchmarks/results/export_latency_<folder name>.json and .md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.zoo_run import run_note, save_run  # noqa: E402
from edgekit.profile.latency import SPINNING as PROFILE_SPINNING  # noqa: E402
from edgekit.profile.latency import TimingPlan, interleaved  # noqa: E402
from edgekit.profile.runners import load_file  # noqa: E402
from edgekit.runtime.engines import EngineSettings, Spinning, onnx_session  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SAMPLE = REPO / "calibration" / "fashion-mnist"
ONNX_INT8_FORMS = tuple(itertools.product(("qdq", "qoperator"), ("int8", "uint8")))


@dataclass(frozen=True)
class Variant:
    fmt: str  # tflite | onnx
    precision: str  # fp32 | int8
    path: Path
    form: str = ""  # ONNX int8: "qdq int8", "qoperator uint8", ...

    @property
    def label(self) -> str:
        return " ".join(filter(None, (self.fmt, self.precision, self.form)))


# -- timing ---------------------------------------------------------------------------------------

SPINNING = PROFILE_SPINNING  # set from --spinning


def _call(path: Path, threads: int):
    """(the engine's own call on random inputs set once, the loaded file), as edgekit profile times it."""
    loaded = load_file(path, threads, 1, SPINNING)
    return loaded.call, loaded


RUNNERS = ("tflite", "onnx")


def find_variants(folder: Path) -> list[Variant]:
    from edgekit.runtime import read_metadata

    found = []
    for fmt in RUNNERS:
        for path in sorted(folder.glob(f"*_fp32.{fmt}")) + sorted(folder.glob(f"*_int8*.{fmt}")):
            precision = "fp32" if path.stem.endswith("_fp32") else "int8"
            form = ""
            if fmt == "onnx" and precision == "int8":
                meta = read_metadata(path)
                notes = (meta.extra.get("export") or {}) if meta else {}
                form = f"{notes.get('quant_format', '?')} {notes.get('activation_type', '?')}"
            found.append(Variant(fmt, precision, path, form))
    return found


def _plan(rounds: int, repeats: int) -> tuple[TimingPlan, int]:
    """``rounds`` turns of ``repeats`` kept calls each (a block of ``repeats + 1``: the first call of
    a block is discarded when the block has more than one call)."""
    return TimingPlan(warmup=3, runs=rounds * repeats), repeats + 1


def time_alone(variants: list[Variant], threads: int, rounds: int, repeats: int) -> list[list[float]]:
    """Seconds per call of each variant, one value per round, each variant timed alone: its file
    is loaded, warmed, timed for every round, then dropped before the next one."""
    import gc

    plan, block = _plan(rounds, repeats)
    times = []
    for v in variants:
        call, loaded = _call(v.path, threads)
        timed = interleaved({v.label: call}, plan, block=block)
        _raise_errors(timed)
        times.append([ms / 1000 for ms in timed.turns[v.label]])
        del call, loaded
        gc.collect()  # closes the session and joins its (spinning) workers
    return times


def time_variants(variants: list[Variant], threads: int, rounds: int, repeats: int) -> list[list[float]]:
    """Seconds per call of each variant, one value per round; all variants in every round."""
    if SPINNING is Spinning.DEFAULT:
        return time_alone(variants, threads, rounds, repeats)
    loaded = [_call(v.path, threads) for v in variants]
    plan, block = _plan(rounds, repeats)
    timed = interleaved({v.label: call for v, (call, _) in zip(variants, loaded)}, plan, block=block)
    _raise_errors(timed)
    return [[ms / 1000 for ms in timed.turns[v.label][:rounds]] for v in variants]


def _raise_errors(timed) -> None:
    if timed.errors:
        raise SystemExit("; ".join(f"{key}: {why}" for key, why in timed.errors.items()))


def bench(variants: list[Variant], threads_list=(1, 2), rounds: int = 20, repeats: int = 5,
          default_form: str = "") -> list[dict]:
    rows = []
    for threads in threads_list:
        times = dict(zip(variants, time_variants(variants, threads, rounds, repeats)))
        base = {v.fmt: times[v] for v in variants if v.precision == "fp32"}
        for v, ts in times.items():
            rows.append({
                "format": v.fmt, "precision": v.precision, "form": v.form, "label": v.label,
                "default": v.form == default_form, "threads": threads, "file": str(v.path),
                "size_bytes": v.path.stat().st_size, "median_ms": 1000 * statistics.median(ts),
                "q1_ms": 1000 * float(np.percentile(ts, 25)), "q3_ms": 1000 * float(np.percentile(ts, 75)),
                "vs_fp32": paired_ratio(ts, base.get(v.fmt)), "vs_tflite_fp32": paired_ratio(ts, base.get("tflite")),
            })
    return rows


def paired_ratio(times: list[float], base: list[float] | None) -> float | None:
    """Median over rounds of time / base time in the same round: load that changes from round
    to round (a shared machine) cancels out, unlike in a ratio of two medians. Variants timed
    alone (``--spinning default``) share no rounds: the ratio of medians."""
    if base is None:
        return None
    if SPINNING is Spinning.DEFAULT:
        return statistics.median(times) / statistics.median(base)
    return statistics.median(t / b for t, b in zip(times, base))


def onnx_graph_ops(path: Path) -> dict[str, int]:
    """Op counts of the graph onnxruntime runs for ``path`` (after its fusions and layout passes):
    shows which int8 forms become QLinear* kernels and which stay float between Q/DQ pairs."""
    import collections
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        optimized = str(Path(tmp) / "optimized.onnx")
        # quiet: the "hardware specific optimizations" warning
        onnx_session(path, EngineSettings(save_optimized=optimized, quiet=True))
        graph = onnx.load(optimized).graph
    return dict(sorted(collections.Counter(n.op_type for n in graph.node).items()))


# -- checks against the targets ---------------------------------------------------------

def targets(rows: list[dict]) -> list[dict]:
    """int8 ONNX (the default form) <= 0.85x fp32 ONNX at 1 thread; fp32 ONNX <= 1.2x fp32 TFLite."""
    out = []
    for r in rows:
        if r["threads"] == 1 and r["format"] == "onnx" and r["default"] and r["vs_fp32"] is not None:
            out.append({"target": f"default ONNX int8 ({r['form']}) <= 0.85x fp32 ONNX, 1 thread",
                        "value": r["vs_fp32"], "met": r["vs_fp32"] <= 0.85})
        if r["format"] == "onnx" and r["precision"] == "fp32" and r["vs_tflite_fp32"] is not None:
            out.append({"target": f"fp32 ONNX <= 1.2x fp32 TFLite, {r['threads']} thread(s)",
                        "value": r["vs_tflite_fp32"], "met": r["vs_tflite_fp32"] <= 1.2})
    return out


def markdown(doc: dict) -> str:
    # "on" and "off": the values of results written before --spinning replaced --ort-spinning
    if doc.get("ort_spinning", "off") not in (Spinning.DEFAULT.value, "on"):
        how = (f"Batch 1; median over {doc['rounds']} interleaved rounds of {doc['repeats']} timed calls "
               "(each after one discarded call; q1-q3 = quartiles over rounds); ratios are medians of the per-round ratios (both timed in "
               f"the same round); onnxruntime thread spinning {doc.get('ort_spinning', 'off')}.")
    else:
        how = (f"Batch 1; each variant timed alone, {doc['rounds']} rounds of {doc['repeats']} calls, one "
               "variant after another (no interleaving); ratios are ratios of medians; onnxruntime thread "
               "spinning on (its default).")
    lines = [f"# Export latency: {doc['name']}", "", doc["model"], "",
             f"{doc['machine']}, {doc['cpu']}; VNNI: {', '.join(doc['vnni']) or 'no'}; "
             f"onnxruntime {doc['versions']['onnxruntime']}, ai-edge-litert {doc['versions']['ai-edge-litert']}. "
             + how, "",
             f"edgekit's default ONNX int8 form here: **{doc['onnx_default']['form']}** "
             f"({doc['onnx_default']['reason']})", "",
             "| variant | threads | size (KiB) | median (ms) | q1-q3 (ms) | vs own fp32 | vs TFLite fp32 |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        label = r["label"] + (" (default)" if r["default"] else "")
        ratio = "" if r["vs_fp32"] is None else f"{r['vs_fp32']:.2f}x"
        vs_tfl = "" if r["vs_tflite_fp32"] is None else f"{r['vs_tflite_fp32']:.2f}x"
        lines.append(f"| {label} | {r['threads']} | {r['size_bytes'] / 1024:.1f} | {r['median_ms']:.2f} | "
                     f"{r['q1_ms']:.2f}-{r['q3_ms']:.2f} | {ratio} | {vs_tfl} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']:.2f}x | {'yes' if t['met'] else 'NO'} |" for t in doc["targets"]]
    graphs = doc.get("onnx_graphs") or {}
    if graphs:
        lines += ["", "What onnxruntime runs for each ONNX file (op counts after its graph optimizations):", ""]
        lines += [f"- {label}: {', '.join(f'{op} {n}' for op, n in ops.items())}" for label, ops in graphs.items()]
    if doc.get("notes"):
        lines += ["", "Notes:", "", *(f"- {note}" for note in doc["notes"])]
    return "\n".join(lines) + "\n"


# -- making the folder ---------------------------------------------------------------------------

def _keras_cached_weights(alpha: float, size: int) -> Path | None:
    name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha:g}_{size}.h5"
    path = Path.home() / ".keras" / "models" / name
    return path if path.is_file() else None


def prepare(folder: Path, alpha: float, size: int, num_calibration: int, num_validation: int) -> str:
    """A run folder with MobileNetV2 ``alpha``/``size`` and all its exports; returns what the model is."""
    import keras

    from edgekit.export import (ActivationType, ExportOptions, Format, OnnxQuantFormat, Precision,
                                export_model)
    from edgekit.models import create_model
    from edgekit.runtime import PreprocessSpec

    keras.utils.set_random_seed(0)
    weights = _keras_cached_weights(alpha, size)
    model = create_model("mobilenet_v2", (size, size, 3), 1000, alpha=alpha,
                         weights=str(weights) if weights else None)
    what = (f"MobileNetV2 alpha {alpha:g}, {size}x{size}x3, 1000 classes, "
            + (f"ImageNet weights from {weights.name}" if weights else "seeded random weights (no cached ImageNet weights)"))
    save_run(folder, model, "mobilenet_v2", PreprocessSpec(size=(size, size), channels=3), SAMPLE, what)
    common = dict(out_dir=folder, force=True, num_calibration=num_calibration, num_validation=num_validation)
    export_model(folder, ExportOptions(formats=(Format.TFLITE,), precisions=(Precision.FP32, Precision.INT8), **common))
    export_model(folder, ExportOptions(formats=(Format.ONNX,), precisions=(Precision.FP32,), **common))
    for fmt, act in ONNX_INT8_FORMS:
        tmp = folder / f".{fmt}_{act}"
        export_model(folder, ExportOptions(formats=(Format.ONNX,), precisions=(Precision.INT8,),
                                           onnx_quant_format=OnnxQuantFormat(fmt),
                                           onnx_activation_type=ActivationType(act), **{**common, "out_dir": tmp}))
        shutil.move(tmp / f"{folder.name}_int8.onnx", folder / f"{folder.name}_int8_{fmt}_{act}.onnx")
        shutil.rmtree(tmp)
    return what


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("onnxruntime", "ai-edge-litert", "tensorflow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--prepare", action="store_true", help="build and export MobileNetV2 into FOLDER first")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--num-calibration", type=int, default=100)
    parser.add_argument("--num-validation", type=int, default=100)
    parser.add_argument("--note", action="append", default=[], help="a line of text for the results file")
    parser.add_argument("--spinning", choices=[s.value for s in Spinning], default=PROFILE_SPINNING.value,
                        help=f"onnxruntime worker spinning [default: {PROFILE_SPINNING.value}, edgekit profile's "
                             "policy]")
    args = parser.parse_args()
    global SPINNING
    SPINNING = Spinning(args.spinning)
    if args.prepare:
        prepare(args.folder, args.alpha, args.size, args.num_calibration, args.num_validation)
    model = run_note(args.folder)
    variants = find_variants(args.folder)
    if not variants:
        raise SystemExit(f"no *_fp32 / *_int8* .tflite/.onnx files in {args.folder}")
    from edgekit.export.cpu import cpu_flags, default_onnx_quant

    choice = default_onnx_quant()
    default_form = f"{choice.quant_format.value} {choice.activation_type.value}"
    rows = bench(variants, tuple(int(t) for t in args.threads.split(",")), args.rounds, args.repeats, default_form)
    flags = cpu_flags()
    name = args.folder.resolve().name
    doc = {"name": name, "model": model or name, "machine": platform.machine(),
           "cpu": _cpu_name(), "vnni": sorted(f for f in ("avx512_vnni", "avx_vnni") if f in flags),
           "versions": _versions(), "onnx_default": {"form": default_form, "reason": choice.reason},
           "rounds": args.rounds, "repeats": args.repeats, "ort_spinning": SPINNING.value,
           "rows": rows, "targets": targets(rows),
           "onnx_graphs": {v.label: onnx_graph_ops(v.path) for v in variants if v.fmt == "onnx"},
           "notes": args.note}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"export_latency_{name}" + {Spinning.DEFAULT: "_spinning", Spinning.OFF: "_spinning_off"}.get(SPINNING, "")
    (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(doc))
    print(markdown(doc))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


if __name__ == "__main__":
    main()
