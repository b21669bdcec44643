"""The int8 accuracy budget: measure what quantization costs, and keep layers float until it fits.

Every int8 file (TFLite, ONNX, and the .ort made from the ONNX graph) is scored on the export's
validation images against the Keras model: accuracy when the images have labels, top-1
agreement with Keras when they do not, and top-1 agreement in both cases. The file fits the
budget when it loses at most ``ExportOptions.max_accuracy_drop`` percentage points (default
``DEFAULT_MAX_DROP_PP``; None turns the budget off) **and** agrees with Keras on at least
``ExportOptions.min_agreement`` percent of the images (default ``DEFAULT_MIN_AGREEMENT``; None:
accuracy only). Agreement matters on its own: an int8 EfficientNet-B0 on Fashion-MNIST lost only
0.30 pp of accuracy while changing 2.4% of its answers, the gains on some images hiding the
losses on others. When the file does not fit, the layers
are ranked most sensitive first (per format: TFLite's QuantizationDebugger,
``edgekit.export.sensitivity``; onnxruntime's activation SQNR, ``edgekit.export.onnx_sensitivity``)
and the first ``k`` are kept in float. ``k`` is found by doubling and then bisection, so a
network of ``n`` layers costs about ``2 log2 n`` conversions, not ``n`` (selective
quantization as in TFLite's debugger guide:
https://ai.google.dev/edge/litert/models/quantization_debugger#selective_quantization).

A file that no tried ``k`` brings within the budget is still written (the best-scoring one);
the miss is in the report, and ``edgekit export --strict`` turns it into a non-zero exit.

A QAT run (``edgekit qat``) is exempt: its weights were trained for int8 everywhere with the
ranges written into its files, so no layer is kept float (``notes.budget.why`` says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

DEFAULT_MAX_DROP_PP = 0.5
DEFAULT_MIN_AGREEMENT = 98.5  # percent of top-1 answers equal to the Keras model's
LATENCY_MIN_TIME_S = 0.3  # per file, 1 thread: enough for a size-and-latency cost line


@dataclass
class BudgetOutcome:
    """What the budget did to one int8 file (stored in the file's export notes as ``budget``)."""

    max_drop_pp: float
    metric: str  # "accuracy" or "top-1 agreement with Keras"
    reference_percent: float  # the Keras model on the validation images
    plain_percent: float  # the int8 file before any layer was kept float
    percent: float  # the file written
    reached: bool
    min_agreement: float | None = None  # percent; None: accuracy only
    plain_agreement: float = 100.0  # top-1 agreement with Keras, percent
    agreement: float = 100.0
    kept_float: list[str] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # {"kept": k, "percent": score}, in the order tried
    plain_size_bytes: int = 0
    size_cost_bytes: int = 0
    plain_latency_ms: float | None = None  # 1 thread, median; only measured when layers were kept
    latency_ms: float | None = None

    @property
    def drop_pp(self) -> float:
        return round(self.reference_percent - self.percent, 4)

    def to_dict(self) -> dict:
        return {**asdict(self), "drop_pp": self.drop_pp}

    def summary(self) -> str:
        state = "within" if self.reached else "NOT within"
        line = f"int8 {self.metric} {self.percent:.2f}% vs Keras {self.reference_percent:.2f}% (drop {self.drop_pp:.2f} pp)"
        budget = f"the {self.max_drop_pp:g} pp budget"
        if self.min_agreement is not None:
            line += f", top-1 agreement {self.agreement:.2f}%"
            budget = f"the budget ({self.max_drop_pp:g} pp, agreement >= {self.min_agreement:g}%)"
        line += f", {state} {budget}"
        if not self.kept_float:
            return line
        cost = f"; size +{self.size_cost_bytes / 1024:.1f} KiB"
        if self.latency_ms is not None and self.plain_latency_ms is not None:
            cost += f", latency {self.plain_latency_ms:.3f} -> {self.latency_ms:.3f} ms (1 thread)"
        names = ", ".join(short_name(k) for k in self.kept_float[:6])
        more = f" and {len(self.kept_float) - 6} more" if len(self.kept_float) > 6 else ""
        plain = f"{self.plain_percent:.2f}%"
        if self.min_agreement is not None:
            plain += f", agreement {self.plain_agreement:.2f}%"
        return f"{line}, {len(self.kept_float)} layer(s) kept float (plain int8: {plain}){cost}: {names}{more}"


def short_name(tensor: str) -> str:
    """A readable layer name from a converter's tensor name (TFLite joins fused names with ';')."""
    return tensor.split(";")[0]


@dataclass(frozen=True)
class Score:
    """One int8 candidate on the validation images, in percent."""

    percent: float  # accuracy (top-1 agreement with Keras without labels)
    agreement: float  # top-1 agreement with Keras


@dataclass(frozen=True)
class Budget:
    """What an int8 file must reach: at most ``max_drop_pp`` below Keras, and (unless None) at
    least ``min_agreement`` percent top-1 agreement with Keras."""

    max_drop_pp: float
    min_agreement: float | None = None

    def shortfall(self, reference: float, score: Score) -> float:
        """Percentage points missing (0 when the score fits)."""
        missing = max(0.0, reference - score.percent - self.max_drop_pp)
        if self.min_agreement is not None:
            missing += max(0.0, self.min_agreement - score.agreement)
        return round(missing, 6)


Build = Callable[[list[str]], bytes]


def enforce(budget: Budget, metric: str, reference: float, plain: bytes, score: Callable[[bytes], Score],
            ranking: Callable[[], list[str]], build: Build,
            latency: Callable[[bytes], float] | None = None) -> tuple[bytes, BudgetOutcome]:
    """The int8 model to write and what the budget did: ``plain`` when it fits ``budget``
    (``reference``: the Keras percent), else ``build(ranked[:k])`` for the smallest ``k`` found to
    fit (or, when none fits, the one tried that misses by the fewest points)."""
    first = score(plain)
    outcome = BudgetOutcome(budget.max_drop_pp, metric, round(reference, 4), round(first.percent, 4),
                            round(first.percent, 4), reached=budget.shortfall(reference, first) == 0,
                            min_agreement=budget.min_agreement, plain_agreement=round(first.agreement, 4),
                            agreement=round(first.agreement, 4), plain_size_bytes=len(plain),
                            steps=[_step(0, first)])
    if outcome.reached:
        return plain, outcome
    ranked = ranking()
    tried: dict[int, tuple[Score, bytes]] = {0: (first, plain)}

    def fits(k: int) -> bool:
        if k not in tried:
            model = build(ranked[:k])
            tried[k] = (score(model), model)
            outcome.steps.append(_step(k, tried[k][0]))
        return budget.shortfall(reference, tried[k][0]) == 0

    k = smallest_fitting(len(ranked), fits)
    if k is None:  # the closest tried, fewest float layers on ties
        k = min(tried, key=lambda n: (budget.shortfall(reference, tried[n][0]), -tried[n][0].percent, n))
    best, model = tried[k]
    outcome.kept_float, outcome.percent = list(ranked[:k]), round(best.percent, 4)
    outcome.agreement = round(best.agreement, 4)
    outcome.reached = budget.shortfall(reference, best) == 0
    outcome.size_cost_bytes = len(model) - len(plain)
    if k and latency is not None:
        outcome.plain_latency_ms, outcome.latency_ms = round(latency(plain), 4), round(latency(model), 4)
    return model, outcome


def _step(kept: int, score: Score) -> dict:
    return {"kept": kept, "percent": round(score.percent, 4), "agreement": round(score.agreement, 4)}


def smallest_fitting(n: int, fits: Callable[[int], bool]) -> int | None:
    """The smallest ``k`` in 1..n with ``fits(k)``, assuming fits is monotone (more float layers
    do not hurt): doubling from 1, then bisection. None when even ``n`` does not fit."""
    low, k = 0, 1  # fits(low) is known False
    while k < n and not fits(k):
        low, k = k, 2 * k
    high = min(k, n)
    if high <= low or not fits(high):
        return None
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid
    return high


def reference_score(ctx) -> tuple[str, float]:
    """(metric, Keras percent) on the context's validation images."""
    acc = ctx.reference.accuracy
    return ("accuracy", 100 * acc) if acc is not None else ("top-1 agreement with Keras", 100.0)


def file_score(ctx, data: bytes, suffix: str, layout: str = "NHWC") -> Score:
    """Percent accuracy (or top-1 agreement with Keras without labels) and top-1 agreement of a
    model's bytes on the context's validation images, computed as the export's target computes
    them (its onnxruntime int8 fusion; the probe file records no target)."""
    from .validate import compare, run_file

    path = Path(ctx.workdir) / f"budget_probe{suffix}"
    path.write_bytes(data)
    v = compare(run_file(path, ctx.validation, layout, ctx.options.target.arch), ctx.validation, ctx.reference)
    return Score(100 * (v.accuracy if v.accuracy is not None else v.agreement), 100 * v.agreement)


def file_latency_ms(ctx, data: bytes, suffix: str, layout: str = "NHWC") -> float:
    """Median milliseconds of one image at 1 thread (``edgekit.profile``'s timing loop and
    engine settings)."""
    import numpy as np

    from edgekit.profile.latency import TimingPlan, measure, timing_settings
    from edgekit.runtime import Model

    path = Path(ctx.workdir) / f"budget_latency{suffix}"
    path.write_bytes(data)
    model = Model(path, settings=timing_settings(1))
    x = ctx.validation.inputs[:1]
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x)
    _, stats = measure(lambda: model.predict(x), TimingPlan(warmup=3, min_time_s=LATENCY_MIN_TIME_S))
    return stats.p50


def apply(ctx, key: str, plain: bytes, suffix: str, ranking: Callable[[], list[str]], build: Build,
          layout: str = "NHWC") -> bytes:
    """``enforce`` with the context's options, scores and notes; returns the bytes to write."""
    limit = ctx.options.max_accuracy_drop
    notes = ctx.notes.setdefault(key, {})
    if ctx.learned_ranges is not None:
        notes["budget"] = {"applied": False, "why": "QAT run: every layer stays int8 with the ranges it was "
                           "trained with; keeping layers float would undo what the fine-tuning learned"}
        return plain
    if limit is None:
        notes["budget"] = {"applied": False, "why": "--max-accuracy-drop none"}
        return plain
    if ctx.options.embedding or ctx.reference is None:
        notes["budget"] = {"applied": False, "why": "an embedding has no class scores to compare"}
        return plain
    metric, reference = reference_score(ctx)
    model, outcome = enforce(
        Budget(float(limit), ctx.options.min_agreement), metric, reference, plain,
        score=lambda data: file_score(ctx, data, suffix, layout), ranking=ranking, build=build,
        latency=lambda data: file_latency_ms(ctx, data, suffix, layout))
    notes["budget"] = {"applied": True, **outcome.to_dict(), "summary": outcome.summary()}
    return model
