"""Training curves as a PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from edgekit.tempfiles import atomic_write_with


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
    try:
        save_figure(fig, out_png)
    finally:
        plt.close(fig)


def save_figure(fig, path: Path) -> None:
    """``fig`` as a PNG at ``path``, atomically (hidden temporary file, then rename)."""
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
