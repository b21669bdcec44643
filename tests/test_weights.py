"""keras.applications weight files load into edgekit models and give the same outputs.

The ImageNet weight files keras.applications downloads are legacy HDF5 weight files; the test
writes such files from keras.applications models built with ``weights=None`` (no network) and
loads them through ``create_model(..., weights=PATH)``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from edgekit.models import create_model, get_spec, list_models

KERAS_BUILDERS = {
    "mobilenet_v1": lambda shape, alpha: keras.applications.MobileNet(
        input_shape=shape, alpha=alpha, weights=None, classes=10),
    "mobilenet_v2": lambda shape, alpha: keras.applications.MobileNetV2(
        input_shape=shape, alpha=alpha, weights=None, classes=10),
}
for _b in range(8):
    KERAS_BUILDERS[f"efficientnet_b{_b}"] = (
        lambda b: lambda shape, alpha: getattr(keras.applications, f"EfficientNetB{b}")(
            input_shape=shape, weights=None, classes=10))(_b)

SLOW = {"efficientnet_b3", "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}
CASES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
         for n in list_models() if get_spec(n).keras_weights]


def _randomise(model: keras.Model, seed: int = 0) -> None:
    """Give every weight (BN statistics included) distinct values so a swap would show."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0, 0.1, w.shape).astype("float32")
        if "variance" in w.path:
            value = np.abs(value) + 0.5
        w.assign(value)


def _write_legacy_h5(model: keras.Model, path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_every_keras_compatible_model_has_a_reference_builder():
    assert {n for n in list_models() if get_spec(n).keras_weights} == set(KERAS_BUILDERS)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("fmt", ["legacy.h5", "weights.h5"])
def test_keras_applications_weights_load_and_agree(name, fmt, tmp_path):
    shape, alpha = (48, 48, 3), 0.5 if name.startswith("mobilenet") else None
    reference = KERAS_BUILDERS[name](shape, alpha)
    _randomise(reference)
    path = tmp_path / f"w.{fmt}"
    if fmt == "legacy.h5":
        path = tmp_path / "w.h5"
        _write_legacy_h5(reference, path)
    else:
        reference.save_weights(path)
    ours = create_model(name, shape, 10, weights=str(path), **({"alpha": alpha} if alpha else {}))
    ref_layers = {l.name: [tuple(w.shape) for w in l.weights] for l in reference.layers if l.weights}
    our_layers = {l.name: [tuple(w.shape) for w in l.weights] for l in ours.layers if l.weights}
    assert our_layers == ref_layers
    x = np.random.default_rng(1).uniform(0, 255 if "efficientnet" in name else 1, (2, *shape))
    np.testing.assert_allclose(np.asarray(ours(x.astype("float32"))),
                               np.asarray(reference(x.astype("float32"))), rtol=1e-4, atol=1e-6)


def test_mismatched_weights_file_is_a_clear_error(tmp_path):
    reference = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    path = tmp_path / "w.weights.h5"
    reference.save_weights(path)
    with pytest.raises(ValueError, match="does not fit"):
        create_model("mobilenet_v2", (32, 32, 3), 10, alpha=1.0, weights=str(path))


def test_missing_weights_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        create_model("mobilenet_v2", (32, 32, 3), weights=str(tmp_path / "nope.h5"))
