"""Helpers shared by the tests of commands that write resumable runs (``train``, ``qat``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def interrupt_after_first_epoch(monkeypatch, start) -> None:
    """Call ``start()`` as if the process were killed right after epoch 1's checkpoint was
    written (KeyboardInterrupt from the checkpoint callback), then restore the callback."""
    interrupt_after_epoch(monkeypatch, start, 1)


def interrupt_after_epoch(monkeypatch, start, epochs: int) -> None:
    """Call ``start()`` as if the process were killed right after the checkpoint of epoch
    ``epochs`` (counted from 1) was written, then restore the callback."""
    from edgekit.train import runstate

    original = runstate.EpochCheckpoint.on_epoch_end

    def crash_after_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 == epochs:
            raise KeyboardInterrupt(f"simulated kill after epoch {epochs}")

    monkeypatch.setattr(runstate.EpochCheckpoint, "on_epoch_end", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        start()
    monkeypatch.setattr(runstate.EpochCheckpoint, "on_epoch_end", original)


def assert_same_weights(a: Path, b: Path) -> None:
    """The ``model.keras`` of run folders ``a`` and ``b`` hold the same weights (float tolerance)."""
    import keras

    first = keras.models.load_model(Path(a) / "model.keras", compile=False).get_weights()
    second = keras.models.load_model(Path(b) / "model.keras", compile=False).get_weights()
    assert len(first) == len(second)
    for x, y in zip(first, second):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
