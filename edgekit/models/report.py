"""Counting reports behind ``edgekit summary`` and ``edgekit models``."""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras

from .counting import ModelCount, count_model
from .registry import create_model, get_spec, list_models
from .safe_load import load_keras_model


@dataclass(frozen=True)
class ZooRow:
    name: str
    family: str
    input_shape: tuple[int, int, int]
    params: int
    macs: int
    reference: str


def load_keras_file(path: str) -> keras.Model:
    """Load a ``.keras`` file in Keras safe mode (no arbitrary code from Lambda layers)."""
    if not os.path.isfile(path):
        raise ValueError(f"model file {path!r} " + ("is a folder" if os.path.isdir(path) else "does not exist"))
    return load_keras_model(path)


def summarize(arch: str, input_size: int | None = None, channels: int | None = None,
              num_classes: int = 1000, **params) -> ModelCount:
    """Count an architecture from the zoo (at an input size) or a saved ``.keras`` file."""
    if arch.endswith(".keras"):
        return count_model(load_keras_file(arch))
    spec = get_spec(arch)
    shape = None
    if input_size is not None or channels is not None:
        default = spec.default_input_shape()
        size = input_size if input_size is not None else default[0]
        shape = (size, size, channels if channels is not None else default[2])
    params = {k: v for k, v in params.items() if v is not None}
    return count_model(create_model(arch, shape, num_classes, **params))


def zoo_rows(names: list[str] | None = None) -> list[ZooRow]:
    """Every registered model at its default input size with 1000 classes."""
    rows = []
    for name in names or list_models():
        spec = get_spec(name)
        model = create_model(name)
        counted = count_model(model)
        rows.append(ZooRow(name, spec.family, spec.default_input_shape(), counted.params,
                           counted.macs, spec.reference))
        del model
        keras.backend.clear_session()
    return rows
