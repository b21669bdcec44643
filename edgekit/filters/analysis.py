"""What a first convolution learned: each kernel's nearest hand-made edge filter, and the
kernels that are dead or duplicated. numpy only, so it runs on the device.

Similarity is the absolute cosine between a learned 2-D kernel and a reference filter
(:mod:`reference`), both flattened: 1.0 when the kernel is the filter up to scale and sign
(a batch norm after the convolution rescales it anyway, and the opposite sign detects the
same edge with the other polarity). For comparison the report gives the chance level: the
mean best similarity of random Gaussian kernels of the same size, about 0.49 at 3x3, the
score of a layer that never moved from its random initialisation.

- dead: the kernel's L2 norm (over all its input channels) is at most 1% of the layer's
  median kernel norm: it passes (almost) nothing on.
- duplicate: the kernel's weights (all input channels) have a signed cosine of at least
  0.95 with an earlier live kernel: both detect the same thing.

Each kernel's ``dc_share`` is the part of its energy (sum of squares) in its mean, the part
that responds to plain brightness; the references have none, so a kernel's similarity is at
most sqrt(1 - dc_share): a learned kernel that mixes an edge with a brightness detector scores
lower than its edge part alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reference import correlate2d, reference_filters

DEAD_FRACTION = 0.01
DUPLICATE_COSINE = 0.95
_CHANCE_SAMPLES = 4000


@dataclass(frozen=True)
class ConvKernels:
    """The kernels of one 2-D convolution, in one layout whatever the file format."""

    name: str
    weights: np.ndarray  # float32 (out, kh, kw, in): TFLite's CONV_2D layout
    stride: tuple[int, int] = (1, 1)
    depthwise: bool = False  # each kernel sees one input channel (in == 1 above)
    storage: str = "float32"  # how the file stores them: "float32", "int8 per-channel", ...
    source: str = "keras"  # "keras", "tflite" or "onnx"

    def __post_init__(self):
        w = self.weights
        if not isinstance(w, np.ndarray) or w.ndim != 4 or 0 in w.shape:
            raise ValueError(f"convolution {self.name!r} has weights of shape {getattr(w, 'shape', None)}; "
                             "expected a non-empty (out, kh, kw, in) array")

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weights.shape[1]), int(self.weights.shape[2])

    @property
    def in_channels(self) -> int:
        return int(self.weights.shape[3])

    @property
    def count(self) -> int:
        return int(self.weights.shape[0])


@dataclass(frozen=True)
class KernelMatch:
    index: int
    reference: str | None  # None for an all-zero kernel
    cosine: float  # absolute cosine with that reference, 0..1
    sign: int  # +1: the reference itself; -1: its negation (the opposite edge polarity)
    norm: float  # L2 norm over all input channels
    dc_share: float  # share of the shown kernel's energy in its mean (brightness), 0..1
    dead: bool
    duplicate_of: int | None

    def as_dict(self) -> dict:
        return {"index": self.index, "reference": self.reference, "cosine": round(self.cosine, 4),
                "sign": self.sign, "norm": round(self.norm, 6), "dc_share": round(self.dc_share, 4), "dead": self.dead,
                "duplicate_of": self.duplicate_of}


def shown_kernels(conv: ConvKernels, channel: int | None = None) -> np.ndarray:
    """(out, kh, kw): one input channel's slice, or the mean over input channels (None)."""
    if channel is None:
        return conv.weights.mean(axis=3)
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < conv.in_channels:
        raise ValueError(f"channel got {channel!r}; convolution {conv.name!r} has input channels "
                         f"0..{conv.in_channels - 1}")
    return conv.weights[..., channel]


def _unit_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(matrix, axis=1)
    return matrix / np.where(norms > 0, norms, 1)[:, None], norms


def similarity(kernels: np.ndarray, references: dict[str, np.ndarray]) -> np.ndarray:
    """Signed cosine of each kernel (n, kh, kw) with each reference: (n, len(references));
    0 for an all-zero kernel."""
    k, _ = _unit_rows(kernels.reshape(len(kernels), -1).astype(np.float64))
    r, _ = _unit_rows(np.stack([v.reshape(-1) for v in references.values()]).astype(np.float64))
    return k @ r.T


def dead_kernels(weights: np.ndarray) -> np.ndarray:
    """Boolean (out,): kernels whose norm is at most DEAD_FRACTION of the median norm (of the
    largest when most are zero)."""
    norms = np.linalg.norm(weights.reshape(len(weights), -1).astype(np.float64), axis=1)
    scale = np.median(norms)
    if scale == 0:
        scale = norms.max()
    return norms <= DEAD_FRACTION * scale


def duplicate_kernels(weights: np.ndarray, dead: np.ndarray) -> list[int | None]:
    """For each kernel, the first earlier live kernel it duplicates (signed cosine of all its
    weights >= DUPLICATE_COSINE), else None."""
    unit, _ = _unit_rows(weights.reshape(len(weights), -1).astype(np.float64))
    cos = unit @ unit.T
    found: list[int | None] = []
    for i in range(len(weights)):
        earlier = [j for j in range(i) if not dead[j] and found[j] is None and cos[i, j] >= DUPLICATE_COSINE]
        found.append(earlier[0] if earlier and not dead[i] else None)
    return found


def chance_similarity(size: tuple[int, int], seed: int = 0) -> float:
    """Mean best absolute similarity of random Gaussian kernels of ``size`` with the
    references: what a layer still at its random initialisation scores."""
    rng = np.random.default_rng(seed)
    kernels = rng.standard_normal((_CHANCE_SAMPLES, *size))
    return float(np.abs(similarity(kernels, reference_filters(size))).max(axis=1).mean())


def match_kernels(conv: ConvKernels, channel: int | None = None) -> list[KernelMatch]:
    """Each kernel's best reference (absolute cosine of its shown 2-D kernel), norm and flags."""
    refs = reference_filters(conv.kernel_size)
    names = list(refs)
    shown = shown_kernels(conv, channel)
    cos = similarity(shown, refs)
    best = np.abs(cos).argmax(axis=1)
    dead = dead_kernels(conv.weights)
    duplicates = duplicate_kernels(conv.weights, dead)
    norms = np.linalg.norm(conv.weights.reshape(conv.count, -1).astype(np.float64), axis=1)
    flat = shown.reshape(conv.count, -1).astype(np.float64)
    energy = (flat**2).sum(axis=1)
    dc = np.divide(flat.shape[1] * flat.mean(axis=1) ** 2, energy, out=np.zeros_like(energy), where=energy > 0)
    return [KernelMatch(i, None if energy[i] == 0 else names[b], float(abs(cos[i, b])), 1 if cos[i, b] >= 0 else -1,
                        float(norms[i]), float(dc[i]), bool(dead[i]), duplicates[i])
            for i, b in enumerate(best)]


def most_edge_like(matches: list[KernelMatch], count: int = 6) -> list[KernelMatch]:
    """The ``count`` live kernels most similar to a reference, best first; duplicates are
    left out, so that each shown kernel detects something else."""
    live = [m for m in matches if not m.dead and m.reference is not None and m.duplicate_of is None]
    return sorted(live, key=lambda m: (-m.cosine, m.index))[:count]


MAX_IMAGE_SIDE = 256  # response maps of a larger image are computed on it shrunk to this


def prepare_image(pixels: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) pixels as float32 (H, W, channels) in 0..255: grey (the mean
    of R, G, B) for one channel, RGB for three; shrunk by whole-block averaging so that its
    longer side is at most MAX_IMAGE_SIDE."""
    image = np.asarray(pixels, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"image got shape {np.shape(pixels)}; expected (H, W), (H, W, 1) or (H, W, 3)")
    if channels == 1:
        image = image.mean(axis=2, keepdims=True)
    elif image.shape[2] == 1:
        image = np.repeat(image, channels, axis=2)
    factor = -(-max(image.shape[:2]) // MAX_IMAGE_SIDE)
    if factor > 1:
        h, w = image.shape[0] // factor, image.shape[1] // factor
        image = image[: h * factor, : w * factor].reshape(h, factor, w, factor, -1).mean(axis=(1, 3))
    return image.astype(np.float32)


def response_maps(pixels: np.ndarray, conv: ConvKernels, kernels: list[KernelMatch]) -> list[tuple[str, np.ndarray]]:
    """(title, map) of each chosen learned kernel on the image, then of Sobel x and y: stride 1
    and valid, whatever the layer's stride, so that the maps keep the image's detail. A kernel
    of 1 or 3 input channels sees the image in those channels, any other the grey image with
    its channel mean (a depthwise kernel too)."""
    size = conv.kernel_size
    matched = conv.in_channels in (1, 3) and not conv.depthwise
    image = prepare_image(pixels, conv.in_channels if matched else 1)
    if image.shape[0] < size[0] or image.shape[1] < size[1]:
        raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} pixels is smaller than the {size[1]}x{size[0]} "
                         "kernels")
    grey = image.mean(axis=2)
    maps = []
    for m in kernels:
        kernel = conv.weights[m.index]
        out = correlate2d(image, kernel) if matched else correlate2d(grey, kernel.mean(axis=2))
        maps.append((f"#{m.index} ~ {'-' if m.sign < 0 else ''}{m.reference}", out))
    refs = reference_filters(size)
    maps += [(name, correlate2d(grey, refs[name])) for name in ("sobel_x", "sobel_y")]
    return maps
