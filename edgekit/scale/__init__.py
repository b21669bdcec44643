"""Scaling a model family to a device budget (issue 16 item 3).

``scale(ScaleOptions(family, Budget(Metric.MACS, 3e8)))`` enumerates the family's
configurations by its scaling rule (:mod:`.rules`: EfficientNet's compound phi, MobileNet's
alpha x resolution grid, or one knob only), counts each exactly (:mod:`.candidates`), keeps
those under the budget and chooses the one with the most MACs (:mod:`.budget`); with a latency
budget it predicts with a fitted latency model, then exports and times the best few
(:mod:`.measure`); ``proxy`` ranks the finalists by a short training (:mod:`.proxy`); a Pareto
PNG shows every candidate (:mod:`.plot`).
"""

from edgekit.latency.sampling import Config

from .budget import Budget, Metric, UnreachableBudget
from .candidates import BYTES_PER_WEIGHT, Candidate, count_configs
from .proxy import ProxyRecipe
from .rules import ALPHA, BETA, FAMILIES, GAMMA, Family, Rule, get_family, multipliers, round_resolution
from .search import SCHEMA, ScaleOptions, ScaleResult, load_latency_model, scale

__all__ = ["ALPHA", "BETA", "BYTES_PER_WEIGHT", "Budget", "Candidate", "Config", "FAMILIES", "Family", "GAMMA",
           "Metric", "ProxyRecipe", "Rule", "SCHEMA", "ScaleOptions", "ScaleResult", "UnreachableBudget",
           "count_configs", "get_family", "load_latency_model", "multipliers", "round_resolution", "scale"]
