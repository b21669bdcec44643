"""``edgekit quickstart``: the README's main job (grows with each layer of the pipeline)."""

from __future__ import annotations

import click

from .common import emit_json, quiet_tensorflow, stdout_to_stderr
from .tables import print_table

QUICK_ZOO = ["mobilenet_v1", "mobilenet_v2", "efficientnet_b0", "efficientnet_lite0", "lenet5"]


@click.command("quickstart")
@click.option("--full-zoo", is_flag=True, help="Count every registered model (about 30 s more).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def quickstart_command(full_zoo: bool, as_json: bool) -> None:
    """Run edgekit's main job: the zoo's exact counts, then the small edge model it trains."""
    quiet_tensorflow()
    with stdout_to_stderr(as_json):
        from ..models import list_models
        from ..models.report import summarize, zoo_rows
        click.echo("edgekit quickstart: counting the model zoo at default input sizes", err=True)
        rows = zoo_rows(None if full_zoo else QUICK_ZOO if set(QUICK_ZOO) <= set(list_models()) else None)
        small = summarize("mobilenet_v2", input_size=32, channels=3, num_classes=10, alpha=0.35)
    if as_json:
        emit_json({"zoo": [{"name": r.name, "params": r.params, "macs": r.macs} for r in rows],
                   "edge_model": {"name": "mobilenet_v2 alpha 0.35, 32x32x3, 10 classes",
                                  "params": small.params, "macs": small.macs}})
        return
    print_table("model zoo (1000 classes, default input size)", ["model", "input", "params", "MACs"],
                [[r.name, "x".join(map(str, r.input_shape)), f"{r.params:,}", f"{r.macs / 1e6:.1f}M"]
                 for r in rows])
    click.echo(f"edge model for Fashion-MNIST: mobilenet_v2 alpha 0.35 at 32x32: "
               f"{small.params:,} params, {small.macs / 1e6:.2f}M MACs")
