"""Shared test set-up: quiet TensorFlow, one Keras session per test, the repo's paths."""

from __future__ import annotations

import gc
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Reset Keras' global state after each test; see _collect_garbage for memory.
    ``free_memory=False``: Keras 3's default also runs a full garbage collection (~0.25 s per
    test with TensorFlow loaded), which _collect_garbage does once per module instead."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session(free_memory=False)


@pytest.fixture(scope="module", autouse=True)
def _collect_garbage():
    """One full collection per module: with TensorFlow loaded each costs ~0.3 s, too much per
    test, while a long parametrised module of large models still frees its graphs."""
    yield
    gc.collect()


@pytest.fixture
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="module")
def sample_npz(tmp_path_factory):
    """The shipped real Fashion-MNIST sample as an in-memory .npz (fast to iterate)."""
    import numpy as np
    from PIL import Image

    from edgekit.data import load_split

    d = load_split(REPO / "calibration" / "fashion-mnist", "train", val_fraction=0)
    images = np.stack([np.asarray(Image.open(p).convert("L"))[..., None] for p in d.images])
    path = tmp_path_factory.mktemp("data") / "sample.npz"
    np.savez(path, images=images, labels=d.labels, class_names=np.array(d.class_names))
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as ``edgekit train`` writes it, trained for a few seconds on the sample
    (one per test module that asks for it)."""
    from export_helpers import tiny_model, train_run

    from edgekit.runtime import PreprocessSpec

    spec = PreprocessSpec(size=(28, 28), channels=1)
    return train_run(tmp_path_factory.mktemp("runs") / "fmnist", tiny_model(), spec, "tiny", epochs=30)
