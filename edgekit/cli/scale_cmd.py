"""``edgekit scale``: choose a configuration of a model family that fits a device budget."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, InternalError, emit_json, quiet_tensorflow, run_checked, stdout_to_stderr, target_option

# edgekit.scale.FAMILIES, Rule and BYTES_PER_WEIGHT, repeated so that `edgekit --help` does not
# import TensorFlow; tests/test_scale.py keeps them equal.
FAMILY_NAMES = ("mobilenet_v1", "mobilenet_v2", "efficientnet", "efficientnet_lite")
RULES = ("compound", "width", "resolution")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
BUDGETS = (("max_latency_ms", "latency_ms"), ("max_macs", "macs"), ("max_params", "params"),
           ("max_size_kb", "size_kb"))


@click.command("scale")
@click.argument("family")
@click.option("--max-latency-ms", type=float, default=None, help="Latency budget (needs --latency-model).")
@click.option("--latency-model", default=None, help="A latency model file from 'edgekit latency fit'.")
@click.option("--max-macs", type=float, default=None, help="Multiply-accumulates budget (e.g. 3e8).")
@click.option("--max-params", type=float, default=None, help="Parameter budget.")
@click.option("--max-size-kb", type=float, default=None, help="Weights budget in KB (1024 bytes) at --precision: parameters x bytes per weight.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="int8", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["tflite", "onnx"]), default="tflite", show_default=True)
@target_option("Device target the latency model and the exported candidates are for.")
@click.option("--rule", type=click.Choice(RULES), default="compound", show_default=True,
              help="compound: width, depth and resolution together (MobileNet: alpha x resolution grid); "
                   "width or resolution: that knob only.")
@click.option("--base-resolution", type=click.IntRange(32), default=None,
              help="Scale from this input size instead of the family's 224 (e.g. 32 for 28-32 px images).")
@click.option("--measure", type=click.IntRange(0), default=None,
              help="Export and time the best K for real [default: 3 with --max-latency-ms, else 0].")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="Threads when timing.")
@click.option("--classes", type=click.IntRange(1), default=1000, show_default=True,
              help="Classifier outputs of the counted and measured models.")
@click.option("--data", default=None, help="Images for --proxy-epochs (and int8 calibration of measured files).")
@click.option("--proxy-epochs", type=click.IntRange(1), default=None,
              help="Train each finalist this many epochs on --data; choose by validation accuracy.")
@click.option("--limit", type=click.IntRange(2), default=None, help="Proxy training on only N images.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Keep the exported candidates here (and scale.png).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write the Pareto PNG here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def scale_command(family, max_latency_ms, latency_model, max_macs, max_params, max_size_kb, precision, fmt,
                  target, rule, base_resolution, measure, threads, classes, data, proxy_epochs, limit, out, plot, as_json):
    """Scale FAMILY (mobilenet_v1, mobilenet_v2, efficientnet, efficientnet_lite) to a budget: the
    configuration with the most MACs that fits, with the 'edgekit train' command that builds it."""
    if family not in FAMILY_NAMES:
        raise CliError(f"FAMILY got {family!r}; expected one of {', '.join(FAMILY_NAMES)}")
    given = {name: v for name, v in zip((b[0] for b in BUDGETS),
                                        (max_latency_ms, max_macs, max_params, max_size_kb)) if v is not None}
    if len(given) != 1:
        options = ", ".join("--" + b[0].replace("_", "-") for b in BUDGETS)
        raise CliError(f"give exactly one budget of {options}" + (f" (got {len(given)})" if given else ""))
    if latency_model is not None and not Path(latency_model).is_file():
        raise CliError(f"--latency-model {latency_model!r} does not exist")
    if proxy_epochs is None and limit is not None:
        raise CliError("--limit applies to --proxy-epochs")
    quiet_tensorflow()
    with stdout_to_stderr(as_json):
        from edgekit.scale import Budget, ProxyRecipe, ScaleOptions, get_family, scale

        (name, limit_value), = given.items()
        budget = run_checked(Budget, dict(BUDGETS)[name], float(limit_value))
        proxy = None if proxy_epochs is None else run_checked(ProxyRecipe, proxy_epochs, limit=limit)
        if base_resolution is not None:
            family = run_checked(get_family(family).at_resolution, base_resolution)
        options = run_checked(ScaleOptions, family, budget, rule=rule, precision=precision, fmt=fmt,
                              target=target.name, threads=threads, measure=measure, num_classes=classes,
                              latency_model=latency_model, data=data, proxy=proxy,
                              out=None if out is None else Path(out), plot=None if plot is None else Path(plot))
        try:
            result = run_checked(scale, options)
        except RuntimeError as exc:  # a converter or the runtime failing on a candidate
            raise InternalError(" ".join(str(exc).split())) from None
    if as_json:
        emit_json(result.to_dict())
        return
    _print(result)


def _print(result) -> None:
    c = result.chosen
    doc = result.to_dict()
    under = sum(1 for x in result.candidates if x.under_budget)
    click.echo(f"{doc['family']} ({doc['rule']}), {doc['budget']['option']} {doc['budget']['limit']:g}: "
               f"{under} of {len(result.candidates)} configurations fit")
    click.echo(f"chosen: {c.arch} {c.describe()}: {c.macs:,} MACs, {c.param_count:,} params, "
               f"~{c.size_kb:.0f} KB at {doc['precision']}"
               + (f", predicted {c.predicted_ms:.2f} ms" if c.predicted_ms is not None else "")
               + (f", measured {c.measured_ms:.2f} ms" if c.measured_ms is not None else "")
               + (f", proxy val accuracy {c.val_accuracy:.4f}" if c.val_accuracy is not None else ""))
    click.echo(f"train it: {doc['chosen']['train_command']}")
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.plot is not None:
        click.echo(f"wrote {result.plot}")
