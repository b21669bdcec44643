"""The Keras side of ``edgekit evaluate``: a run folder or a .keras file as a
``edgekit.evaluation.Scorer``, its images prepared by the data layer's tf preprocessing (as in
training) and its test-time augmentation views cut with TensorFlow ops.

The rest of the evaluation (metrics, agreement, ensembles, exported files, outputs) is in the
other modules of ``edgekit.evaluation``; ``evaluate.load_model`` imports this module only for
Keras models, so that scoring exported files needs no TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from edgekit.data import normalize_tf, to_pixels_tf
from edgekit.data.sources import LabeledImages
from edgekit.evaluation.files import EXPECTED
from edgekit.evaluation.tta import Tta, crop_offsets, enlarged_size
from edgekit.models.safe_load import load_keras_model
from edgekit.run_record import RECORD, load_run
from edgekit.runtime.spec import PreprocessSpec


@dataclass
class LoadedModel:
    model: keras.Model
    spec: PreprocessSpec
    class_names: tuple[str, ...]
    path: str

    @property
    def num_classes(self) -> int | None:
        """The run's class count; None for a bare .keras file (the output size is checked after)."""
        return len(self.class_names) or None

    def probabilities(self, images: LabeledImages, tta: Tta) -> np.ndarray:
        return predict_probs(self, images, Tta.parse(tta).value)


def load_for_eval(path: str) -> LoadedModel:
    """A run dir (model + its preprocessing) or a .keras file (preprocessing from its input)."""
    if os.path.isdir(path):
        try:
            run = load_run(path, "MODEL")
        except ValueError as exc:
            raise ValueError(f"{exc}; {EXPECTED}") from None
        if run.record.preprocess is None:
            raise ValueError(f"MODEL {path!r}: its {RECORD} records no preprocessing")
        return LoadedModel(load_keras_model(run.model), run.record.preprocess, run.record.class_names or (), path)
    if str(path).endswith(".keras") and os.path.isfile(path):
        model = load_keras_model(path)
        h, w, c = model.input_shape[1:]
        return LoadedModel(model, PreprocessSpec((h, w), c), (), path)
    if not os.path.exists(path):
        raise ValueError(f"MODEL {path!r} does not exist; {EXPECTED}")
    raise ValueError(f"MODEL got {path!r}; {EXPECTED}")


def _views(pixels: tf.Tensor, spec: PreprocessSpec, tta: str) -> list[tf.Tensor]:
    if tta == "none":
        return [pixels]
    if tta == "flip":
        return [pixels, tf.image.flip_left_right(pixels)]
    h, w = spec.size
    big = tf.image.resize(pixels, enlarged_size(spec.size), method="bilinear")
    crops = [big[:, y:y + h, x:x + w, :] for y, x in crop_offsets(spec.size)]
    return crops + [tf.image.flip_left_right(c) for c in crops]


def predict_probs(loaded: LoadedModel, data: LabeledImages, tta: str, batch_size: int = 256) -> np.ndarray:
    spec = loaded.spec
    ds = tf.data.Dataset.range(len(data)).batch(batch_size)
    out = []
    for idx in ds:
        if data.in_memory:
            raw = tf.gather(tf.constant(data.images), idx)
            pixels = to_pixels_tf(raw, spec)
        else:
            from edgekit.data.preprocess import decode_image_tf
            pixels = tf.stack([to_pixels_tf(decode_image_tf(data.images[int(i)]), spec) for i in idx])
        views = [np.asarray(loaded.model(normalize_tf(v, spec), training=False)) for v in _views(pixels, spec, tta)]
        out.append(np.mean(views, axis=0))
    return np.concatenate(out)
