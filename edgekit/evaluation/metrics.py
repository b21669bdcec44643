"""What ``edgekit evaluate`` reports from top-1 predictions: accuracy, per-class accuracy, the
confusion matrix, and top-1 agreement with a reference model (the fraction of images whose
top-1 class equals the reference's, as ``edgekit export`` reports for each file). numpy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(labels: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """k x k counts: row = true class, column = predicted class."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


def agreement(probs: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows whose argmax equals the reference's."""
    return float(np.mean(probs.argmax(axis=1) == reference.argmax(axis=1)))


def scores(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict:
    """accuracy, per_class_accuracy (None for a class without images), class_names and
    confusion_matrix of the top-1 predictions of ``probs`` (N x classes)."""
    pred = probs.argmax(axis=1)
    cm = confusion(labels, pred, len(class_names))
    per_class = {name: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None)
                 for i, name in enumerate(class_names)}
    return {"accuracy": float((pred == labels).mean()), "per_class_accuracy": per_class,
            "class_names": list(class_names), "confusion_matrix": cm.tolist()}
