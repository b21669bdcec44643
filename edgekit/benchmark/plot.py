"""The accuracy / latency trade-off as a PNG: one point per file (x: median latency, y:
accuracy, or top-1 agreement with Keras when the data has no labels), marker area by file size,
a label per point, the Keras model's accuracy as a dashed line.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed).
"""

from __future__ import annotations

import io

from .report import BenchmarkReport

_COLOURS = {"tflite": "tab:blue", "onnx": "tab:orange", "ort": "tab:green"}


def plot_png(report: BenchmarkReport) -> bytes:
    """The PNG bytes of the trade-off plot of ``report``'s successful rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in report.rows if r.ok and r.latency is not None]
    use_accuracy = any(r.accuracy is not None for r in rows)
    fig = Figure(figsize=(7.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    biggest = max((r.size_bytes or 0 for r in rows), default=0) or 1
    points = [(r.latency.p50, 100 * ((r.accuracy if use_accuracy else r.agreement) or 0.0)) for r in rows]
    for r, (x, y), lift in zip(rows, points, _label_lifts(points)):
        ax.scatter([x], [y], s=60 + 540 * (r.size_bytes or 0) / biggest, alpha=0.6,
                   color=_COLOURS.get(r.format, "tab:gray"), edgecolors="black", linewidths=0.5)
        ax.annotate(f"{r.format} {r.precision}, {(r.size_bytes or 0) / 1024:.0f} KiB", (x, y),
                    textcoords="offset points", xytext=(10, 4 + 11 * lift), fontsize=8)
    if use_accuracy and report.keras_accuracy is not None:
        ax.axhline(100 * report.keras_accuracy, color="gray", linestyle="--", linewidth=1,
                   label=f"Keras {100 * report.keras_accuracy:.2f}%")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(f"latency p50 (ms, batch 1, {report.threads} thread(s))")
    ax.set_ylabel("accuracy (%)" if use_accuracy else "top-1 agreement with Keras (%)")
    failed = [r.key for r in report.rows if not r.ok]
    title = f"edgekit benchmark: {report.model}" + (f"\nfailed: {', '.join(failed)}" if failed else "")
    ax.set_title(title, fontsize=9)
    ax.margins(x=0.25, y=0.2)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _label_lifts(points: list[tuple[float, float]], near: float = 0.06) -> list[int]:
    """How many label lines each point's label is raised, so that labels of points that
    nearly coincide (int8 and fp32 at the same accuracy and latency, say) stack, not overlap."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xspan = (max(xs) - min(xs)) if xs else 0.0
    yspan = (max(ys) - min(ys)) if ys else 0.0
    xspan, yspan = xspan or max(abs(x) for x in xs or [1.0]) or 1.0, yspan or 1.0
    lifts: list[int] = []
    for i, (x, y) in enumerate(points):
        lifts.append(sum(1 for (px, py) in points[:i]
                         if abs(px - x) < near * xspan and abs(py - y) < near * yspan))
    return lifts
