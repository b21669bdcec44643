"""The budget a configuration must meet, and the choice under it: the candidate with the most
MACs among those that fit (more compute, within the budget, is the better network: the
lesson of the EfficientNet paper), or a one-line error that names the smallest reachable one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from .candidates import Candidate


class Metric(str, Enum):
    LATENCY_MS = "latency_ms"  # predicted by a latency model, then measured
    MACS = "macs"
    PARAMS = "params"
    SIZE_KB = "size_kb"  # estimated: parameters x bytes per weight at --precision

    @property
    def option(self) -> str:
        return {"latency_ms": "--max-latency-ms", "macs": "--max-macs", "params": "--max-params",
                "size_kb": "--max-size-kb"}[self.value]


@dataclass(frozen=True)
class Budget:
    metric: Metric
    limit: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", Metric(self.metric))
        ok = isinstance(self.limit, (int, float)) and not isinstance(self.limit, bool)
        if not (ok and math.isfinite(self.limit) and self.limit > 0):
            raise ValueError(f"{self.metric.option} got {self.limit!r}; expected a number > 0")

    def value(self, c: Candidate) -> float | None:
        """The candidate's figure for this budget: predicted ms for latency (None: not predicted)."""
        return {Metric.LATENCY_MS: c.predicted_ms, Metric.MACS: c.macs, Metric.PARAMS: c.param_count,
                Metric.SIZE_KB: c.size_kb}[self.metric]

    def fits(self, c: Candidate) -> bool:
        value = self.value(c)
        return value is not None and value <= self.limit

    def describe(self, value: float) -> str:
        return {Metric.LATENCY_MS: f"{value:.2f} ms", Metric.MACS: f"{human(value)} MACs",
                Metric.PARAMS: f"{human(value)} params", Metric.SIZE_KB: f"{value:.0f} KB"}[self.metric]

    def to_dict(self) -> dict:
        return {"metric": self.metric.value, "limit": self.limit, "option": self.metric.option}


class UnreachableBudget(ValueError):
    """No configuration of the family meets the budget."""


def human(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:g}"


def mark_and_rank(family: str, candidates: list[Candidate], budget: Budget) -> list[Candidate]:
    """Set ``under_budget`` on every candidate; return those under it, most MACs first (then
    most parameters). UnreachableBudget (a one-line ValueError) when none is."""
    for c in candidates:
        c.under_budget = budget.fits(c)
    under = sorted((c for c in candidates if c.under_budget), key=lambda c: (-c.macs, -c.param_count))
    if not under:
        raise unreachable(family, candidates, budget)
    return under


def unreachable(family: str, candidates: list[Candidate], budget: Budget, what: str = "") -> UnreachableBudget:
    known = [c for c in candidates if budget.value(c) is not None]
    if not known:
        return UnreachableBudget(f"no {family} configuration fits {budget.metric.option} {budget.limit:g}{what}")
    smallest = min(known, key=lambda c: (budget.value(c), c.macs))
    figures = [f"{human(smallest.macs)} MACs", f"{human(smallest.param_count)} params"]
    if budget.metric in (Metric.MACS, Metric.PARAMS):
        figures.pop(0 if budget.metric is Metric.MACS else 1)
    return UnreachableBudget(
        f"no {family} configuration fits {budget.metric.option} {budget.limit:g}{what}: the smallest reachable is "
        f"{budget.describe(budget.value(smallest))} ({smallest.describe()}: {', '.join(figures)})")
