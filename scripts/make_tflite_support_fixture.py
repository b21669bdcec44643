"""Regenerate tests/fixtures/tfls_*.tflite: small image classifiers labelled by the real
third-party writer, TFLite Support's ``metadata_writers`` (TFLite Model Metadata,
metadata_schema.fbs, entry ``TFLITE_METADATA`` plus an appended zip of associated files).

tflite-support 0.4.4 needs numpy < 2 (and the system's libusb-1.0), so it cannot live in the
project venv; the script runs in two steps, each in its own environment:

    # 1. the bare models, with the project's TensorFlow
    PYTHONPATH=. .venv/bin/python scripts/make_tflite_support_fixture.py models /tmp/tfls-models

    # 2. the labels and normalisation, with tflite-support in a throwaway venv
    apt-get install -y libusb-1.0-0
    python3.11 -m venv /tmp/tfls-venv
    /tmp/tfls-venv/bin/pip install tflite-support==0.4.4 "numpy<2"
    /tmp/tfls-venv/bin/python scripts/make_tflite_support_fixture.py label /tmp/tfls-models tests/fixtures

Step 1 writes ``float.tflite`` (float32 in and out) and ``uint8.tflite`` (full integer, uint8 in
and out) for a seeded 28x28x3 RGB -> 10-class Keras model; step 2 labels them with
``image_classifier.MetadataWriter.create_for_inference(model, [127.5], [127.5], [labels])``,
the labels being calibration/fashion-mnist/class_names.txt, and writes ``tfls_float.tflite``
and ``tfls_uint8.tflite``. The files are not byte-for-byte reproducible across TensorFlow
versions (the converter's output changes); the tests only rely on what the metadata says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "calibration" / "fashion-mnist"
SIZE, CLASSES = 28, 10
MEAN, STD = 127.5, 127.5
MODELS = ("float", "uint8")


def _keras_model():
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(CLASSES, activation="softmax", name="probs")
    model = keras.Model(inp, dense(x))
    rng = np.random.default_rng(0)  # spread scores: rankings should not hinge on rounding
    dense.set_weights([rng.normal(0, 4, (8, CLASSES)).astype(np.float32),
                       np.linspace(-2, 2, CLASSES).astype(np.float32)])
    return model


def _calibration():
    import numpy as np
    from PIL import Image

    images = sorted((SAMPLE / "train").glob("*/*.png"))[::10]
    return [((np.asarray(Image.open(p).convert("RGB"), np.float32) - MEAN) / STD)[None] for p in images]


def make_models(out: Path) -> None:
    import tensorflow as tf

    out.mkdir(parents=True, exist_ok=True)
    model = _keras_model()
    (out / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    data = _calibration()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x] for x in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    (out / "uint8.tflite").write_bytes(converter.convert())


def label_models(models: Path, out: Path) -> None:
    from tflite_support.metadata_writers import image_classifier, writer_utils

    out.mkdir(parents=True, exist_ok=True)
    labels = SAMPLE / "class_names.txt"
    for name in MODELS:
        buffer = writer_utils.load_file(str(models / f"{name}.tflite"))
        writer = image_classifier.MetadataWriter.create_for_inference(buffer, [MEAN], [STD], [str(labels)])
        writer_utils.save_file(writer.populate(), str(out / f"tfls_{name}.tflite"))
        print(f"wrote {out / f'tfls_{name}.tflite'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("models", help="step 1 (project venv): bare float and uint8 models").add_argument("out", type=Path)
    label = sub.add_parser("label", help="step 2 (tflite-support venv): label the models")
    label.add_argument("models", type=Path)
    label.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.step == "models":
        make_models(args.out)
    else:
        label_models(args.models, args.out)


if __name__ == "__main__":
    sys.exit(main())
