"""``edgekit evaluate --out``: evaluation.json and confusion.png, each written atomically
(hidden temporary file, then rename). matplotlib (Agg) draws the matrix; it is not part of the
device install, so ``require_matplotlib`` refuses --out up front there."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.tempfiles import atomic_write_text, atomic_write_with


def require_matplotlib(out: str | Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError(f"--out {str(out)!r} gets confusion.png, which needs matplotlib; it is not installed "
                         "(pip install matplotlib), or leave out --out") from None


def write_outputs(out: Path, result: dict, names: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "evaluation.json", json.dumps(result, indent=2))
    _plot_confusion(out / "confusion.png", np.asarray(result["confusion_matrix"]), names,
                    f"accuracy {result['accuracy']:.4f} ({result['tta']})")


def _plot_confusion(path: Path, cm: np.ndarray, names: Sequence[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(names), 1 + 0.6 * len(names)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
