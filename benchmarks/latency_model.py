"""Latency model accuracy on held-out zoo configurations (issue 16, "Done when").

Fits a latency model within --minutes on a training sample of the zoo grid (edgekit.latency.fit,
with the held-out set excluded), then exports and measures every held-out configuration
(MobileNet v1/v2 at widths and resolutions not used for fitting, EfficientNet-Lite and B at
other resolutions) and reports predicted vs measured median, the share within +-10%, RMSPE and a
per-family table. Timing is edgekit.latency.measure's (each file interleaved with the fit's
reference model and normalized to the reference's speed during the fit, as the fit's samples
are), not a loop here.

    .venv/bin/python benchmarks/latency_model.py --format tflite --precision int8 --minutes 30
    .venv/bin/python benchmarks/latency_model.py --minutes 1 --held-out 3 --tag smoke   # a quick check
    .venv/bin/python benchmarks/latency_model.py --refit benchmarks/results/latency_model_tflite_int8.json

``--refit RESULTS_JSON`` fits the current predictor again on the timings an earlier run recorded
(its fit samples and held-out measurements; nothing is measured again), to compare fitting
methods on the same measurements; it writes ``..._refit`` results.

Writes benchmarks/results/latency_model_<format>_<precision>[_<tag>].{md,json}. int8 files are
calibrated on random images (only their latency matters). Run it on a quiet machine: the figures
are only as good as the timings they are fitted on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.latency import Config, fit  # noqa: E402
from edgekit.latency.fit import fit_samples  # noqa: E402
from edgekit.latency.measure import ReferenceTimer, export_config, normalize  # noqa: E402
from edgekit.latency.model import LatencyModel, rmspe, within  # noqa: E402
from edgekit.tempfiles import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def held_out() -> list[Config]:
    """Configurations the fit never sees: widths and resolutions outside the zoo grid."""
    return ([Config.of("mobilenet_v1", {"alpha": a}, r) for a, r in ((0.35, 144), (0.6, 176), (0.9, 208), (0.5, 112))]
            + [Config.of("mobilenet_v2", {"alpha": a}, r) for a, r in ((0.4, 112), (0.6, 144), (0.85, 176), (1.1, 208),
                                                                        (0.65, 200))]
            + [Config.of(f"efficientnet_lite{b}", None, r) for b, r in ((0, 176), (1, 208), (2, 232), (3, 248), (4, 264))]
            + [Config.of(f"efficientnet_b{b}", None, r) for b, r in ((0, 176), (1, 208), (2, 236))])


def measure(configs: list[Config], fmt: str, precision: str, threads: int, min_time: float,
            baseline_ms: float) -> list[dict]:
    """Each held-out configuration timed with the fit's reference model, at the reference's
    speed during the fit (``baseline_ms``), as the fit's own samples are."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-latency-bench-") as tmp:
        timer = ReferenceTimer([fmt], [precision], Path(tmp), threads=threads, min_time_s=min_time)
        for config in configs:
            path = export_config(config, [fmt], [precision], Path(tmp))[(fmt, precision)]
            timing = timer.time(config, path, (fmt, precision))
            path.unlink()
            ms, reference_ms = timing.ms, timing.reference_ms
            (_, normalized), = normalize([timing], baseline_ms)[0]
            rows.append({**config.to_dict(), "family": config.family, "measured_ms": normalized, "raw_ms": ms,
                         "reference_ms": reference_ms})
            print(f"held out {config.key}: {ms:.3f} ms, reference {reference_ms:.3f} ms: {normalized:.3f} ms at the "
                  f"fit's reference speed", file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict], model_doc: dict, args) -> tuple[str, dict]:
    pred, meas = [r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows]
    families = {}
    for fam in sorted({r["family"] for r in rows}):
        sub = [r for r in rows if r["family"] == fam]
        families[fam] = {"n": len(sub), "within_10pct": within([r["predicted_ms"] for r in sub], [r["measured_ms"] for r in sub]),
                         "rmspe": rmspe([r["predicted_ms"] for r in sub], [r["measured_ms"] for r in sub])}
    key = f"{args.format}/{args.precision}"
    summary = {"key": key, "threads": args.threads, "minutes": args.minutes,
               "fit_minutes": round(args.fit_minutes, 2), "device": model_doc["device"],
               "fit_configurations": len(model_doc["predictors"][key]["samples"]),
               "fit_rmspe": model_doc["predictors"][key]["fit_rmspe"], "held_out": len(rows),
               "within_10pct": within(pred, meas), "rmspe": rmspe(pred, meas), "families": families, "rows": rows}
    refit = [f"Refitted with the current fit on the timings of `{args.refit}` (nothing measured again).", ""] \
        if args.refit else []
    lines = [f"# Latency model, {key}, {args.threads} thread(s)", "", *refit,
             f"Device: {model_doc['device']['target']} ({model_doc['device']['cpu_model']}). Fitted in "
             f"{args.fit_minutes:.1f} min (budget {args.minutes:g}) on {summary['fit_configurations']} configurations (fit RMSPE "
             f"{summary['fit_rmspe']}%); {len(rows)} held-out configurations: "
             f"**{100 * summary['within_10pct']:.0f}% within +-10%, RMSPE {summary['rmspe']:.1f}%**. "
             f"Channel tiles: {model_doc['predictors'][key].get('channel_tiles') or 'none'}; channel alignments: "
             f"{model_doc['predictors'][key].get('channel_aligns') or 'none'}.", "", *_reference_line(model_doc, key, rows),
             "| family | n | within +-10% | RMSPE % |", "|---|---|---|---|"]
    lines += [f"| {f} | {v['n']} | {100 * v['within_10pct']:.0f}% | {v['rmspe']:.1f} |" for f, v in families.items()]
    lines += ["", "| configuration | measured ms | predicted ms | error % |", "|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['measured_ms']:.3f} | {r['predicted_ms']:.3f} | "
              f"{100 * (r['predicted_ms'] - r['measured_ms']) / r['measured_ms']:+.1f} |" for r in rows]
    return "\n".join(lines) + "\n", summary


def refit(args) -> tuple[LatencyModel, list[dict]]:
    """The model fitted again on an earlier run's recorded samples, and its held-out rows (with
    their recorded measurements); ``args`` takes that run's format, precision, threads and times."""
    old = json.loads(Path(args.refit).read_text(encoding="utf-8"))
    key = old["key"]
    args.format, args.precision = key.split("/")
    args.threads, args.minutes, args.fit_minutes = old["threads"], old["minutes"], old["fit_minutes"]
    args.tag = args.tag or "refit"
    recorded = old["model"]["predictors"][key]
    samples = [(Config.of(s["arch"], s["overrides"], s["input_size"]), s["measured_ms"]) for s in recorded["samples"]]
    predictor = fit_samples(samples, args.precision, recorded.get("excluded", []))
    model = LatencyModel.from_dict({**old["model"], "predictors": {key: predictor.to_dict()}})
    rows = [{k: r[k] for k in ("config", "arch", "overrides", "input_size", "family", "measured_ms", "raw_ms",
                               "reference_ms") if k in r} for r in old["rows"]]
    return model, rows


def _reference_line(model_doc: dict, key: str, rows: list[dict]) -> list[str]:
    ref = model_doc["predictors"][key].get("reference")
    if not ref:
        return []
    held = [r["reference_ms"] for r in rows if "reference_ms" in r]
    during = f"; while the held-out ones were timed {min(held):.3f}-{max(held):.3f} ms" if held else ""
    return [f"Reference {ref['config']}, timed beside every file: {ref['min_ms']:.3f}-{ref['max_ms']:.3f} ms during "
            f"the fit (median {ref['baseline_ms']:.3f} ms){during}. Measured ms are at the reference's median speed "
            "during the fit (raw ms in the JSON).", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="tflite", choices=["tflite", "onnx"])
    parser.add_argument("--precision", default="int8", choices=["fp32", "int8"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per file")
    parser.add_argument("--held-out", type=int, default=None, help="measure only the first N held-out configurations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--refit", default=None, help="a results JSON of an earlier run: fit again on its timings")
    args = parser.parse_args()
    if args.refit:
        model, rows = refit(args)
    else:
        held = held_out()[: args.held_out] if args.held_out else held_out()
        start = time.monotonic()
        model = fit((args.format,), (args.precision,), threads=args.threads, minutes=args.minutes, seed=args.seed,
                    exclude=held, min_time_s=args.min_time)
        args.fit_minutes = (time.monotonic() - start) / 60
        reference = model.predictor(args.format, args.precision).reference
        rows = measure(held, args.format, args.precision, args.threads, args.min_time, reference["baseline_ms"])
    for row in rows:
        row["predicted_ms"] = model.predict_config(row["arch"], row["overrides"], row["input_size"], args.format,
                                                   args.precision)
    text, summary = report(rows, model.to_dict(), args)
    stem = f"latency_model_{args.format}_{args.precision}" + (f"_{args.tag}" if args.tag else "")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"{stem}.md", text)
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps({**summary, "model": model.to_dict()}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
