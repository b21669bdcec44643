"""The filters picture: the learned kernels in a grid, the reference filters beside them, and
(with an image) the response maps of the most edge-like kernels and of Sobel x/y.

Drawn with matplotlib's Figure and Agg canvas directly (no pyplot, so no global backend
state), imported only here; written atomically (hidden temporary file, then ``os.replace``).
Each kernel has its own colour scale, symmetric about zero (red positive, blue negative), so
that its pattern shows whatever its size.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edgekit.tempfiles import atomic_write_with

from .analysis import ConvKernels, KernelMatch

_COLS = 8  # learned kernels per row
_CMAP = "RdBu_r"


def _kernel(ax, kernel: np.ndarray, title: str, values: bool = False, fontsize: float = 7) -> None:
    limit = float(np.abs(kernel).max()) or 1.0
    ax.imshow(kernel, cmap=_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    if values:
        for (i, j), v in np.ndenumerate(kernel):  # white on the dark ends of the colour map
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=6,
                    color="white" if abs(v) > 0.6 * limit else "black")
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])


def _label(m: KernelMatch) -> str:
    if m.dead:
        return f"#{m.index} DEAD"
    sign = "-" if m.sign < 0 and m.reference else ""  # the reference negated: the other polarity
    head = f"#{m.index} {sign}{m.reference or '-'}"
    tail = f"{m.cosine:.2f}" + (f" =#{m.duplicate_of}" if m.duplicate_of is not None else "")
    return f"{head}\n{tail}"


def draw(conv: ConvKernels, shown: np.ndarray, matches: list[KernelMatch], references: dict[str, np.ndarray],
         title: str, responses: list[tuple[str, np.ndarray]] | None = None, image: np.ndarray | None = None):
    """The figure (matplotlib Figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = math.ceil(len(shown) / _COLS)
    ref_rows = math.ceil(len(references) / 3)
    top_rows = max(rows, ref_rows)
    height = 1.15 * top_rows + 0.9 + (2.0 if responses else 0)
    fig = Figure(figsize=(12.5, height), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=9)
    if responses:
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.15 * top_rows + 0.9, 2.0])
    else:
        top, bottom = fig, None
    left, right = top.subfigures(1, 2, width_ratios=[_COLS, 3.6])
    left.suptitle(f"learned: {conv.name}", fontsize=8)
    grid = left.subplots(top_rows, _COLS, squeeze=False)
    for k, ax in enumerate(grid.flat):
        if k < len(shown):
            _kernel(ax, shown[k], _label(matches[k]), fontsize=6.5)
        else:
            ax.axis("off")
    right.suptitle("reference filters", fontsize=8)
    ref_grid = right.subplots(top_rows, 3, squeeze=False)
    values = conv.kernel_size == (3, 3)
    for k, ax in enumerate(ref_grid.flat):
        if k < len(references):
            name = list(references)[k]
            _kernel(ax, references[name], name, values=values)
        else:
            ax.axis("off")
    if bottom is not None:
        _responses(bottom, responses, image)
    return fig


def _responses(sub, responses: list[tuple[str, np.ndarray]], image: np.ndarray) -> None:
    axes = sub.subplots(1, len(responses) + 1, squeeze=False)[0]
    shown = image[..., 0] if image.shape[-1] == 1 else np.clip(image, 0, 255).astype(np.uint8)
    axes[0].imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255)
    axes[0].set_title("image", fontsize=7)
    for ax, (name, response) in zip(axes[1:], responses):
        limit = float(np.abs(response).max()) or 1.0
        ax.imshow(response, cmap=_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(name, fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    sub.suptitle("responses (stride 1, valid; red positive, blue negative)", fontsize=8)


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` atomically; the folder is made if missing."""
    path = Path(path)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path
