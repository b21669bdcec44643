"""Weight averaging: train with the raw weights, validate, keep and save their exponential
moving average (Polyak & Juditsky 1992, "Acceleration of stochastic approximation by
averaging"; the EMA of the EfficientNet and MobileNetV3 training recipes, Tan & Le 2019 sec. 5.2).

``--ema`` sets the average's momentum m (each optimizer step: average = m * average + (1 - m) *
weights); ``auto`` picks m from the phase's optimizer steps so that the average spans its last
``AUTO_FRACTION`` (time constant 1 / (1 - m) steps), so that a short run is not averaged with its
random start and a long one still averages over more than a few batches.

Keras keeps the average in the optimizer (``use_ema``); :class:`EpochEMA` swaps it into the
model at each epoch's end, before precise BN, validation, early stopping and the epoch
checkpoint see the model, and swaps the raw weights back at the next epoch's start. So the
checkpoint holds both (the model: the average; the optimizer: the raw weights), and ``--resume``
swaps back at its first epoch as an uninterrupted run does.
"""

from __future__ import annotations

import math

from keras.callbacks import SwapEMAWeights

from .epochs import AUTO, Auto

OFF = "off"
AUTO_FRACTION = 0.05  # of the phase's optimizer steps: the average's time constant


def parse_ema(value) -> float | Auto | None:
    """``--ema``: ``off`` (None), ``auto``, or a momentum in (0, 1); ValueError naming the value."""
    if value is None or value is AUTO or isinstance(value, float) and 0.0 < value < 1.0:
        return value
    text = str(value).strip().lower()
    if text == OFF:
        return None
    if text == AUTO.value:
        return AUTO
    try:
        momentum = float(text)
    except ValueError:
        momentum = math.nan
    if not 0.0 < momentum < 1.0:
        raise ValueError(f"--ema got {value!r}; expected off, auto or a momentum in (0, 1)")
    return momentum


def ema_momentum(setting: float | Auto | None, steps: int) -> float | None:
    """The momentum a phase of ``steps`` optimizer steps trains with (None: no averaging)."""
    if setting is not AUTO:
        return setting
    return 1.0 - 1.0 / max(1.0, AUTO_FRACTION * steps)


def ema_record(setting: float | Auto | None, phase_steps: dict[str, int]) -> dict | None:
    """What edgekit.json keeps of ``--ema``: as given, and the momentum and time constant (in
    optimizer steps) that each phase of ``phase_steps`` ({phase: its steps}) trained with."""
    if setting is None:
        return None
    phases = {}
    for phase, steps in phase_steps.items():
        momentum = ema_momentum(setting, steps)
        phases[phase] = {"momentum": momentum, "time_constant_steps": round(1 / (1 - momentum), 1), "steps": steps}
    return {"requested": setting.value if setting is AUTO else setting, "phases": phases}


class EpochEMA(SwapEMAWeights):
    """Keras's SwapEMAWeights in its per-epoch mode, which a resumed run starts in the swapped
    state (``in_model``: its checkpoint was written with the average in the model). On the last
    epoch Keras's callback also copies the average into the optimizer, so that ``fit``'s final
    ``finalize_variable_values`` leaves the average in the model; after an early stop the best
    epoch's saved average is restored instead (epochs.restore_best)."""

    def __init__(self, in_model: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = bool(in_model)
