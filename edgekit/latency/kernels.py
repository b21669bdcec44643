"""One kernel taxonomy for latency prediction: a network is a list of fused kernels, each with a
type and a few size features (the nn-Meter / LitePred idea: Zhang et al., "nn-Meter: Towards
Accurate Latency Prediction of Deep-Learning Model Inference on Diverse Edge Devices", MobiSys
2021; Feng et al., "LitePred", NSDI 2024).

Kernel types (what runs as one kernel after the runtimes' own fusions):

- ``conv{k}_s{s}``: a regular k x k convolution with stride s (k > 1, or 1 x 1 with stride > 1);
- ``dwconv{k}_s{s}``: a depthwise k x k convolution with stride s;
- ``pwconv``: a 1 x 1 convolution at stride 1 on a feature map larger than 1 x 1;
- ``fc``: a fully connected layer, or a 1 x 1 convolution on a 1 x 1 map (squeeze-excite's
  reduce/expand, MobileNet v1's classifier), which the runtimes run as a matrix-vector product;
- ``add``: an element-wise sum of two activations (residual connections);
- ``mul``: an element-wise product of two activations (squeeze-excite's excitation);
- ``act``: an activation the runtimes do not fuse into the convolution before it (sigmoid,
  swish = x * sigmoid(x) counted once, hard-swish, tanh);
- ``pool``: average/max pooling, global or not (TFLite MEAN, ONNX GlobalAveragePool);
- ``other``: the rest (reshapes, transposes, softmax, quantize/dequantize at the ends).

Batch normalisation, ReLU/ReLU6 and explicit padding are part of the convolution they follow or
precede: the TFLite converter folds them, and onnxruntime fuses them when it loads the graph
(Conv+Mul/Add, Conv+Clip/Relu, Pad+Conv fusions), so they are no kernels of their own.

Features of a kernel: ``macs`` (multiply-accumulates at batch 1), ``act_bytes`` (bytes of its
activation inputs and output), ``weight_bytes`` (bytes of its constant inputs), a count of 1,
and for the MAC kernels ``channels`` (output channels; a depthwise convolution's channels).
:class:`FeatureTable` sums them per type: what a predictor needs, and what the two extractors
(:mod:`.from_file`, :mod:`.from_config`) must agree on.

Channel tiles: the runtimes' kernels compute channels in blocks of the vector width (XNNPACK's
and onnxruntime's micro-kernels are written for 8 to 64 channels at a time, depending on the
instruction set and the data type), so a layer of 44 channels can cost what one of 64 does.
``FeatureTable.of(kernels, tiles)`` counts a family's MACs with the channels rounded up to its
tile; the fit picks each family's tile from :data:`CHANNEL_TILES` by cross-validation on the
device's own measurements (1: no rounding), so nothing here assumes one CPU's vector width.

Channel alignment: some kernels have a fast path only for channel counts that are a multiple of
a vector width and fall back to a generic loop otherwise, a cliff rather than a rounding
(onnxruntime's fp32 depthwise convolution on x86 ran 22 channels at a quarter of the speed per
MAC of 16, 24 or 28 channels). ``FeatureTable.of(kernels, tiles, aligns)`` sums the kernels of a
family whose channels are not a multiple of its alignment under their own type, ``TYPE`` +
``_unaligned`` (``dwconv3_s1_unaligned``), which the fit gives coefficients of their own; the
alignment is picked from :data:`CHANNEL_ALIGNS` by the same cross-validation (1: no split).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

FAMILIES = ("conv", "dwconv", "pwconv", "fc", "add", "mul", "act", "pool", "other")
MAC_FAMILIES = ("conv", "dwconv", "pwconv", "fc")
# Bytes per element of activations and weights at each precision (int8: the quantized tensors;
# the few float/int32 tensors an int8 file keeps, a float head or biases, are not told apart).
ELEMENT_BYTES = {"fp32": 4, "int8": 1}
CHANNEL_TILES = (1, 8, 16, 32, 64)
CHANNEL_ALIGNS = (1, 4, 8, 16)
UNALIGNED = "_unaligned"  # the suffix of a kernel type whose channels miss the family's alignment


def conv_type(kernel: int, stride: int, depthwise: bool, out_positions: int) -> str:
    """The kernel type of a convolution from its geometry (see the module docstring)."""
    if depthwise:
        return f"dwconv{kernel}_s{stride}"
    if kernel == 1 and stride == 1:
        return "fc" if out_positions == 1 else "pwconv"
    return f"conv{kernel}_s{stride}"


def family(kernel_type: str) -> str:
    """``dwconv3_s2`` -> ``dwconv``, ``pwconv_unaligned`` -> ``pwconv``; the other types are
    their own family."""
    kernel_type = kernel_type.removesuffix(UNALIGNED)
    for name in ("dwconv", "conv"):
        if kernel_type.startswith(name) and kernel_type != "pwconv":
            return name
    return kernel_type


@dataclass(frozen=True)
class Kernel:
    type: str
    macs: int
    act_bytes: int
    weight_bytes: int
    name: str = ""  # the layer or operator it came from (for reports and per-op timings)
    channels: int = 0  # a MAC kernel's output channels (0: not a MAC kernel, or not known)

    @property
    def bytes(self) -> int:
        return self.act_bytes + self.weight_bytes

    def tiled_macs(self, tile: int) -> int:
        """MACs with the channels rounded up to a multiple of ``tile``."""
        if tile <= 1 or self.channels <= 0:
            return self.macs
        return self.macs * (-(-self.channels // tile) * tile) // self.channels

    def aligned(self, align: int) -> bool:
        """Whether the channels are a multiple of ``align`` (unknown channels count as aligned)."""
        return align <= 1 or self.channels <= 0 or self.channels % align == 0


@dataclass
class TypeFeatures:
    count: int = 0
    macs: int = 0
    act_bytes: int = 0
    weight_bytes: int = 0

    @property
    def bytes(self) -> int:
        return self.act_bytes + self.weight_bytes

    def to_dict(self) -> dict:
        return {"count": self.count, "macs": self.macs, "act_bytes": self.act_bytes,
                "weight_bytes": self.weight_bytes}


class FeatureTable(dict):
    """kernel type -> :class:`TypeFeatures`, summed over a network's kernels."""

    @classmethod
    def of(cls, kernels: list[Kernel], tiles: dict[str, int] | None = None,
           aligns: dict[str, int] | None = None) -> "FeatureTable":
        """The sums per type; ``tiles`` {family: channel tile} rounds that family's channels up;
        ``aligns`` {family: alignment} sums its unaligned kernels under ``TYPE_unaligned``."""
        tiles, aligns = tiles or {}, aligns or {}
        sums: dict[str, TypeFeatures] = defaultdict(TypeFeatures)
        for k in kernels:
            fam = family(k.type)
            f = sums[k.type if k.aligned(aligns.get(fam, 1)) else k.type + UNALIGNED]
            f.count += 1
            f.macs += k.tiled_macs(tiles.get(fam, 1))
            f.act_bytes += k.act_bytes
            f.weight_bytes += k.weight_bytes
        return cls(sorted(sums.items()))

    @property
    def macs(self) -> int:
        return sum(f.macs for f in self.values())

    def to_dict(self) -> dict:
        return {t: f.to_dict() for t, f in self.items()}

    @classmethod
    def from_dict(cls, doc: dict) -> "FeatureTable":
        return cls((t, TypeFeatures(**{k: int(v) for k, v in f.items()})) for t, f in doc.items())
