"""Sparse categorical cross-entropy with label smoothing.

Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture", section 7)
trains against ``(1 - eps) * onehot(y) + eps / K`` instead of the one-hot target, which keeps
logits from growing without bound and regularises a small network that starts to overfit.
Keras 3's ``SparseCategoricalCrossentropy`` has no ``label_smoothing`` argument (only the
one-hot ``CategoricalCrossentropy`` does), so integer labels get this loss:

    loss = -(1 - eps) * log p[y] - (eps / K) * sum_k log p[k]
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="edgekit")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against softmax probabilities, smoothed by ``eps``."""

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label smoothing got {label_smoothing!r}; expected a value in [0, 1)")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        k = ops.shape(y_pred)[-1]
        log_p = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        nll = -ops.sum(ops.one_hot(labels, k, dtype="float32") * log_p, axis=-1)
        uniform = -ops.mean(log_p, axis=-1)
        eps = self.label_smoothing
        return (1.0 - eps) * nll + eps * uniform

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def training_loss(label_smoothing: float, mixed: bool) -> keras.losses.Loss | str:
    """The loss of training batches: integer labels (smoothed or not), or, when ``mixed``
    (mixing.py), class probabilities under categorical cross-entropy."""
    if mixed:
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    return SmoothedSparseCrossentropy(label_smoothing) if label_smoothing else "sparse_categorical_crossentropy"
