"""``edgekit qat``: quantization-aware fine-tuning of a trained run (see ``edgekit.qat``)."""

from __future__ import annotations

import click

from .common import emit_json, quiet_tensorflow, run_checked, run_options, stdout_to_stderr


@click.command("qat")
@click.argument("run")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The QAT run folder to write.")
@click.option("--epochs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--data", default=None, help="Training images  [default: the run's training data]")
@click.option("--target", type=click.Choice(["distill", "labels"]), default="distill", show_default=True,
              help="What QAT fits: distill = the original run's probabilities on each augmented batch (the "
                   "int8 model learns to answer as the float one does); labels = the training labels.")
@run_options(("default", "mirrored"), "Continue an interrupted qat of --out from its last checkpoint.")
def qat_command(run, out, epochs, batch_size, lr, data, target, strategy, resume, limit, seed, as_json):
    """Fine-tune RUN (an 'edgekit train' run) with int8 fake quantization; write a QAT run to --out
    whose learned activation ranges 'edgekit export --quantize int8' writes into the files."""
    quiet_tensorflow()
    with stdout_to_stderr(as_json):
        from ..qat import QatConfig, qat

        cfg = run_checked(QatConfig, run=run, out=out, epochs=epochs, batch_size=batch_size, lr=lr,
                          strategy=strategy, target=target, resume=resume, data=data, limit=limit, seed=seed)
        meta = run_checked(qat, cfg)
    if as_json:
        emit_json(meta)
        return
    final = meta["final"]
    metric = "agreement" if "agreement" in final else "accuracy"
    click.echo(f"qat of {run}: {len(meta['qat']['ranges'])} activation ranges learned; final training {metric} "
               f"{final.get(metric, float('nan')):.4f}; wrote {out}")
