"""ONNX -> ORT format converters (ONNX Runtime Mobile,
https://onnxruntime.ai/docs/performance/model-optimizations/ort-format-models.html).

The .ort file is the export's own ONNX graph (fp32, or the int8 graph that ``onnx_int8``
quantizes once per export and caches in the context) serialized by onnxruntime, the way
``onnxruntime.tools.convert_onnx_models_to_ort`` does it for each model: an InferenceSession on
the CPU provider with ``optimized_model_filepath`` and ``session.save_model_format=ORT``. The
tool itself is not called: it works on folders, prints, names its outputs and takes its level
from an environment variable. Beside each file goes the list of operators a reduced ONNX Runtime
build needs (``--include_ops_by_config``), made by the tool's own ``ort_format_model`` reader.

Optimization: style "Fixed", level "all" without the NCHWc transformer (the tool's default for
any target but amd64). An ORT file is not optimized again when it is loaded (checked on
onnxruntime 1.32: a file saved at level "basic" still runs Conv + Relu, not FusedConv, in a
session at level "all"), so the level chosen here is what the phone runs; "basic" would leave
QDQ pairs and activations unfused. "all" adds constant folding, the node fusions and the int8
QLinear/NHWC rewrites, whose kernels every CPU build of onnxruntime has; NCHWc is left out
because its blocked layout suits x86 AVX only. The "Runtime" style (optimizations replayed on
the device) exists for compiling providers (NNAPI, CoreML) and only runs with
``session.enable_saved_runtime_optimizations``; edgekit's runtime uses the CPU provider.
``session.qdqisint8allowed`` (the tool's ``--target_platform arm``) follows the int8 graph:
on for int8 activations (edgekit's ARM flavour, see ``cpu.py``), so that QDQ pairs become int8
kernels rather than being converted to uint8; off otherwise, the tool's default.

The ONNX graph gets an empty edgekit ``metadata_props`` entry before conversion (onnxruntime
omits the field when there are no entries), which onnxruntime copies into the file and readers
take as "no metadata": the exporter's finisher then replaces it with the real metadata
(:mod:`edgekit.runtime.ortfile` can only repoint an existing field).
"""

from __future__ import annotations

from pathlib import Path

from edgekit.runtime.engines import EngineSettings, GraphOptimization, onnx_session
from edgekit.runtime.ortfile import PLACEHOLDER
from edgekit.runtime.spec import METADATA_KEY

from . import onnx_convert, onnx_int8
from .context import ConversionContext
from .errors import converting
from .options import ONNX_INT8, ORT_INT8, ActivationType

TOOL = "onnxruntime (ORT format)"
LEVEL = "all"
DISABLED_OPTIMIZERS = ("NchwcTransformer",)
CONFIG_SUFFIX = ".required_operators.config"  # the tool's name for the same file


def convert_fp32(ctx: ConversionContext) -> bytes:
    ctx.notes["ort/fp32"] = _notes(int8_activations=False)
    return onnx_to_ort(onnx_convert.float_graph(ctx), ctx.workdir / "fp32", int8_activations=False)


def convert_int8(ctx: ConversionContext) -> bytes:
    data = onnx_int8.int8_graph(ctx)
    int8 = ctx.notes[ONNX_INT8]["activation_type"] == ActivationType.INT8.value
    ctx.notes[ORT_INT8] = {**ctx.notes[ONNX_INT8], **_notes(int8_activations=int8)}
    return onnx_to_ort(data, ctx.workdir / "int8", int8_activations=int8)


def _notes(int8_activations: bool) -> dict:
    return {"ort_optimization": f"{LEVEL} without {', '.join(DISABLED_OPTIMIZERS)} (fixed style)",
            "qdq_int8_allowed": int8_activations}


def onnx_to_ort(onnx_bytes: bytes, work: Path, int8_activations: bool) -> bytes:
    """The ORT format file of an ONNX model, optimized for onnxruntime's CPU provider."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.onnx").write_bytes(_with_placeholder(onnx_bytes))
    settings = EngineSettings(optimization=GraphOptimization.ALL, disabled_optimizers=tuple(DISABLED_OPTIMIZERS),
                              save_optimized=str(work / "model.ort"), save_ort_format=True,
                              qdq_int8_allowed=int8_activations)
    with converting(TOOL):
        onnx_session(work / "model.onnx", settings)
    return (work / "model.ort").read_bytes()


def _with_placeholder(onnx_bytes: bytes) -> bytes:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    if not any(p.key == METADATA_KEY for p in model.metadata_props):
        model.metadata_props.add(key=METADATA_KEY, value=PLACEHOLDER)
    return model.SerializeToString()


def required_operators(model_file: Path, name: str) -> bytes:
    """The reduced-build operator config of an .ort file, as the converter tool writes it
    (``domain;opset;op,op`` lines), its header naming ``name``."""
    from onnxruntime.tools.ort_format_model import OrtFormatModelProcessor

    ops: dict = {}
    OrtFormatModelProcessor(str(model_file), ops, None).process()
    lines = ["# Generated from model/s:", f"# - {name}"]
    for domain in sorted(ops):
        for opset in sorted(ops[domain]):
            if ops[domain][opset]:
                lines.append(f"{domain};{opset};{','.join(sorted(ops[domain][opset]))}")
    return ("\n".join(lines) + "\n").encode("utf-8")
