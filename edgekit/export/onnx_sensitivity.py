"""Per-node int8 sensitivity of an ONNX graph, for the accuracy budget (``edgekit.export.budget``).

Uses onnxruntime's quantization debugging utilities (``onnxruntime.quantization.qdq_loss_debug``):
the float graph and a QDQ-quantized copy (the same activation type and calibration) are run
on calibration images with every intermediate tensor saved; for each quantized activation the
signal-to-quantization-noise ratio (SQNR, dB) of its own QuantizeLinear/DequantizeLinear pair
is computed. Nodes are ranked by the model-level sensitivity of the Keras layer they come from
(``edgekit.export.keras_sensitivity``: expected top-1 flips), ties and unnamed nodes by that
SQNR, lowest first (the tensors 8 bits serve worst); the budget keeps the first ones float
through ``quantize_static``'s ``nodes_to_exclude``. The ranking is the same whichever
quantization format the file is written in.
"""

from __future__ import annotations

import numpy as np

from .context import ConversionContext
from .options import ActivationType, CalibrationMethod, OnnxQuantFormat

RANK_SAMPLES = 32  # calibration images both graphs are compared on
RANK_MEMORY_BYTES = 1 << 30  # cap on the saved intermediates of one graph


def ranked_nodes(ctx: ConversionContext, act: ActivationType, method: CalibrationMethod,
                 reduce_range: bool = False) -> list[str]:
    """Names of the quantized nodes of the pre-processed float graph, most sensitive first: by
    the expected top-1 flips of the Keras layer each names (``keras_sensitivity``), then by SQNR."""
    from .keras_sensitivity import keras_flips, rank

    return ctx.once("onnx/ranked", lambda: rank([node for node, _ in node_sqnr(ctx, act, method, reduce_range)],
                                               keras_flips(ctx)))


def node_sqnr(ctx: ConversionContext, act: ActivationType, method: CalibrationMethod,
              reduce_range: bool = False) -> list[tuple[str, float]]:
    """(node name, SQNR in dB of its quantized output) for every quantized node, worst first."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as dbg

    from .onnx_convert import _Reader, activation_bytes, pre_processed, quantize

    work = ctx.workdir
    pre = pre_processed(ctx)
    (work / "rank_qdq.onnx").write_bytes(quantize(ctx, OnnxQuantFormat.QDQ, act, method,
                                                       reduce_range=reduce_range))
    per_image = max(1, activation_bytes(ctx.model))
    images = ctx.require_calibration()[:max(2, min(RANK_SAMPLES, RANK_MEMORY_BYTES // per_image))]
    saved = {}
    for name, path in (("float", pre), ("qdq", work / "rank_qdq.onnx")):
        augmented = work / f"rank_{name}_augmented.onnx"
        dbg.modify_model_output_intermediate_tensors(str(path), str(augmented))
        saved[name] = dbg.collect_activations(str(augmented), _Reader(images, ctx.options.nchw))
    matching = dbg.create_activation_matching(saved["qdq"], saved["float"])
    producer = {out: node.name for node in onnx.load(str(pre)).graph.node for out in node.output}
    scores: dict[str, float] = {}
    for tensor, match in matching.items():
        node = producer.get(tensor)
        if node is None or not match.get("pre_qdq") or not match.get("post_qdq"):
            continue  # a graph input, or a tensor the quantizer left float
        sqnr = _sqnr(match["pre_qdq"], match["post_qdq"])
        scores[node] = min(sqnr, scores.get(node, np.inf))
    return sorted(scores.items(), key=lambda item: item[1])


def _sqnr(before, after) -> float:
    """20 log10(|x| / |x - q(x)|) over all saved images (``qdq_loss_debug``'s definition)."""
    x = np.concatenate([np.asarray(t, np.float64).ravel() for t in before])
    y = np.concatenate([np.asarray(t, np.float64).ravel() for t in after])
    eps = np.finfo(np.float32).eps
    return float(20 * np.log10(max(np.linalg.norm(x), eps) / max(np.linalg.norm(x - y), eps)))
