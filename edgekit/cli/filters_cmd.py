"""``edgekit filters``: what a model's first convolution learned, beside Sobel and Scharr.

For a .tflite/.onnx file only numpy, matplotlib and edgekit's file readers are used (no
TensorFlow, no interpreter), so it runs on the device; a run folder or .keras file is read
with Keras.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, emit_json, quiet_missing_glyphs, quiet_tensorflow, run_checked, stdout_to_stderr
from .tables import print_table


@click.command("filters")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG file to write.")
@click.option("--layer", default=None, metavar="NAME",
              help="A 2-D convolution by name (a depthwise one too)  [default: the first convolution]")
@click.option("--image", default=None, type=click.Path(path_type=Path),
              help="Also show the most edge-like kernels and Sobel x/y acting on this image.")
@click.option("--channel", type=click.IntRange(0), default=None,
              help="Show and match this input channel  [default: the mean over input channels]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def filters_command(model, out, layer, image, channel, as_json):
    """Picture and table of MODEL's first-layer kernels against edge filters.

    MODEL is a run folder, .keras, .tflite or .onnx file. Each kernel gets its best-matching
    reference filter (vertical/horizontal edge, Sobel, Scharr, and their 45-degree turns) with
    the absolute cosine similarity, and flags for dead and duplicate kernels.
    """
    if out.is_dir():
        raise CliError(f"--out {str(out)!r} is a folder; expected a PNG file name")
    keras_model = model.is_dir() or model.suffix.lower() == ".keras"
    if keras_model:
        quiet_tensorflow()
    quiet_missing_glyphs()
    from ..filters import filter_report

    with stdout_to_stderr(as_json and keras_model):
        report = run_checked(filter_report, model, out, layer=layer, image=image, channel=channel)
    if as_json:
        emit_json(report.as_dict())
        return
    _print(report)


def _print(report) -> None:
    doc = report.as_dict()
    c, s = report.conv, doc["summary"]
    kh, kw = c.kernel_size
    rows = [[f"#{m.index}", m.reference or "-", f"{m.cosine:.3f}", f"{m.dc_share:.2f}", _flags(m)]
            for m in report.matches]
    print_table(f"{c.name}: {c.count} kernels {kh}x{kw}x{c.in_channels} ({c.storage}, {doc['shown']})",
                ["kernel", "best reference", "|cos|", "DC share", "flags"], rows)
    if report.strided:
        click.echo(f"the layer is strided ({c.stride[0]}x{c.stride[1]}): it applies these kernels every "
                   f"{c.stride[0]} rows and {c.stride[1]} columns; the kernels, and so the matching, are the same")
    click.echo(f"mean best |cos| {s['mean_cosine']} (random kernels: {s['chance_cosine']}); {s['dead']} dead, "
               f"{s['duplicates']} duplicate; wrote {report.picture}")


def _flags(m) -> str:
    flags = ["dead"] if m.dead else []
    if m.duplicate_of is not None:
        flags.append(f"duplicate of #{m.duplicate_of}")
    if m.sign < 0 and m.reference:
        flags.append("negated")
    return ", ".join(flags)
