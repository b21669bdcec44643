"""Tests of edgekit.data.augment: parsing, each augmentation, fancy PCA, the sample grid."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from edgekit.data import (
    AUGMENTATIONS,
    DEFAULT_AUGMENT,
    AugmentConfig,
    ColourPCA,
    DataError,
    LabeledImages,
    augment_grid,
    augment_pixels_tf,
    fit_colour_pca,
    make_dataset,
    parse_augment,
)
from edgekit.runtime.spec import PreprocessSpec

SPEC = PreprocessSpec(size=(16, 16), channels=3)
PCA = ColourPCA(np.array([0.2, 0.02, 0.005]), np.eye(3))


def _pixels(n: int = 8, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def _augment(pixels: np.ndarray, config: AugmentConfig, seed: tuple[int, int]) -> np.ndarray:
    return augment_pixels_tf(pixels, config, tf.constant(seed, tf.int64), PCA).numpy()


def test_parse_augment() -> None:
    assert parse_augment("flip, crop,PCA").enabled == ("flip", "crop", "pca")
    assert parse_augment(["rotate", "shear"]) == AugmentConfig(rotate=True, shear=True)
    assert parse_augment("none") == parse_augment("") == parse_augment(None) == AugmentConfig()
    assert parse_augment(",".join(AUGMENTATIONS)).enabled == tuple(AUGMENTATIONS)
    with pytest.raises(DataError, match="mixup; expected a comma list of flip, crop, scale, rotate"):
        parse_augment("flip,mixup")
    with pytest.raises(DataError, match="rotate_degrees got -1"):
        AugmentConfig(rotate_degrees=-1)
    with pytest.raises(DataError, match="scale_range got 1.5; expected a number in"):
        AugmentConfig(scale_range=1.5)


def _left_heavy(n: int, size: int = 32) -> np.ndarray:
    """Images bright in their left third only: a mirror moves the light to the right."""
    pixels = np.zeros((n, size, size, 1), np.float32)
    pixels[:, 4:-4, 2:size // 3] = 255.0
    return pixels


def test_training_default_never_mirrors() -> None:
    """The default of ``edgekit train`` (not only DEFAULT_AUGMENT) keeps left left: with the
    old default (flip) about half of these images come out mirrored."""
    from edgekit.train import TrainConfig

    config = parse_augment(TrainConfig("lenet5", "d", "o").augment)
    assert config.enabled and not config.flip
    pixels = _left_heavy(64)
    for seed in range(4):
        out = augment_pixels_tf(pixels, config, tf.constant((seed, 9), tf.int64)).numpy()
        half = out.shape[2] // 2
        assert (out[:, :, :half].sum(axis=(1, 2, 3)) > 4 * out[:, :, half:].sum(axis=(1, 2, 3))).all()
        assert not np.array_equal(out, pixels)  # it does augment


def test_cli_defaults_are_the_library_default() -> None:
    from edgekit.cli.train_cmd import DEFAULT_AUGMENT as CLI_DEFAULT, augment_command, train_command

    assert CLI_DEFAULT == DEFAULT_AUGMENT
    for command, name in ((train_command, "augment"), (augment_command, "names")):
        assert next(p for p in command.params if p.name == name).default == DEFAULT_AUGMENT


def test_scale_zooms_about_the_centre() -> None:
    """A centred square keeps its centre and changes its size by the drawn factor, within range."""
    pixels = np.zeros((32, 33, 33, 1), np.float32)
    pixels[:, 12:21, 12:21] = 255.0  # 9 px wide, centred
    out = _augment(pixels, AugmentConfig(scale=True, scale_range=0.3), (3, 4))
    widths = []
    for image in out[..., 0]:
        cols = np.flatnonzero(image[16] > 127.5)
        assert abs((cols[0] + cols[-1]) / 2 - 16) <= 0.5
        widths.append(len(cols))
    assert min(widths) >= 6 and max(widths) <= 12 and len(set(widths)) >= 3


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_each_augmentation_keeps_shape_range_and_is_seeded(name: str) -> None:
    pixels = _pixels()
    config = parse_augment(name)
    out = _augment(pixels, config, (1, 2))
    assert out.shape == pixels.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert np.array_equal(out, _augment(pixels, config, (1, 2)))
    assert not np.array_equal(out, _augment(pixels, config, (3, 4)))
    assert not np.allclose(out, pixels)


def test_flip_mirrors_some_images_exactly() -> None:
    pixels = _pixels(16)
    out = _augment(pixels, AugmentConfig(flip=True), (5, 6))
    mirrored = [np.array_equal(o, p[:, ::-1]) for o, p in zip(out, pixels)]
    kept = [np.array_equal(o, p) for o, p in zip(out, pixels)]
    assert all(m != k for m, k in zip(mirrored, kept)) and 0 < sum(mirrored) < 16


def test_crop_is_a_whole_pixel_shift_with_zero_padding() -> None:
    pixels = _pixels(6) + 1.0  # no true zeros, so padding is recognisable
    out = _augment(np.minimum(pixels, 255), AugmentConfig(crop=True), (7, 8))
    pad = 2  # 0.125 * 16
    for o, p in zip(out, np.minimum(pixels, 255)):
        padded = np.pad(p, ((pad, pad), (pad, pad), (0, 0)))
        shifts = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                  if np.array_equal(o, padded[dy:dy + 16, dx:dx + 16])]
        assert len(shifts) == 1


def test_color_shift_is_a_constant_per_image_and_channel() -> None:
    pixels = np.full((4, 8, 8, 3), 128.0, np.float32)
    out = _augment(pixels, AugmentConfig(color=True, color_shift=20.0), (1, 1))
    shift = out - pixels
    assert np.allclose(shift, shift[:, :1, :1, :]) and np.abs(shift).max() <= 20.0


def test_fancy_pca_eigenvectors_of_known_colour_spread() -> None:
    rng = np.random.default_rng(0)
    direction = np.array([1.0, 2.0, 2.0]) / 3.0  # unit vector
    t = rng.normal(0, 30, (4000, 1))
    noise = rng.normal(0, 2, (4000, 3))
    pixels = (120 + t * direction + noise).reshape(10, 20, 20, 3)
    pca = ColourPCA.from_pixel_batches(np.array_split(pixels, 3))
    assert np.all(np.diff(pca.eigenvalues) <= 0)
    np.testing.assert_allclose(pca.eigenvectors.T @ pca.eigenvectors, np.eye(3), atol=1e-10)
    assert abs(abs(pca.eigenvectors[:, 0] @ direction) - 1) < 1e-3
    cov = np.cov(pixels.reshape(-1, 3).T / 255.0, bias=True)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov))[::-1], pca.eigenvalues, rtol=1e-8)
    np.testing.assert_allclose(pca.eigenvalues[0], (30 / 255) ** 2 + (2 / 255) ** 2, rtol=0.1)


def test_fancy_pca_adds_alpha_lambda_p_per_image() -> None:
    pca = ColourPCA(np.array([0.04, 0.0, 0.0]), np.array([[0.6, 0.8, 0], [0.8, -0.6, 0], [0, 0, 1.0]]).T)
    pixels = np.full((5, 4, 4, 3), 128.0, np.float32)
    out = augment_pixels_tf(pixels, AugmentConfig(pca=True), tf.constant([3, 4], tf.int64), pca).numpy()
    delta = (out - pixels)[:, 0, 0, :]
    assert np.allclose(out - pixels, delta[:, None, None, :], atol=1e-4)
    along = delta / 255.0 / 0.04  # = alpha_1 * p_1
    np.testing.assert_allclose(along, np.outer(along @ pca.eigenvectors[:, 0], pca.eigenvectors[:, 0]), atol=1e-5)
    assert 0 < np.abs(along @ pca.eigenvectors[:, 0]).max() < 0.5  # alpha ~ N(0, 0.1)


def test_pca_needs_statistics() -> None:
    with pytest.raises(DataError, match="ColourPCA"):
        augment_pixels_tf(_pixels(), AugmentConfig(pca=True), tf.constant([0, 0], tf.int64))


def _data(n: int = 32) -> LabeledImages:
    images = np.random.default_rng(1).integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    return LabeledImages(images, np.arange(n) % 2, ("a", "b"), "augment test")


def test_make_dataset_augmentation_is_deterministic_and_training_only() -> None:
    data = _data()
    config = parse_augment("flip,crop,rotate,shear,color,pca")

    def first(training: bool, seed: int) -> np.ndarray:
        ds = make_dataset(data, SPEC, batch_size=16, training=training, augment=config, seed=seed)
        return next(ds.as_numpy_iterator())[0]

    a = first(True, 0)
    assert np.array_equal(a, first(True, 0)) and not np.array_equal(a, first(True, 1))
    assert a.min() >= -1.0 and a.max() <= 1.0
    plain = make_dataset(data, SPEC, batch_size=16, training=False)
    assert np.array_equal(first(False, 0), next(plain.as_numpy_iterator())[0])


def test_fit_colour_pca_on_grayscale_data() -> None:
    pca = fit_colour_pca(_data(), PreprocessSpec(size=(8, 8), channels=1))
    assert pca.eigenvalues.shape == (1,) and pca.eigenvectors.shape == (1, 1) and pca.eigenvalues[0] > 0


def test_augment_grid_writes_png_atomically(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    written = augment_grid(_data(), SPEC, parse_augment("flip,rotate"), out, n=6, seed=0)
    assert written == out and Image.open(out).format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
    with pytest.raises(DataError, match="n got 0"):
        augment_grid(_data(), SPEC, AugmentConfig(), out, n=0)
