"""The model zoo registry: ``create_model(name, **overrides)`` and ``list_models()``.

Every architecture is registered as a :class:`ModelSpec`: a builder function plus the family
parameters that make a variant (EfficientNet-B3 is the EfficientNet builder with
width 1.2, depth 1.4, resolution 300). Tests are parametrised over ``list_models()``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import keras

from edgekit.messages import first_line

POOLING = (None, "avg", "max")


@dataclass(frozen=True)
class BuildOptions:
    """What every builder receives, already checked."""

    input_shape: tuple[int, int, int]
    num_classes: int = 1000
    include_top: bool = True
    pooling: str | None = None
    dropout: float | None = None  # None: the family's own default
    classifier_activation: str | None = "softmax"
    bn_momentum: float | None = None  # None: the family's (keras.applications') default
    name: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One registered architecture (a family builder plus the parameters of this variant)."""

    name: str
    family: str
    builder: Callable[..., keras.Model]
    default_size: int
    min_size: int
    default_channels: int = 3
    params: dict[str, Any] = field(default_factory=dict)
    # Preprocessing the network expects: x = (pixel - mean) / std on 0..255 pixels.
    mean: float = 127.5
    std: float = 127.5
    keras_weights: bool = False  # layer names and shapes equal keras.applications'
    reference: str = ""

    def default_input_shape(self) -> tuple[int, int, int]:
        size = int(self.params.get("resolution", self.default_size))
        return (size, size, self.default_channels)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names of every registered architecture, in registration order."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; unknown names raise ValueError with close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(_REGISTRY)}"
        raise ValueError(f"unknown model {name!r}{hint}") from None


def _check_input_shape(spec: ModelSpec, input_shape: Any) -> tuple[int, int, int]:
    if input_shape is None:
        return spec.default_input_shape()
    try:
        h, w, c = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape got {input_shape!r}; expected (height, width, channels)") from None
    if c not in (1, 3):
        raise ValueError(f"input_shape got {c} channels; expected 1 or 3")
    if min(h, w) < spec.min_size:
        raise ValueError(
            f"input_shape got {h}x{w}; {spec.name} needs at least {spec.min_size}x{spec.min_size}"
        )
    return (h, w, c)


def _check_params(spec: ModelSpec, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(spec.params))
    if unknown:
        allowed = ", ".join(sorted(spec.params)) or "none"
        raise ValueError(f"{spec.name} got unknown option(s) {', '.join(unknown)}; accepted: {allowed}")
    params = dict(spec.params)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(spec.params[key], (int, float)) and not isinstance(spec.params[key], bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{spec.name} option {key} got {value!r}; expected a number > 0")
        params[key] = value
    return params


def build_options(spec: ModelSpec, input_shape: Any = None, num_classes: int = 1000,
                  include_top: bool = True, pooling: str | None = None,
                  dropout: float | None = None, classifier_activation: str | None = "softmax",
                  bn_momentum: float | None = None) -> BuildOptions:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes got {num_classes!r}; expected an integer >= 1")
    if pooling not in POOLING:
        raise ValueError(f"pooling got {pooling!r}; expected one of None, 'avg', 'max'")
    if dropout is not None and not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout got {dropout!r}; expected a value in [0, 1)")
    if bn_momentum is not None and not 0.0 < float(bn_momentum) < 1.0:
        raise ValueError(f"bn_momentum got {bn_momentum!r}; expected a value in (0, 1)")
    return BuildOptions(
        input_shape=_check_input_shape(spec, input_shape),
        num_classes=num_classes,
        include_top=bool(include_top),
        pooling=pooling,
        dropout=dropout,
        classifier_activation=classifier_activation,
        bn_momentum=bn_momentum,
        name=spec.name,
    )


def create_model(name: str, input_shape: Any = None, num_classes: int = 1000, *,
                 weights: str | None = None, include_top: bool = True,
                 pooling: str | None = None, dropout: float | None = None,
                 classifier_activation: str | None = "softmax",
                 bn_momentum: float | None = None, **overrides: Any) -> keras.Model:
    """Build a registered architecture as a Keras functional model.

    ``overrides`` are the family's parameters (``alpha``, ``depth_multiplier``, ``expansion``,
    ``width``, ``depth``, ``resolution``, ...); ``weights`` is None or a path to a weight file
    (a keras.applications ``.h5`` or a Keras ``.weights.h5``) loaded after building.
    """
    spec = get_spec(name)
    params = _check_params(spec, overrides)
    if input_shape is None and "resolution" in params:
        input_shape = (int(params["resolution"]),) * 2 + (spec.default_channels,)
    opts = build_options(spec, input_shape, num_classes, include_top, pooling, dropout,
                         classifier_activation, bn_momentum)
    model = spec.builder(opts, **{k: v for k, v in params.items() if k != "resolution"})
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: keras.Model, path: str) -> None:
    """Load a weight file into ``model``; a mismatch is a one-line ValueError."""
    import os

    if not os.path.isfile(path):
        raise ValueError(f"weights file {path!r} does not exist")
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as exc:
        first = first_line(exc)
        raise ValueError(f"weights file {path!r} does not fit {model.name}: {first}") from None


def with_params(spec: ModelSpec, name: str, reference: str = "", **params: Any) -> ModelSpec:
    """A variant of ``spec`` under a new name with some family parameters changed."""
    return replace(spec, name=name, params={**spec.params, **params}, reference=reference)
