"""Shared test set-up: quiet TensorFlow, one Keras session per test, the repo's paths."""

from __future__ import annotations

import gc
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Free each test's graphs so a long parametrised run stays small in memory."""
    yield
    if "keras" in __import__("sys").modules:
        import keras

        keras.backend.clear_session()
    gc.collect()


@pytest.fixture
def repo() -> pathlib.Path:
    return REPO
