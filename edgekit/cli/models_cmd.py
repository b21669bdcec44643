"""``edgekit models`` and ``edgekit summary``: the zoo and exact per-layer counts."""

from __future__ import annotations

import click

from .common import CliError, emit_json, quiet_tensorflow, run_checked, stdout_to_stderr
from .tables import print_table


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


@click.command("models")
@click.option("--family", default=None, help="Only models whose family starts with this.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def models_command(family: str | None, as_json: bool) -> None:
    """List the zoo with params and MACs at each model's default input size."""
    quiet_tensorflow()
    with stdout_to_stderr(as_json):
        from ..models import get_spec, list_models
        from ..models.report import zoo_rows
        names = [n for n in list_models() if family is None or get_spec(n).family.startswith(family)]
        if not names:
            raise CliError(f"--family got {family!r}; no model family starts with it")
        rows = zoo_rows(names)
    if as_json:
        emit_json({"models": [{"name": r.name, "family": r.family, "input_shape": list(r.input_shape),
                               "params": r.params, "macs": r.macs, "reference": r.reference}
                              for r in rows]})
        return
    print_table("edgekit model zoo (1000 classes, default input size)",
                ["model", "input", "params", "MACs", "reference"],
                [[r.name, "x".join(map(str, r.input_shape)), f"{r.params:,}", _human(r.macs), r.reference]
                 for r in rows])


@click.command("summary")
@click.argument("arch")
@click.option("--alpha", type=float, default=None, help="Width multiplier (MobileNet v1/v2).")
@click.option("--width", type=float, default=None, help="Width coefficient (EfficientNet).")
@click.option("--depth", type=float, default=None, help="Depth coefficient (EfficientNet).")
@click.option("--input-size", type=click.IntRange(1), default=None, help="Square input size N.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Input channels.")
@click.option("--classes", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--layers/--no-layers", "show_layers", default=True, show_default=True,
              help="Per-layer rows (in the table and the JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def summary_command(arch: str, alpha, width, depth, input_size, channels, classes,
                    show_layers: bool, as_json: bool) -> None:
    """Per-layer table (name, type, output shape, params, MACs) and totals.

    ARCH is a zoo name (see 'edgekit models') or a .keras file.
    """
    quiet_tensorflow()
    params = {"alpha": alpha, "width": width, "depth": depth}
    if arch.endswith(".keras") and any(v is not None for v in params.values()):
        raise CliError("--alpha/--width/--depth apply to zoo names, not to a .keras file")
    with stdout_to_stderr(as_json):
        from ..models.report import summarize
        counted = run_checked(summarize, arch, input_size,
                              None if channels is None else int(channels), classes, **params)
    if as_json:
        emit_json(counted.to_dict(per_layer=show_layers))
        return
    rows = [[r.name, r.type, "x".join("?" if d is None else str(d) for d in r.output_shape[1:]),
             f"{r.params:,}", f"{r.macs:,}"] for r in counted.layers] if show_layers else []
    print_table(f"{counted.name}", ["layer", "type", "output", "params", "MACs"], rows,
                footer=["total", "", "", f"{counted.params:,}", f"{counted.macs:,}"])
    click.echo(f"params {counted.params:,} (trainable {counted.trainable_params:,}, "
               f"non-trainable {counted.non_trainable_params:,}); MACs {counted.macs:,} "
               f"({_human(counted.macs)}) at batch 1")
