"""Training curves as a PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def plot_curves(history_csv: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{history_csv} has no epochs")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [_number(r.get(key)) for r in rows], label=f"train {key}")
        val = [_number(r.get(f"val_{key}")) for r in rows]
        if any(math.isfinite(v) for v in val):  # CSVLogger writes NA without validation data
            ax.plot(epochs, val, label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=out_png.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out_png)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
