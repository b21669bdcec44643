"""A PNG grid of augmented training samples, to check augmentation settings by eye."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edgekit.data.augment import AugmentConfig
from edgekit.data.errors import DataError
from edgekit.data.pipeline import pixel_dataset
from edgekit.data.sources import LabeledImages
from edgekit.runtime.spec import PreprocessSpec
from edgekit.tempfiles import atomic_write_with


def augment_grid(
    data: LabeledImages, spec: PreprocessSpec, config: AugmentConfig, out_png: str | os.PathLike[str],
    n: int = 16, seed: int = 0,
) -> Path:
    """Write ``n`` augmented samples (titled by class) to ``out_png``, atomically; return its path."""
    # Figure + Agg canvas directly: no pyplot, so no global backend state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"augment_grid n got {n!r}; expected an integer >= 1")
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)  # before the work: a file in the way fails fast
    pixels, labels = next(pixel_dataset(data, spec, n, training=True, augment=config, seed=seed).as_numpy_iterator())
    cols = math.ceil(math.sqrt(len(pixels)))
    rows = math.ceil(len(pixels) / cols)
    fig = Figure(figsize=(1.6 * cols, 1.8 * rows))
    FigureCanvasAgg(fig)
    for k, (image, label) in enumerate(zip(pixels, labels)):
        ax = fig.add_subplot(rows, cols, k + 1)
        shown = np.clip(image, 0, 255).astype(np.uint8)
        if shown.shape[-1] == 1:
            ax.imshow(shown[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(shown)
        ax.set_title(data.class_names[label], fontsize=7)
        ax.axis("off")
    fig.suptitle(", ".join(config.enabled) or "no augmentation", fontsize=9)
    atomic_write_with(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return out
