"""Candidates: a configuration with its exact MACs and parameters (the zoo's counting), its
estimated file size, and what prediction, measurement and proxy training add to it.

Counting is exact and needs no TensorFlow conversion, nor a build: MobileNet v1/v2 and
EfficientNet B/Lite are counted from their block tables (``plan_counts`` of
:mod:`edgekit.models.mobilenet` and :mod:`edgekit.models.efficientnet`, equal to
``count_model`` of the built model, which tests/test_scale.py checks), because Keras spends
half a second to a second creating the layers of one model and a grid has up to a hundred.
An architecture without a plan counter is built and counted (``count_model``) per configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edgekit.latency.sampling import Config

# Bytes per weight in the exported file, by --precision (int8 and dynamic-range files store
# int8 weights; fp16 files float16). An estimate: biases, metadata and the graph add a little.
BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "dynamic": 1, "int8": 1}


@dataclass
class Candidate:
    config: Config
    macs: int
    param_count: int
    size_kb: float  # param_count x bytes per weight / 1024
    predicted_ms: float | None = None
    measured_ms: float | None = None
    val_accuracy: float | None = None  # proxy training's validation accuracy
    under_budget: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def overrides(self) -> dict:
        return dict(self.config.overrides)

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def describe(self) -> str:
        """``alpha 0.35 at 96x96`` / ``width 0.83, depth 0.69 at 168x168``."""
        knobs = ", ".join(f"{k} {v:g}" for k, v in self.config.knobs.items())
        return f"{knobs} at {self.input_size}x{self.input_size}"

    def train_command(self, data: str | None = None) -> str:
        """The ``edgekit train`` command line that builds this configuration."""
        flags = [f"--{k} {v:g}" for k, v in self.config.knobs.items()]
        tag = "_".join(f"{k}{v:g}" for k, v in self.config.knobs.items())
        return " ".join(["edgekit train", self.arch, *flags, f"--input-size {self.input_size}",
                         f"--data {data or 'DIR'}", f"--out runs/{self.arch}_{tag}_{self.input_size}"])

    def to_dict(self, data: str | None = None) -> dict:
        return {"arch": self.arch, "overrides": self.overrides, "input_size": self.input_size,
                "phi": self.config.phi, "macs": self.macs, "param_count": self.param_count,
                "size_kb": round(self.size_kb, 1),
                "predicted_ms": _ms(self.predicted_ms), "measured_ms": _ms(self.measured_ms),
                "val_accuracy": self.val_accuracy, "under_budget": self.under_budget,
                "train_command": self.train_command(data), "notes": list(self.notes)}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def size_kb(param_count: int, precision: str) -> float:
    try:
        per_weight = BYTES_PER_WEIGHT[precision]
    except KeyError:
        raise ValueError(f"--precision got {precision!r}; expected one of {', '.join(BYTES_PER_WEIGHT)}") from None
    return param_count * per_weight / 1024


def count_configs(configs: list[Config], precision: str, num_classes: int = 1000,
                  progress: Callable[[str], None] | None = None) -> list[Candidate]:
    """Each configuration as a :class:`Candidate` with exact MACs and parameters."""
    from edgekit.models import count_model, create_model, get_spec

    planned = _plan_counters()
    candidates = []
    for config in configs:
        knobs = config.knobs
        spec = get_spec(config.arch)
        if spec.builder in planned:
            macs, params = planned[spec.builder]({**spec.params, **knobs}, config.input_size, num_classes)
        else:
            if progress is not None:
                progress(f"counting {config.arch} {knobs} at {config.input_size}")
            size = config.input_size
            count = count_model(create_model(config.arch, (size, size, 3), num_classes, **knobs))
            macs, params = count.macs, count.params
        candidates.append(Candidate(config, macs, params, size_kb(params, precision)))
    return candidates


def _plan_counters() -> dict:
    """Builder -> (family parameters, size, classes) -> (MACs, parameters), from the tables."""
    from edgekit.models import efficientnet, mobilenet

    return {
        mobilenet.build_mobilenet_v1: lambda p, size, k: mobilenet.plan_counts_v1(
            p["alpha"], p["depth_multiplier"], size, k),
        mobilenet.build_mobilenet_v2: lambda p, size, k: mobilenet.plan_counts_v2(p["alpha"], p["expansion"], size, k),
        efficientnet.build_efficientnet: lambda p, size, k: efficientnet.plan_counts(
            p["width"], p["depth"], p.get("lite", False), size, k),
    }
