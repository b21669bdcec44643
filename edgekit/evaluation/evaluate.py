"""``evaluate``: one evaluation of one model or an ensemble on one split of a data set.

Models are loaded by kind: an exported .tflite/.onnx/.ort file through ``edgekit.runtime``
(:mod:`.files`, no TensorFlow), a run folder or a .keras file through Keras
(``edgekit.evaluation.keras_model``, imported only then). Every kind yields a :class:`Scorer`, so an
ensemble may mix them: each member prepares the images as it was trained (or exported) to take
them, and the members' probabilities are averaged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, Union, runtime_checkable

import numpy as np

from edgekit.data.sources import LabeledImages, load_split

from .files import EXPECTED, FileModel, is_model_file
from .metrics import agreement, scores
from .outputs import require_matplotlib, write_outputs
from .tta import Tta



@runtime_checkable
class Scorer(Protocol):
    """A loaded model that gives class probabilities for labelled images."""

    path: str

    @property
    def num_classes(self) -> int | None:
        """Classes it scores, when known before running it."""

    def probabilities(self, images: LabeledImages, tta: Tta) -> np.ndarray:
        """N x classes probabilities, averaged over the ``tta`` views of each image."""


ModelRef = Union[str, os.PathLike, Scorer]


def load_model(path: ModelRef) -> Scorer:
    """A run folder, .keras file or exported file as a :class:`Scorer` (a Scorer is returned
    as it is); ValueError naming the path and the problem for anything else."""
    if isinstance(path, Scorer):
        return path
    path = str(path)
    if is_model_file(path):
        return FileModel.load(path)
    if not os.path.exists(path):
        raise ValueError(f"MODEL {path!r} does not exist; {EXPECTED}")
    if os.path.isfile(path) and not path.endswith(".keras"):
        raise ValueError(f"MODEL got {path!r}; {EXPECTED}")
    try:
        from edgekit.evaluation.keras_model import load_for_eval
    except ImportError as exc:  # the device install: the runtime only
        raise ValueError(f"MODEL {path!r} is not an exported .tflite/.onnx/.ort file; a run folder or a .keras "
                         f"file needs TensorFlow and Keras to evaluate ({exc}); install edgekit[train]") from None
    return load_for_eval(path)


def needs_tensorflow(paths: Sequence[ModelRef | None]) -> bool:
    """Whether evaluating ``paths`` loads a Keras model (anything but exported files)."""
    return any(p is not None and not isinstance(p, Scorer) and not is_model_file(p) for p in paths)


def evaluate(models: Sequence[ModelRef], data: str, split: str = "test", tta: str | Tta = "none",
             out_dir: str | None = None, limit: int | None = None, reference: ModelRef | None = None) -> dict:
    """Accuracy, per-class accuracy and confusion matrix of ``models`` (their probabilities
    averaged) on ``split`` of ``data``, and with ``reference`` their top-1 agreement with it
    (under the same TTA). ``limit``: N images drawn with seed 0 (``LabeledImages.sample``), the
    ones ``edgekit export --num-validation N`` validates on. Writes evaluation.json and
    confusion.png to ``out_dir`` when given."""
    mode = Tta.parse(tta)
    if not models:
        raise ValueError("models got an empty list; expected at least one model")
    if out_dir:
        require_matplotlib(out_dir)
    scorers = [load_model(m) for m in models]
    ref = None if reference is None else load_model(reference)
    images = load_split(data, split)
    if limit is not None:
        images = images.sample(limit, seed=0)
    members = scorers if ref is None else [*scorers, ref]
    for scorer in members:
        _check_classes(scorer.path, scorer.num_classes, data, images)
    probs = [scorer.probabilities(images, mode) for scorer in members]
    for scorer, p in zip(members, probs):
        _check_classes(scorer.path, p.shape[1], data, images)  # a .keras file names no classes before it runs
    mean = np.mean(probs[:len(scorers)], axis=0)
    metrics = scores(images.labels, mean, images.class_names)
    result = {"accuracy": metrics.pop("accuracy"), "images": len(images), "split": split, "tta": mode.value,
              "models": [s.path for s in scorers], "reference": None if ref is None else ref.path,
              "agreement": None if ref is None else agreement(mean, probs[-1]), **metrics,
              "skipped": len(images.skipped)}
    if out_dir:
        write_outputs(Path(out_dir), result, images.class_names)
    return result


def _check_classes(path: str, count: int | None, data: str, images: LabeledImages) -> None:
    if count is not None and count != len(images.class_names):
        raise ValueError(f"MODEL {path!r} has {count} classes; the data {str(data)!r} has "
                         f"{len(images.class_names)}")

