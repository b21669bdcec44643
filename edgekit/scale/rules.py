"""Which configurations a family can be scaled to: the scaling rules as data.

- EfficientNet B and Lite: compound scaling (Tan & Le 2019, "EfficientNet: Rethinking Model
  Scaling for CNNs", arXiv:1905.11946, eq. 3): depth alpha^phi, width beta^phi, resolution
  gamma^phi with alpha=1.2, beta=1.1, gamma=1.15 (alpha * beta^2 * gamma^2 ~= 2, so each step
  of phi roughly doubles the MACs), applied to B0 / Lite0 at 224 over phi from -4 (about 50M
  MACs, for the smallest devices) to +3 (about B3) in steps of 0.25.
  Resolutions are rounded to a multiple of 8: a phi step of 0.25 moves the resolution by
  about 3.5% (8 px at 224), so rounding to 32 would merge neighbouring phis into one
  resolution and leave steps in the MACs curve; a multiple of 8 keeps the feature maps of the
  first three stride-2 stages exact (no padded edge).
- MobileNet v1 and v2 (Howard et al. 2017; Sandler et al. 2018): the width multiplier alpha x
  input resolution grid of the papers, at the alphas keras.applications has ImageNet weights
  for (so ``edgekit train --weights imagenet`` can start from them) and resolutions 96..224 in
  steps of 8 (with steps of 16, neighbouring configurations were up to 30% apart in MACs, and a
  budget falling in such a gap could only be used to 70%; steps of 8 close most gaps to under 15%). The builders have no depth (repeat) multiplier for MobileNet: v1's
  ``depth_multiplier`` is the depthwise channel multiplier and v2's ``expansion`` the bottleneck
  expansion, neither a depth, so they stay at 1 and 6.

``Family.at_resolution(base)`` (``edgekit scale --base-resolution``) moves the base resolution
for small images: the same rules, anchored at e.g. 32 px instead of 224.

The ``width`` and ``resolution`` rules scale one knob only. For EfficientNet they spend the
same MACs factor 2^phi as the compound rule on that knob (width 2^(phi/2), since MACs grow
with its square; resolution likewise), so that the three rules can be compared at equal
MACs; for MobileNet they are the alpha row at 224 and the resolution column at alpha 1.0.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from enum import Enum

from edgekit.latency.sampling import Config
from edgekit.models import get_spec
from edgekit.models.efficientnet import Scaling, compound_coefficients, stage_plan

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution bases (Tan & Le 2019, section 3.3)
RESOLUTION_MULTIPLE = 8
MIN_RESOLUTION = 32  # the zoo's smallest input (ModelSpec.min_size of these families)
PHIS = tuple(q / 4 for q in range(-16, 13))  # -4 .. +3 in steps of 0.25
MOBILENET_RESOLUTIONS = tuple(range(96, 225, 8))


class Rule(str, Enum):
    """How a family's configurations are generated."""

    COMPOUND = "compound"  # width, depth and resolution together (MobileNet: the alpha x resolution grid)
    WIDTH = "width"  # width only, at the base resolution
    RESOLUTION = "resolution"  # resolution only, at the base width


@dataclass(frozen=True)
class Family:
    """A scalable family: its base architecture and the grid each rule walks."""

    name: str
    arch: str  # the registered base variant the multipliers apply to
    alphas: tuple[float, ...] = ()  # MobileNet width multipliers; () for compound-scaled families
    resolutions: tuple[int, ...] = MOBILENET_RESOLUTIONS
    phis: tuple[float, ...] = PHIS
    base_resolution: int = 224

    @property
    def compound(self) -> bool:
        return not self.alphas

    def at_resolution(self, base: int) -> Family:
        """This family scaled from ``base`` pixels instead of its base resolution, for images far
        smaller than ImageNet's (e.g. 32 for 28-32 px images): compound phis multiply ``base``;
        MobileNet's resolution column is scaled by base / base_resolution (multiples of 8, at
        least :data:`MIN_RESOLUTION`). ValueError for a base under MIN_RESOLUTION."""
        if isinstance(base, bool) or not isinstance(base, int) or base < MIN_RESOLUTION:
            raise ValueError(f"--base-resolution got {base!r}; expected an integer >= {MIN_RESOLUTION} "
                             "(the zoo's smallest input)")
        if base == self.base_resolution:
            return self
        ratio = base / self.base_resolution
        sizes = tuple(sorted({round_resolution(r * ratio) for r in self.resolutions}))
        return replace(self, base_resolution=base, resolutions=sizes)

    def configs(self, rule: Rule) -> list[Config]:
        rule = parse_rule(rule)
        return self._phi_configs(rule) if self.compound else self._grid_configs(rule)

    def _grid_configs(self, rule: Rule) -> list[Config]:
        alphas = (1.0,) if rule is Rule.RESOLUTION else self.alphas
        sizes = (self.base_resolution,) if rule is Rule.WIDTH else self.resolutions
        return [Config.of(self.arch, {"alpha": a}, s) for a in alphas for s in sizes]

    def _phi_configs(self, rule: Rule) -> list[Config]:
        lite = bool(get_spec(self.arch).params.get("lite", False))
        configs, seen = [], set()
        for phi in self.phis:
            width, depth, factor = multipliers(phi, rule)
            size = round_resolution(self.base_resolution * factor)
            overrides = {"width": round(width, 4), "depth": round(depth, 4), "resolution": size}
            # Neighbouring phis can round to the same channels, repeats and resolution: the same
            # network, kept once (the smaller multipliers).
            scaling = Scaling(overrides["width"], overrides["depth"], lite)
            key = (scaling.stem(), scaling.head(), tuple(stage_plan(scaling)), size)
            if key not in seen:
                seen.add(key)
                configs.append(Config.of(self.arch, overrides, size, phi))
        return configs


FAMILIES = {f.name: f for f in (
    Family("mobilenet_v1", "mobilenet_v1", alphas=(0.25, 0.5, 0.75, 1.0)),
    Family("mobilenet_v2", "mobilenet_v2", alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4)),
    Family("efficientnet", "efficientnet_b0"),
    Family("efficientnet_lite", "efficientnet_lite0"),
)}


def get_family(name: str | Family) -> Family:
    """The scalable family ``name`` (a :class:`Family` is returned as is: a custom grid);
    ValueError listing the known ones otherwise."""
    if isinstance(name, Family):
        return name
    try:
        return FAMILIES[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(FAMILIES), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"FAMILY got {name!r}; expected one of {', '.join(FAMILIES)}{hint}") from None


def parse_rule(value: str | Rule) -> Rule:
    if isinstance(value, Rule):
        return value
    try:
        return Rule(str(value).strip().lower())
    except ValueError:
        raise ValueError(f"--rule got {value!r}; expected one of {', '.join(r.value for r in Rule)}") from None


def multipliers(phi: float, rule: Rule = Rule.COMPOUND) -> tuple[float, float, float]:
    """(width, depth, resolution factor) of ``phi`` under ``rule`` (module docstring)."""
    rule = parse_rule(rule)
    if rule is Rule.COMPOUND:
        width, depth, _ = compound_coefficients(phi, ALPHA, BETA, GAMMA)
        return width, depth, GAMMA ** phi
    one_knob = 2.0 ** (phi / 2)
    return (one_knob, 1.0, 1.0) if rule is Rule.WIDTH else (1.0, 1.0, one_knob)


def round_resolution(value: float) -> int:
    """The nearest multiple of :data:`RESOLUTION_MULTIPLE`, at least :data:`MIN_RESOLUTION`."""
    return max(MIN_RESOLUTION, int(round(value / RESOLUTION_MULTIPLE)) * RESOLUTION_MULTIPLE)
