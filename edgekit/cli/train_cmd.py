"""``edgekit train`` and ``edgekit augment``."""

from __future__ import annotations

import click

from edgekit.run_record import MODEL, RECORD
from edgekit.stopping import RESTORE_RULES, kept_weights

from .common import (emit_json, native_stderr_silenced, quiet_missing_glyphs, quiet_tensorflow, run_checked,
                     run_options, stdout_to_stderr)

# edgekit.data.augment.DEFAULT_AUGMENT, repeated so that `edgekit --help` does not import
# TensorFlow; tests/test_augment.py keeps the two equal.
DEFAULT_AUGMENT = "crop,scale"


@click.command("train")
@click.argument("arch")
@click.option("--data", required=True, help="Image folder, IDX folder or .npz file.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help=f"Run directory to write ({MODEL}, {RECORD}, ...).")
@click.option("--input-size", type=click.IntRange(1), default=None, help="Square input size N.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="Model input channels (default: 1 for grayscale IDX/npz data, else 3).")
@click.option("--alpha", type=float, default=None, help="Width multiplier (MobileNet).")
@click.option("--width", type=float, default=None, help="Width multiplier (EfficientNet B and Lite).")
@click.option("--depth", type=float, default=None, help="Depth multiplier (EfficientNet B and Lite).")
@click.option("--epochs", default="auto", show_default=True,
              help="An epoch count, or auto: from the number of images (about 12,600 optimizer steps, "
                   "10 to 100 epochs), with early stopping on the validation loss (see --early-stopping, --restore).")
@click.option("--batch-size", default="auto", show_default=True,
              help="Images per optimizer step, or auto: 128, or 64, 32 or 16 on small data so that the epochs "
                   "reach about 12,600 steps.")
@click.option("--lr", default="3e-3", show_default=True, metavar="RATE|auto",
              help="Peak learning rate (cosine decay), or auto: picked by a learning-rate range test "
                   "(lr_find.png in the run folder).")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Label smoothing of the cross-entropy (0: off).")
@click.option("--ema", default="auto", show_default=True, metavar="MOMENTUM|auto|off",
              help="Validate, keep and save a moving average of the weights (Polyak averaging): its momentum, "
                   "auto (averages over the last 5% of each phase's steps) or off.")
@click.option("--mixup", type=click.FloatRange(0), default=0.0, show_default=True, metavar="ALPHA",
              help="mixup: train on blends of two images and their labels, weights ~ Beta(ALPHA, ALPHA) (0: off).")
@click.option("--cutmix", type=click.FloatRange(0), default=0.0, show_default=True, metavar="ALPHA",
              help="CutMix: paste a box of another image, labels mixed by its area ~ Beta(ALPHA, ALPHA) (0: off); "
                   "with --mixup too, each batch takes one of the two.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Dropout rate before the classifier (default: the architecture's own).")
@click.option("--weight-decay", type=click.FloatRange(0), default=0.05, show_default=True,
              help="AdamW decoupled weight decay.")
@click.option("--warmup-epochs", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Linear learning-rate warm-up before the cosine decay.")
@click.option("--augment", default=DEFAULT_AUGMENT, show_default=True,
              help="Comma list of flip, crop, scale, rotate, shear, color, pca; or none. "
                   "Flips mirror images: ask for them only where a mirror image is the same class.")
@click.option("--weights", default=None,
              help="Pretrained: imagenet (keras.applications' weights, downloaded, checked, cached), "
                   "an edgekit run dir, .keras, or keras.applications .h5.")
@click.option("--freeze", default=None, help="Freeze the first K layers, or all-but-head.")
@click.option("--fine-tune-epochs", type=click.IntRange(0), default=0, show_default=True,
              help="Then unfreeze everything and train this many epochs at lr/10.")
@click.option("--mixed-precision", is_flag=True, help="float16 on GPU (bfloat16 on CPU).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="train", show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Seeded validation hold-out when the data has no val split (0: none).")
@click.option("--early-stopping", type=click.IntRange(0), default=0,
              help="Stop when the validation loss has not improved for this many epochs and is rising (over up "
                   "to 5 epochs), and the lowest-loss epoch's weights are better (see --restore) (0: off with "
                   "--epochs N; with --epochs auto, a fifth of the epochs).")
@click.option("--restore", type=click.Choice(RESTORE_RULES), default=RESTORE_RULES[0], show_default=True,
              help="Which weights a run with early stopping keeps: significant (the lowest-loss epoch's only when "
                   "they are significantly better on the validation images than the last epoch's, by McNemar's "
                   "test, and it stops early only then; else the last epoch's) or best (the lowest-loss epoch's).")
@run_options(("default", "mirrored", "multiworker"), "Continue the interrupted run in --out from its last checkpoint.")
def train_command(arch, data, out, input_size, channels, alpha, width, depth, epochs, batch_size, lr, label_smoothing, ema, mixup, cutmix,
                  dropout, weight_decay, warmup_epochs, augment,
                  weights, freeze, fine_tune_epochs, mixed_precision, split,
                  val_fraction, early_stopping, restore, strategy, resume, limit, seed, as_json):
    """Train ARCH (a zoo name) on labelled images; write the run to --out."""
    quiet_tensorflow()
    with stdout_to_stderr(as_json):
        from ..train import FreezeSpec, TrainConfig, parse_batch_size, parse_epochs, parse_lr, train
        epochs = run_checked(parse_epochs, epochs)
        cfg = run_checked(TrainConfig, arch=arch, data=data, out=out, input_size=input_size,
                          channels=None if channels is None else int(channels), alpha=alpha,
                          width=width, depth=depth,
                          epochs=epochs, batch_size=run_checked(parse_batch_size, batch_size), lr=run_checked(parse_lr, lr),
                          label_smoothing=label_smoothing, ema=ema, mixup=mixup, cutmix=cutmix, dropout=dropout, warmup_epochs=warmup_epochs,
                          weight_decay=weight_decay,
                          augment=augment,
                          weights=weights, freeze=run_checked(FreezeSpec.parse, freeze),
                          fine_tune_epochs=fine_tune_epochs, mixed_precision=mixed_precision,
                          strategy=strategy, resume=resume, split=split, val_fraction=val_fraction,
                          early_stopping=early_stopping, restore=restore, limit=limit, seed=seed)
        meta = run_checked(train, cfg)
    if as_json:
        emit_json(meta)
        return
    final = meta["final"]
    kept = kept_weights(meta["epochs"]["early_stopping"])
    click.echo(f"trained {arch} on {meta['data']['images']} images in {meta['wall_seconds_this_invocation']} s "
               f"({meta['images_per_second_median'] or 0:.0f} images/s); last epoch's accuracy "
               f"{final.get('accuracy', float('nan')):.4f}, validation "
               f"{final.get('val_accuracy', float('nan')):.4f}{f'; {kept}' if kept else ''}; wrote {out}/{MODEL}")


@click.command("augment")
@click.option("--data", required=True, help="Image folder, IDX folder or .npz file.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--augment", "names", default=DEFAULT_AUGMENT, show_default=True,
              help="What to show: the training default unless told, e.g. flip,crop,scale,rotate,shear,color,pca.")
@click.option("--input-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True)
@click.option("--n", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def augment_command(data, out, names, input_size, channels, n, seed):
    """Write a PNG grid of augmented training samples, to see what --augment does."""
    quiet_tensorflow()
    quiet_missing_glyphs()
    from ..data import augment_grid, load_split, parse_augment
    from ..runtime.spec import PreprocessSpec
    config = run_checked(parse_augment, names)
    images = run_checked(load_split, data, "train", 0.1, seed)
    spec = PreprocessSpec((input_size, input_size), int(channels))
    run_checked(augment_grid, images, spec, config, out, n=n, seed=seed)
    click.echo(f"wrote {out}")


# TTA modes of edgekit.evaluation.Tta, listed here so that `edgekit --help` does not import
# numpy; tests/test_evaluate_files.py keeps the two equal.
TTA_CHOICES = ("none", "flip", "10crop")


@click.command("evaluate")
@click.argument("model")
@click.option("--data", required=True, help="Image folder, IDX folder or .npz file.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--tta", type=click.Choice(TTA_CHOICES), default="none", show_default=True)
@click.option("--ensemble", "others", multiple=True, help="Another model whose outputs are averaged in.")
@click.option("--reference", default=None,
              help="A run dir, .keras or exported file: report the top-1 agreement with it.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for evaluation.json and confusion.png.")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Only N images, drawn with seed 0: the ones 'edgekit export --num-validation N' checks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def evaluate_command(model, data, split, tta, others, reference, out, limit, as_json):
    """Accuracy, per-class accuracy and confusion matrix of MODEL: a run dir, a .keras file, or
    a .tflite/.onnx/.ort file from 'edgekit export' (run as on the device, no TensorFlow needed)."""
    from ..evaluation import evaluate, needs_tensorflow

    if needs_tensorflow([model, *others, reference]):
        quiet_tensorflow()
    quiet_missing_glyphs()
    with stdout_to_stderr(as_json):
        loaded = [_load(path) for path in (model, *others)]
        ref = None if reference is None else _load(reference)
        result = run_checked(evaluate, loaded, data, split, tta, out, limit, ref)
    if as_json:
        emit_json(result)
        return
    click.echo(f"accuracy {result['accuracy']:.4f} on {result['images']} {split} images (tta {tta}, "
               f"{len(result['models'])} model(s))")
    if result["agreement"] is not None:
        click.echo(f"agreement {result['agreement']:.4f} (top-1) with {reference}")
    for name, acc in result["per_class_accuracy"].items():
        click.echo(f"  {name:<20} {'-' if acc is None else f'{acc:.4f}'}")


def _load(path: str):
    """One model; LiteRT's start-up line is silenced while an exported file loads."""
    from ..evaluation import is_model_file, load_model

    with native_stderr_silenced(is_model_file(path)):
        return run_checked(load_model, path)
