"""The candidates as a PNG: cost (predicted latency with a latency model, else MACs) against
capacity (estimated KB for a size budget, else parameters), log scales; the Pareto front (the
candidates that no other beats with both a lower cost and more capacity) as a line, candidates
under budget filled, over budget hollow, measured ones ringed, the chosen one a star, the budget
a dashed line on its axis.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed), as
``edgekit.benchmark.plot``.
"""

from __future__ import annotations

import io

from .budget import Budget, Metric
from .candidates import Candidate


def _axes(budget: Budget, latency: bool):
    x = ("predicted latency (ms)", lambda c: c.predicted_ms) if latency else ("MACs", lambda c: c.macs)
    y = ("estimated size (KB)", lambda c: c.size_kb) if budget.metric is Metric.SIZE_KB \
        else ("parameters", lambda c: c.param_count)
    return x, y


def pareto_png(family: str, rule: str, candidates: list[Candidate], chosen: Candidate | None,
               budget: Budget) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    latency = budget.metric is Metric.LATENCY_MS
    (xlabel, xv), (ylabel, yv) = _axes(budget, latency)
    points = [c for c in candidates if xv(c) is not None]
    fig = Figure(figsize=(7.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for under, style in ((True, {"color": "tab:blue", "label": "under budget"}),
                         (False, {"facecolors": "none", "edgecolors": "tab:gray", "label": "over budget"})):
        group = [c for c in points if c.under_budget == under]
        if group:
            ax.scatter([xv(c) for c in group], [yv(c) for c in group], s=28, alpha=0.8, **style)
    measured = [c for c in points if c.measured_ms is not None]
    if measured:
        ax.scatter([xv(c) for c in measured], [yv(c) for c in measured], s=120, facecolors="none",
                   edgecolors="tab:orange", linewidths=1.5, label="measured")
    front = _front(points, xv, yv)
    ax.plot([xv(c) for c in front], [yv(c) for c in front], color="tab:blue", linewidth=0.8, alpha=0.5,
            label="Pareto front")
    if chosen is not None and xv(chosen) is not None:
        ax.scatter([xv(chosen)], [yv(chosen)], marker="*", s=320, color="tab:red", edgecolors="black",
                   zorder=5, label=f"chosen: {chosen.describe()}")
    if budget.metric in (Metric.LATENCY_MS, Metric.MACS):
        ax.axvline(budget.limit, color="tab:red", linestyle="--", linewidth=1, label=f"budget {budget.limit:g}")
    else:  # params or size: the y axis
        ax.axhline(budget.limit, color="tab:red", linestyle="--", linewidth=1, label=f"budget {budget.limit:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"edgekit scale {family} (rule {rule}, {budget.metric.option} {budget.limit:g}): "
                 f"{len(candidates)} candidates", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _front(points: list[Candidate], xv, yv) -> list[Candidate]:
    """Candidates that no other beats with both a lower cost (x) and more capacity (y), by cost."""
    front, best_y = [], -float("inf")
    for c in sorted(points, key=lambda c: (xv(c), -yv(c))):
        if yv(c) > best_y:
            front.append(c)
            best_y = yv(c)
    return front
