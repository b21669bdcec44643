"""``edgekit targets``: the device targets ``export --target`` knows (see ``edgekit.devices``)."""

from __future__ import annotations

import click

from edgekit.devices import describe_devices

from .common import emit_json
from .tables import print_table

SCHEMA = "edgekit.targets/1"


@click.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def targets_command(as_json: bool) -> None:
    """List the device targets of 'edgekit export --target NAME': CPU, cores, default threads,
    the ONNX int8 flavour (onnxruntime's guidance for that CPU) and the TFLite options.
    'host' is this machine's row."""
    rows = describe_devices()
    if as_json:
        emit_json({"schema": SCHEMA, "host": rows[0]["resolves_to"], "targets": rows})
        return
    print_table("edgekit device targets (edgekit export --target NAME; host: this machine)",
                ["target", "cpu", "cores", "threads", "onnx int8", "tflite"],
                [[_name(r), r["cpu"], _count(r["cores"]), _count(r["threads"]), _onnx(r["onnx_int8"]),
                  _tflite(r["tflite"])] for r in rows])


def _name(row: dict) -> str:
    return row["name"] if row["name"] == row["resolves_to"] else f"{row['name']} -> {row['resolves_to']}"


def _count(value) -> str:
    return "all" if value is None else str(value)


def _onnx(q: dict) -> str:
    text = f"{q['quant_format']} {q['activation_type']}/{q['weight_type']}"
    return text + (", reduce_range" if q["reduce_range"] else "")


def _tflite(t: dict) -> str:
    return f"{'xnnpack' if t['xnnpack'] else 'builtin kernels'}, {_count(t['threads'])} threads"
