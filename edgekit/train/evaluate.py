"""``edgekit evaluate``: accuracy, per-class accuracy and confusion matrix, with multi-crop
test-time augmentation and model ensembles.

TTA as in the benchmark practice of Krizhevsky et al. 2012 (AlexNet, section 4.1): average
the softmax over the image and its mirror ("flip"), or over the four corner crops and the
centre crop of a slightly larger image and their mirrors ("10crop"). An ensemble averages
the softmax outputs of several models that share the input preprocessing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edgekit.data import load_split, normalize_tf, to_pixels_tf
from edgekit.data.sources import LabeledImages
from edgekit.models.safe_load import load_keras_model
from edgekit.runtime.spec import PreprocessSpec

from .report import save_figure
from .runstate import atomic_write_text
from .transfer import is_run_dir, read_run_metadata

TTA_MODES = ("none", "flip", "10crop")
CROP_ENLARGE = 1.125  # 10crop: crops of the input size from an image 12.5% larger (36 for 32)


@dataclass
class LoadedModel:
    model: keras.Model
    spec: PreprocessSpec
    class_names: tuple[str, ...]
    path: str


def load_for_eval(path: str) -> LoadedModel:
    """A run dir (model + its preprocessing) or a .keras file (preprocessing from its input)."""
    if is_run_dir(path):
        meta = read_run_metadata(path)
        model = load_keras_model(Path(path) / "model.keras")
        return LoadedModel(model, PreprocessSpec.from_dict(meta["preprocess"]),
                           tuple(meta.get("class_names", ())), path)
    if str(path).endswith(".keras") and os.path.isfile(path):
        model = load_keras_model(path)
        h, w, c = model.input_shape[1:]
        return LoadedModel(model, PreprocessSpec((h, w), c), (), path)
    if not os.path.exists(path):
        raise ValueError(f"MODEL {path!r} does not exist; expected an edgekit run directory or a .keras file")
    raise ValueError(f"MODEL got {path!r}; expected an edgekit run directory or a .keras file")


def _views(pixels: tf.Tensor, spec: PreprocessSpec, tta: str) -> list[tf.Tensor]:
    if tta == "none":
        return [pixels]
    if tta == "flip":
        return [pixels, tf.image.flip_left_right(pixels)]
    h, w = spec.size
    big = tf.image.resize(pixels, (round(h * CROP_ENLARGE), round(w * CROP_ENLARGE)), method="bilinear")
    H, W = big.shape[1], big.shape[2]
    offsets = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w), ((H - h) // 2, (W - w) // 2)]
    crops = [big[:, y:y + h, x:x + w, :] for y, x in offsets]
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


def confusion(labels: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


def evaluate(models: list[str], data: str, split: str = "test", tta: str = "none",
             out_dir: str | None = None, limit: int | None = None) -> dict:
    if tta not in TTA_MODES:
        raise ValueError(f"--tta got {tta!r}; expected one of {', '.join(TTA_MODES)}")
    loaded = [load_for_eval(m) for m in models]
    images = load_split(data, split)
    if limit is not None and limit < len(images):
        images = images.subset(np.arange(limit))
    for lm in loaded:
        if lm.class_names and len(lm.class_names) != len(images.class_names):
            raise ValueError(f"{lm.path} has {len(lm.class_names)} classes; {data} has {len(images.class_names)}")
    probs = np.mean([predict_probs(lm, images, tta) for lm in loaded], axis=0)
    pred = probs.argmax(axis=1)
    cm = confusion(images.labels, pred, len(images.class_names))
    per_class = {name: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None)
                 for i, name in enumerate(images.class_names)}
    result = {"accuracy": float((pred == images.labels).mean()), "images": len(images),
              "split": split, "tta": tta, "models": models, "per_class_accuracy": per_class,
              "class_names": list(images.class_names), "confusion_matrix": cm.tolist(),
              "skipped": len(images.skipped)}
    if out_dir:
        _write_outputs(Path(out_dir), result, cm, images.class_names)
    return result


def _write_outputs(out: Path, result: dict, cm: np.ndarray, names) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "evaluation.json", json.dumps(result, indent=2))
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(names), 1 + 0.6 * len(names)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {result['accuracy']:.4f} ({result['tta']})")
    fig.tight_layout()
    try:
        save_figure(fig, out / "confusion.png")
    finally:
        plt.close(fig)
