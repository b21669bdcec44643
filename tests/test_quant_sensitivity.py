"""The accuracy budget's layer ranking (``edgekit.export.keras_sensitivity``)."""

from __future__ import annotations

import numpy as np


def test_match_names_converter_tensors_to_layers():
    from edgekit.export.keras_sensitivity import match

    layers = {"block6a_se_excite", "avg_pool", "stem_conv", "stem_bn", "stem_activation"}
    assert match("efficientnetb0_1/block6a_se_excite_1/Mul", layers) == ["block6a_se_excite"]
    fused = "model/stem_activation_1/Relu6;model/stem_bn_1/batchnorm/add_1;model/stem_conv_1/convolution"
    assert match(fused, layers) == ["stem_activation", "stem_bn", "stem_conv"]
    assert match("efficientnetb0_1/avg_pool_1/Mean:0", layers) == ["avg_pool"]
    assert match("Transpose__123", layers) == []


def test_rank_puts_flip_prone_layers_first_and_unknown_names_last():
    from edgekit.export.keras_sensitivity import rank

    flips = {"a": (0.0, 0.1), "b": (0.02, 0.5), "c": (0.0, 0.3)}
    names = ["m/a_1/Relu", "other", "m/c_1/Mul", "m/b_1/Mean"]
    assert rank(names, flips) == ["m/b_1/Mean", "m/c_1/Mul", "m/a_1/Relu", "other"]


def test_layer_flips_sees_downstream_amplification():
    """Two parallel branches with the same range: the one the classifier weighs 1000x more
    causes the flips, although both round the same way on their own."""
    import keras

    from edgekit.export.keras_sensitivity import layer_flips

    rng = np.random.default_rng(0)
    x_in = keras.Input((8,))
    quiet = keras.layers.Dense(4, name="quiet")(x_in)
    loud = keras.layers.Dense(4, name="loud")(x_in)
    quiet_head = keras.layers.Dense(3, name="quiet_head", use_bias=False)(quiet)
    loud_head = keras.layers.Dense(3, name="loud_head", use_bias=False)(loud)
    out = keras.layers.Softmax(name="softmax")(keras.layers.Add(name="sum")([quiet_head, loud_head]))
    model = keras.Model(x_in, out)
    w = rng.normal(size=(8, 4)).astype("float32")
    model.get_layer("quiet").set_weights([w, np.zeros(4, "float32")])
    model.get_layer("loud").set_weights([w, np.zeros(4, "float32")])
    head = rng.normal(size=(4, 3)).astype("float32")
    model.get_layer("quiet_head").set_weights([head * 0.01])
    model.get_layer("loud_head").set_weights([head * 10.0])
    flips = layer_flips(model, rng.normal(size=(64, 8)).astype("float32"))
    assert flips["loud"] > flips["quiet"] and flips["loud"][0] > 0
    assert set(flips) >= {"quiet", "loud", "quiet_head", "loud_head", "sum", "softmax"}
