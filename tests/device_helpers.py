"""Shared by the tests of the device path (``edgekit predict``, examples/): tiny model files
shaped for the shipped Fashion-MNIST sample, and a Python environment without TensorFlow.

``tiny_fashion_files`` builds a 28x28x1 -> 10-class Keras model and converts it (TensorFlow is
used here only to make the files). ``no_tensorflow_env`` returns the environment of a
subprocess in which importing TensorFlow, Keras or tf2onnx fails, as on a device: a
``sitecustomize`` on PYTHONPATH installs the same ``sys.meta_path`` blocker as
tests/test_runtime.py and reports every blocked attempt on stderr, so that a test also sees
attempts the code under test catches and ignores.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import warnings
from pathlib import Path

import numpy as np

from conftest import REPO

SAMPLE = REPO / "calibration" / "fashion-mnist"
CLASS_NAMES = tuple(SAMPLE.joinpath("class_names.txt").read_text().splitlines())
SIZE = 28
BLOCKED_MARK = "edgekit-test: blocked import of"

_SITECUSTOMIZE = textwrap.dedent(
    f"""
    import sys

    BLOCKED = {{"tensorflow", "keras", "tf2onnx", "tf_keras"}} | set(ALSO_BLOCKED)

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                print("{BLOCKED_MARK}", name, file=sys.stderr)
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def no_tensorflow_env(folder: Path, also_block: tuple[str, ...] = ()) -> dict[str, str]:
    """Environment for a subprocess that cannot import TensorFlow (see the module docstring),
    nor the top-level packages in ``also_block`` (say "PIL")."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(f"ALSO_BLOCKED = {tuple(also_block)!r}\n" + _SITECUSTOMIZE)
    path = os.pathsep.join([str(folder), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}


def sample_images(per_class: int = 1, split: str = "test") -> list[Path]:
    """The first ``per_class`` shipped sample images of each class, in label order."""
    folders = sorted(p for p in (SAMPLE / split).iterdir() if p.is_dir())
    return [image for folder in folders for image in sorted(folder.glob("*.png"))[:per_class]]


def tiny_fashion_model():
    """A seeded 28x28x1 -> 10 softmax classifier whose class scores are well apart."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="probs")
    model = keras.Model(inp, dense(x))
    rng = np.random.default_rng(0)
    # Random-init scores are nearly uniform; a wide kernel and spread biases make the ranking
    # clear, so that orderings compared across engines do not hinge on rounding.
    dense.set_weights([rng.normal(0, 4, (6, len(CLASS_NAMES))).astype(np.float32),
                       np.linspace(-2, 2, len(CLASS_NAMES)).astype(np.float32)])
    return model


def tiny_fashion_files(folder: Path, keys=("fp32", "int8", "onnx", "plain")) -> dict:
    """Model files under ``folder``: fp32/int8 TFLite and fp32 ONNX with edgekit metadata, and
    ``plain``, the fp32 TFLite without metadata. Returns the paths, the Keras model and the
    metadata."""
    import tensorflow as tf

    from edgekit.runtime import ModelMetadata, PreprocessSpec, write_metadata

    model = tiny_fashion_model()
    meta = ModelMetadata(PreprocessSpec((SIZE, SIZE), channels=1), class_names=CLASS_NAMES,
                         architecture="tiny", precision="fp32")
    paths = {}
    if {"fp32", "plain"} & set(keys):
        paths["plain"] = folder / "plain.tflite"
        paths["plain"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    if "fp32" in keys:
        paths["fp32"] = folder / "fp32.tflite"
        shutil.copy(paths["plain"], paths["fp32"])
    if "int8" in keys:
        paths["int8"] = folder / "int8.tflite"
        paths["int8"].write_bytes(_int8_tflite(model))
    if "onnx" in keys:
        import tf2onnx

        paths["onnx"] = folder / "fp32.onnx"
        spec = (tf.TensorSpec((None, SIZE, SIZE, 1), tf.float32, name="image"),)
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=str(paths["onnx"]))
    for key in ("fp32", "int8", "onnx"):
        if key in paths:
            write_metadata(paths[key], meta)
    return {"paths": paths, "keras": model, "meta": meta}


def _int8_tflite(model) -> bytes:
    import tensorflow as tf

    from PIL import Image

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    calibration = [(np.asarray(Image.open(p), np.float32)[None, ..., None] - 127.5) / 127.5
                   for p in sample_images(per_class=3, split="train")]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": they come from the data
        warnings.simplefilter("ignore", UserWarning)
        return converter.convert()
