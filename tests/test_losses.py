"""Label-smoothed sparse cross-entropy against Keras' one-hot CategoricalCrossentropy."""

import keras
import numpy as np
import pytest

from edgekit.train.config import TrainConfig
from edgekit.train.losses import SmoothedSparseCrossentropy


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_matches_keras_one_hot_label_smoothing(eps):
    rng = np.random.default_rng(1)
    p = rng.random((8, 5)).astype("float32")
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, 5, 8)
    ours = float(SmoothedSparseCrossentropy(eps)(y, p))
    ref = float(keras.losses.CategoricalCrossentropy(label_smoothing=eps)(np.eye(5)[y], p))
    assert ours == pytest.approx(ref, rel=1e-5)


def test_smoothing_penalises_overconfidence():
    y = np.array([0])
    sure = np.array([[1.0 - 4e-6, 1e-6, 1e-6, 1e-6, 1e-6]], "float32")
    soft = np.array([[0.92, 0.02, 0.02, 0.02, 0.02]], "float32")
    loss = SmoothedSparseCrossentropy(0.1)
    assert float(loss(y, soft)) < float(loss(y, sure))


def test_round_trips_through_config():
    loss = SmoothedSparseCrossentropy(0.2)
    again = SmoothedSparseCrossentropy.from_config(loss.get_config())
    assert again.label_smoothing == 0.2


@pytest.mark.parametrize("eps", [-0.1, 1.0, 2.0])
def test_bad_smoothing_is_refused(eps):
    with pytest.raises(ValueError, match="label"):
        SmoothedSparseCrossentropy(eps)
    with pytest.raises(ValueError, match="--label-smoothing got"):
        TrainConfig(arch="mobilenet_v2", data="d", out="o", label_smoothing=eps)
