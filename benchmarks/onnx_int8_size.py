"""Where the bytes of an int8 ONNX export go, before and after ``onnx_convert.compact``.

Exports MODEL (a run folder or .keras file) to ONNX fp32 and int8 in a temporary folder,
keeps the quantizer's own output (what ``compact`` receives) and breaks both int8 graphs down
by initializer type (ONNX data type and rank) and by graph part (nodes, value_info, metadata).

    python benchmarks/onnx_int8_size.py runs/fmnist [--onnx-quant-format qdq] [--onnx-activation-type int8]

Writes benchmarks/results/onnx_int8_size_<name>.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def breakdown(data: bytes) -> dict:
    """Serialized bytes per initializer kind (``INT8 weight (rank 4)``, ``FLOAT scalar``...) and per graph part."""
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    kinds: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for t in graph.initializer:
        rank = len(t.dims)
        shape = "scalar" if rank == 0 else "vector" if rank == 1 else f"rank-{rank} tensor"
        kind = f"{onnx.TensorProto.DataType.Name(t.data_type)} {shape}"
        kinds[kind][0] += 1
        kinds[kind][1] += t.ByteSize()
    parts = {"initializers": sum(t.ByteSize() for t in graph.initializer),
             "nodes": sum(n.ByteSize() for n in graph.node),
             "value_info": sum(v.ByteSize() for v in graph.value_info),
             "metadata_props": sum(p.ByteSize() for p in model.metadata_props),
             "opset_import": sum(o.ByteSize() for o in model.opset_import)}
    parts["other"] = len(data) - sum(parts.values())
    return {"file_bytes": len(data),
            "initializers": {k: {"count": c, "bytes": b} for k, (c, b) in sorted(kinds.items(), key=lambda kv: -kv[1][1])},
            "parts": parts, "value_info_entries": len(graph.value_info),
            "initializer_name_bytes": sum(len(t.name) for t in graph.initializer)}


def measure(model: str, fmt: str | None, act: str | None) -> dict:
    from edgekit.export import ActivationType, ExportOptions, Format, OnnxQuantFormat, Precision, export_model
    from edgekit.export import onnx_convert

    raw: list[bytes] = []
    compact = onnx_convert.compact

    def keep_input(data: bytes):
        raw.append(data)
        return compact(data)

    onnx_convert.compact = keep_input
    try:
        with tempfile.TemporaryDirectory() as out:
            options = ExportOptions(formats=(Format.ONNX,), precisions=(Precision.FP32, Precision.INT8),
                                    out_dir=Path(out), num_validation=200,
                                    onnx_quant_format=OnnxQuantFormat(fmt) if fmt else None,
                                    onnx_activation_type=ActivationType(act) if act else None)
            report = export_model(model, options, log=lambda line: None)
            files = {f.target.key: f for f in report.files}
            fp32, int8 = files["onnx/fp32"], files["onnx/int8"]
            final = int8.path.read_bytes()
    finally:
        onnx_convert.compact = compact
    before, after = breakdown(raw[0]), breakdown(final)
    # edgekit's metadata is added after conversion, the same either way: count it in "before" too
    metadata = after["parts"]["metadata_props"] - before["parts"]["metadata_props"]
    return {"model": model, "notes": int8.notes, "fp32_file_bytes": fp32.size_bytes,
            "int8_file_bytes_before": before["file_bytes"] + metadata, "int8_file_bytes_after": len(final),
            "ratio_before": (before["file_bytes"] + metadata) / fp32.size_bytes,
            "ratio_after": len(final) / fp32.size_bytes, "before": before, "after": after}


def markdown(doc: dict, name: str) -> str:
    notes = doc["notes"]
    lines = [f"# int8 ONNX size: {name}", "",
             f"{doc['model']}; {notes.get('quant_format')} / {notes.get('activation_type')} activations, "
             "per-channel int8 weights. Sizes are serialized protobuf bytes; the files carry edgekit "
             "metadata (counted in both).", "",
             f"fp32 ONNX {doc['fp32_file_bytes']} B; int8 before compact {doc['int8_file_bytes_before']} B "
             f"(**{doc['ratio_before']:.4f}x**), after {doc['int8_file_bytes_after']} B (**{doc['ratio_after']:.4f}x**).",
             "", f"compact removed: {notes.get('compacted')}", "",
             "| initializer kind | count before | bytes before | count after | bytes after |", "|---|---|---|---|---|"]
    b, a = doc["before"]["initializers"], doc["after"]["initializers"]
    for kind in dict.fromkeys([*b, *a]):
        cb, ca = b.get(kind, {"count": 0, "bytes": 0}), a.get(kind, {"count": 0, "bytes": 0})
        lines.append(f"| {kind} | {cb['count']} | {cb['bytes']} | {ca['count']} | {ca['bytes']} |")
    lines += ["", "| graph part | bytes before | bytes after |", "|---|---|---|"]
    for part in doc["before"]["parts"]:
        lines.append(f"| {part} | {doc['before']['parts'][part]} | {doc['after']['parts'][part]} |")
    lines.append(f"| (initializer names, inside initializers) | {doc['before']['initializer_name_bytes']} | "
                 f"{doc['after']['initializer_name_bytes']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--onnx-quant-format", choices=["qdq", "qoperator"], default=None)
    parser.add_argument("--onnx-activation-type", choices=["int8", "uint8"], default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    doc = measure(args.model, args.onnx_quant_format, args.onnx_activation_type)
    name = Path(args.model).resolve().name.removesuffix(".keras")
    if args.onnx_quant_format or args.onnx_activation_type:
        name += f"_{doc['notes']['quant_format']}_{doc['notes']['activation_type']}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"onnx_int8_size_{name}.json").write_text(json.dumps(doc, indent=2))
    (args.out / f"onnx_int8_size_{name}.md").write_text(markdown(doc, name))
    print(markdown(doc, name))


if __name__ == "__main__":
    main()
