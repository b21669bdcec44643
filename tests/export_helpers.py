"""Helpers shared by the export tests: the tiny Keras model, and run folders made on the
shipped Fashion-MNIST sample as ``edgekit train`` writes them (``conftest.run_dir`` trains one)."""

from __future__ import annotations

import json

from conftest import REPO

SAMPLE = REPO / "calibration" / "fashion-mnist"


def tiny_model(size: int = 28):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv1")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    x = keras.layers.Conv2D(32, 1, activation="relu", name="pw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="fc")(x))


def tiny_residual_model(size: int = 28):
    """``tiny_model`` with a residual block: the stem's output feeds both the block and its Add
    (a quantized tensor with two consumers, as in MobileNetV2 and EfficientNet)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 1))
    stem = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv1")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(stem)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    x = keras.layers.Conv2D(16, 1, name="project")(x)
    x = keras.layers.Add(name="add")([stem, x])
    x = keras.layers.Conv2D(32, 1, activation="relu", name="pw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="fc")(x))


def train_run(folder, model, spec, architecture: str, epochs: int):
    """Fit ``model`` on the shipped sample prepared by ``spec`` and save it in ``folder`` as
    ``edgekit train`` writes a run (model.keras + edgekit.json)."""
    import keras

    from edgekit.data import load_split, make_dataset

    data = load_split(SAMPLE, "train")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(make_dataset(data, spec, 32, training=True), epochs=epochs, verbose=0)
    return save_run(folder, model, spec, architecture)


def save_run(folder, model, spec, architecture: str):
    """Save ``model`` in ``folder`` as ``edgekit train`` writes a run on the shipped sample."""
    from edgekit.data import load_split

    class_names = load_split(SAMPLE, "train").class_names
    folder.mkdir()
    model.save(folder / "model.keras")
    (folder / "edgekit.json").write_text(json.dumps({
        "architecture": architecture, "preprocess": spec.to_dict(), "class_names": list(class_names),
        "data": {"path": str(SAMPLE), "split": "train", "fingerprint": "test"}}))
    return folder
