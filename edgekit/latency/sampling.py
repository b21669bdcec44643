"""Zoo configurations to measure: (architecture, ``create_model`` overrides, input size).

The grids cover the knobs ``edgekit scale`` turns: MobileNet v1/v2 width x resolution, and
EfficientNet-Lite0-4 / B0-B3 at resolutions around their own. :func:`sample` orders a pool
seeded and round-robin over the families, so that a fit cut short by its time budget has seen
every family.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


# The order knobs are shown in (descriptions, command lines); others follow in name order.
KNOB_ORDER = ("alpha", "width", "depth")


@dataclass(frozen=True)
class Config:
    """One zoo configuration: ``create_model(arch, input_shape=(input_size, input_size, 3),
    **overrides)``; ``phi``: EfficientNet's compound coefficient when the scaling rules made it."""

    arch: str
    overrides: tuple[tuple[str, float], ...] = ()
    input_size: int = 224
    phi: float | None = None

    @classmethod
    def of(cls, arch: str, overrides: dict | None = None, input_size: int = 224, phi: float | None = None) -> "Config":
        return cls(arch, tuple(sorted((overrides or {}).items())), int(input_size), phi)

    @property
    def key(self) -> str:
        opts = ",".join(f"{k}={v:g}" for k, v in self.overrides)
        return f"{self.arch}[{opts}]@{self.input_size}" if opts else f"{self.arch}@{self.input_size}"

    @property
    def knobs(self) -> dict[str, float]:
        """The overrides but ``resolution`` (the input size is ``input_size``), in KNOB_ORDER."""
        rank = {k: i for i, k in enumerate(KNOB_ORDER)}
        items = sorted((kv for kv in self.overrides if kv[0] != "resolution"), key=lambda kv: (rank.get(kv[0], 99), kv[0]))
        return dict(items)

    @property
    def family(self) -> str:
        for name in ("efficientnet_lite", "efficientnet_b"):
            if self.arch.startswith(name):
                return name
        return self.arch

    def to_dict(self) -> dict:
        return {"config": self.key, "arch": self.arch, "overrides": dict(self.overrides), "input_size": self.input_size}


def _lite(b: int) -> int:
    return (224, 240, 260, 280, 300)[b]


def _b(b: int) -> int:
    return (224, 240, 260, 300)[b]


def zoo_grid() -> list[Config]:
    """Every configuration a default fit may draw from."""
    grid = [Config.of("mobilenet_v1", {"alpha": a}, r) for a in (0.25, 0.5, 0.75, 1.0) for r in (128, 160, 192, 224)]
    # MobileNet v1 does not round its channels (alpha 0.3: 9, 19, 38, 76, 153, 307): widths off
    # the keras grid give the fit channel counts that are no multiple of 4 or 8, where some
    # runtimes leave their fast path (kernels.py, channel alignment).
    grid += [Config.of("mobilenet_v1", {"alpha": a}, r) for a, r in ((0.3, 160), (0.3, 224), (0.4, 128), (0.4, 192),
                                                                    (0.65, 128), (0.65, 192), (0.8, 160), (0.8, 224))]
    grid += [Config.of("mobilenet_v2", {"alpha": a}, r) for a in (0.35, 0.5, 0.75, 1.0, 1.3)
             for r in (96, 128, 160, 192, 224)]
    grid += [Config.of(f"efficientnet_lite{b}", None, _lite(b) + d) for b in range(5) for d in (-64, -32, 0)]
    grid += [Config.of(f"efficientnet_b{b}", None, _b(b) + d) for b in range(4) for d in (-64, -32, 0)]
    return grid


def tiny_grid() -> list[Config]:
    """A few tiny models (seconds to export and time): for smoke tests, not for a useful fit."""
    return [Config.of("mobilenet_v2", {"alpha": 0.35}, 32), Config.of("mobilenet_v1", {"alpha": 0.25}, 32),
            Config.of("mobilenet_v2", {"alpha": 0.35}, 48), Config.of("mobilenet_v1", {"alpha": 0.5}, 32),
            Config.of("mobilenet_v2", {"alpha": 0.5}, 32), Config.of("mobilenet_v1", {"alpha": 0.25}, 48)]


GRIDS = {"zoo": zoo_grid, "tiny": tiny_grid}


def sample(pool: list[Config], seed: int = 0, exclude=()) -> list[Config]:
    """``pool`` without the ``exclude``d configurations (Config or key), shuffled with ``seed``
    within each family, then interleaved family by family."""
    skip = {c.key if isinstance(c, Config) else str(c) for c in exclude}
    rng = random.Random(seed)
    families: dict[str, list[Config]] = {}
    for config in pool:
        if config.key not in skip:
            families.setdefault(config.family, []).append(config)
    for configs in families.values():
        rng.shuffle(configs)
    order = sorted(families)
    rng.shuffle(order)
    out = []
    for i in range(max((len(v) for v in families.values()), default=0)):
        out += [families[f][i] for f in order if i < len(families[f])]
    return out
