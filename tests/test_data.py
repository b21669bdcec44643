"""Tests of edgekit.data: sources, splits, IDX, preprocessing, tf.data pipeline, calibration."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgekit.data import (
    FASHION_MNIST_CLASSES,
    ArrayCalibration,
    CalibrationData,
    DataError,
    LabeledImages,
    calibration_batches,
    load_split,
    make_dataset,
    parse_idx,
    preprocess_tf,
    read_idx,
    stratified_split,
    write_idx,
)
from edgekit.runtime.spec import PreprocessSpec

REPO = Path(__file__).resolve().parents[1]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SAMPLE_DIR = REPO / "calibration" / "fashion-mnist"
HAS_FASHION = (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file()
SPEC = PreprocessSpec(size=(16, 16), channels=3)

try:
    from edgekit.runtime.preprocess import preprocess as runtime_preprocess
except ImportError:
    runtime_preprocess = None


def _image(rng: np.random.Generator, mode: str = "RGB", size: tuple[int, int] = (12, 10)) -> Image.Image:
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=None)


def make_folder(root: Path, counts: dict[str, int], seed: int = 0, fmt: str = "png", mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _image(rng, mode).save(root / name / f"{i:03d}.{fmt}")
    return root


# --- image folders and splits ---------------------------------------------------------------

def test_flat_folder_loads_sorted_classes_and_all_formats(tmp_path: Path) -> None:
    make_folder(tmp_path, {"dog": 3, "cat": 2}, fmt="png")
    rng = np.random.default_rng(1)
    _image(rng, "L").save(tmp_path / "cat" / "x.jpg")
    _image(rng, "RGB").save(tmp_path / "dog" / "y.bmp")
    _image(rng, "RGB").convert("P").save(tmp_path / "dog" / "z.gif")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    data = load_split(tmp_path, "train", val_fraction=0)
    assert data.class_names == ("cat", "dog")
    assert len(data) == 8 and not data.in_memory
    assert data.labels.dtype == np.int64
    assert list(data.labels) == [0, 0, 0, 1, 1, 1, 1, 1]
    assert data.skipped == []


def test_split_folder_uses_test_and_carves_val_from_train(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", {"a": 10, "b": 20})
    make_folder(tmp_path / "test", {"a": 2, "b": 3}, seed=5)
    test = load_split(tmp_path, "test")
    assert len(test) == 5 and all("/test/" in p for p in test.images)
    train = load_split(tmp_path, "train", val_fraction=0.2, seed=3)
    val = load_split(tmp_path, "val", val_fraction=0.2, seed=3)
    assert np.bincount(val.labels).tolist() == [2, 4]  # stratified: 20% of each class
    assert set(train.images).isdisjoint(val.images)
    assert len(set(train.images) | set(val.images)) == 30
    assert load_split(tmp_path, "val", val_fraction=0.2, seed=3).images == val.images
    assert load_split(tmp_path, "val", val_fraction=0.2, seed=4).images != val.images
    assert len(load_split(tmp_path, "train", val_fraction=0)) == 30


def test_val_folder_is_used_when_present(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", {"a": 4, "b": 4})
    make_folder(tmp_path / "val", {"a": 1, "b": 2})
    assert len(load_split(tmp_path, "val")) == 3
    assert len(load_split(tmp_path, "train")) == 8  # nothing held out when val/ exists


def test_test_split_with_a_missing_class_keeps_train_labels(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", {"a": 2, "b": 2, "c": 2})
    make_folder(tmp_path / "test", {"c": 2})
    test = load_split(tmp_path, "test")
    assert test.class_names == ("a", "b", "c") and test.labels.tolist() == [2, 2]


def test_corrupt_images_are_skipped_and_reported(tmp_path: Path) -> None:
    make_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "a" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = (tmp_path / "b" / "000.png").read_bytes()
    (tmp_path / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "b" / "empty.jpg").write_bytes(b"")
    data = load_split(tmp_path, val_fraction=0)
    assert len(data) == 6
    assert sorted(Path(p).name for p, _ in data.skipped) == ["empty.jpg", "garbage.png", "truncated.png"]
    assert all(reason for _, reason in data.skipped)
    batches = list(make_dataset(data, SPEC, batch_size=4, training=False))
    assert sum(len(y) for _, y in batches) == 6


@pytest.mark.parametrize(
    "layout, split, match",
    [
        ("missing", "train", "does not exist"),
        ("empty", "train", "no classes"),
        ("one_class", "train", "1 class"),
        ("no_images", "train", "no images"),
        ("two_classes", "test", "no 'test' split"),
        ("two_classes", "holdout", "holdout"),
        ("text_file", "train", "is a file"),
    ],
)
def test_bad_sources_raise_data_error_naming_the_path(tmp_path: Path, layout: str, split: str, match: str) -> None:
    root = tmp_path / "data"
    if layout == "empty" or layout == "no_images":
        root.mkdir()
    if layout == "no_images":
        (root / "a").mkdir()
        (root / "b").mkdir()
    if layout == "one_class":
        make_folder(root, {"only": 2})
    if layout == "two_classes":
        make_folder(root, {"a": 2, "b": 2})
    if layout == "text_file":
        root.write_text("hello")
    with pytest.raises(DataError, match=match) as info:
        load_split(root, split)
    assert isinstance(info.value, ValueError)
    if split != "holdout":
        assert str(root) in str(info.value)


def test_bad_val_fraction(tmp_path: Path) -> None:
    make_folder(tmp_path, {"a": 2, "b": 2})
    for fraction in (-0.1, 1.0, 1.5, float("nan"), "0.1"):
        with pytest.raises(DataError, match=str(fraction)):
            load_split(tmp_path, "val", val_fraction=fraction)


def test_val_fraction_zero_has_no_val_split(tmp_path: Path) -> None:
    make_folder(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(DataError, match="val_fraction is 0"):
        load_split(tmp_path, "val", val_fraction=0)


def test_stratified_split_is_deterministic_and_proportional() -> None:
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    train, val = stratified_split(labels, 0.1, seed=7)
    assert np.bincount(labels[val]).tolist() == [10, 5, 1]
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labels)
    again_train, again_val = stratified_split(labels, 0.1, seed=7)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)


# --- IDX ------------------------------------------------------------------------------------

def test_idx_round_trip(tmp_path: Path) -> None:
    # One test, not a parametrised matrix: conftest's per-test gc costs more than these cases.
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        for name in ("x.idx", "x.idx.gz"):
            array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
            write_idx(tmp_path / name, array)
            back = read_idx(tmp_path / name)
            assert back.dtype == np.dtype(dtype) and np.array_equal(back, array), (dtype, name)
            raw = (tmp_path / name).read_bytes()
            assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    with pytest.raises(DataError, match="complex128"):
        write_idx(tmp_path / "c.idx", np.zeros(2, np.complex128))


def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


CORRUPT_IDX = [
    (b"", "truncated"),
    (b"\x00\x00\x08", "truncated"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "dtype code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "header needs 16 bytes"),
    (_idx_bytes(np.zeros((4, 3), np.uint8))[:-1], "truncated"),
    (_idx_bytes(np.zeros((4, 3), np.uint8)) + b"\x00", "longer than its header"),
    (b"\x00\x00\x08\x03" + b"\xff" * 12, "truncated"),  # 2**96 bytes claimed: no allocation
]


def test_corrupt_idx_raises_clean_error_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-images-idx3-ubyte"
    for raw, match in CORRUPT_IDX:
        path.write_bytes(raw)
        with pytest.raises(DataError, match=match) as info:
            read_idx(path)
        assert str(path) in str(info.value)


def test_corrupt_gzip_idx(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros(5, np.uint8)))[:-6])
    with pytest.raises(DataError, match="gzip"):
        read_idx(path)
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope")


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_idx_fuzz_random_bytes_only_raise_data_error(raw: bytes) -> None:
    try:
        array = parse_idx(raw, "fuzz")
    except DataError:
        return
    assert array.size * array.itemsize == len(raw) - 4 - 4 * array.ndim


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(0, 27), st.integers(0, 255), st.integers(0, 28))
def test_idx_fuzz_mutated_header_or_length(pos: int, value: int, cut: int) -> None:
    raw = bytearray(_idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4)))
    raw[min(pos, len(raw) - 1)] = value
    try:
        parse_idx(bytes(raw[: len(raw) - cut]), "fuzz")
    except DataError:
        pass


def _write_idx_folder(root: Path, n_train: int = 20, n_test: int = 10, classes: int = 3) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 6, 5), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % classes).astype(np.uint8))


def test_idx_folder_splits_and_digit_names(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path / "digits")
    test = load_split(tmp_path / "digits", "test")
    assert test.in_memory and test.images.shape == (10, 6, 5, 1) and test.images.dtype == np.uint8
    assert test.class_names == ("0", "1", "2")
    val = load_split(tmp_path / "digits", "val", val_fraction=0.25)
    train = load_split(tmp_path / "digits", "train", val_fraction=0.25)
    assert len(val) + len(train) == 20
    assert np.bincount(val.labels).tolist() == [2, 2, 2]  # 7, 7, 6 images x 0.25, rounded half up


def test_idx_folder_named_fashion_gets_official_names(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path / "my-fashion-set", classes=10)
    assert load_split(tmp_path / "my-fashion-set", "test").class_names == FASHION_MNIST_CLASSES


def test_idx_folder_with_mismatched_counts(tmp_path: Path) -> None:
    _write_idx_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="10 images and 3 labels"):
        load_split(tmp_path, "test")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="'t10k-images-idx3-ubyte.gz' but not its labels file"):
        load_split(tmp_path, "test")


@pytest.mark.skipif(not HAS_FASHION, reason=f"official Fashion-MNIST files not installed in {FASHION_DIR}")
def test_real_fashion_mnist_files() -> None:
    test = load_split(FASHION_DIR, "test")
    assert test.images.shape == (10000, 28, 28, 1)
    assert test.class_names == FASHION_MNIST_CLASSES
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert test.labels[:3].tolist() == [9, 2, 1]  # Ankle boot, Pullover, Trouser


# --- npz ------------------------------------------------------------------------------------

def test_npz_source(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (12, 7, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.arange(12) % 2, class_names=np.array(["no", "yes"]))
    data = load_split(tmp_path / "d.npz", "train", val_fraction=0)
    assert data.class_names == ("no", "yes") and np.array_equal(data.images, images)
    np.savez(tmp_path / "gray.npz", images=images[..., 0], labels=np.arange(12) % 3)
    gray = load_split(tmp_path / "gray.npz", val_fraction=0)
    assert gray.images.shape == (12, 7, 7, 1) and gray.class_names == ("0", "1", "2")


BAD_NPZ = [
    ({"images": np.zeros((2, 4, 4), np.uint8)}, "missing"),
    ({"images": np.zeros((2, 4, 4), np.float32), "labels": np.array([0, 1])}, "float32"),
    ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, 0])}, "1 class"),
    ({"images": np.zeros((3, 4, 4), np.uint8), "labels": np.array([0, 1])}, "one per image"),
    ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0.0, 1.0])}, "integer"),
]


def test_bad_npz(tmp_path: Path) -> None:
    for arrays, match in BAD_NPZ:
        np.savez(tmp_path / "d.npz", **arrays)
        with pytest.raises(DataError, match=match):
            load_split(tmp_path / "d.npz", val_fraction=0)


def test_unreadable_npz(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="cannot be read"):
        load_split(tmp_path / "d.npz")


# --- shipped sample -------------------------------------------------------------------------

def test_shipped_calibration_sample() -> None:
    train = load_split(SAMPLE_DIR, "train", val_fraction=0)
    test = load_split(SAMPLE_DIR, "test")
    assert train.class_names == FASHION_MNIST_CLASSES == test.class_names
    assert np.bincount(train.labels).tolist() == [30] * 10
    assert np.bincount(test.labels).tolist() == [20] * 10
    assert train.skipped == [] and test.skipped == []
    folders = sorted({Path(p).parent.name for p in train.images})
    assert [int(f.split("_")[0]) for f in folders] == list(range(10))
    size = sum(f.stat().st_size for f in SAMPLE_DIR.parent.rglob("*") if f.is_file())
    assert size < 1_000_000


@pytest.mark.skipif(not HAS_FASHION, reason=f"official Fashion-MNIST files not installed in {FASHION_DIR}")
def test_shipped_sample_matches_official_files() -> None:
    official = load_split(FASHION_DIR, "test")
    sample = load_split(SAMPLE_DIR, "test")
    for path, label in zip(sample.images[::17], sample.labels[::17]):
        index = int(Path(path).stem.split("_")[1])
        assert official.labels[index] == label
        assert np.array_equal(np.asarray(Image.open(path)), official.images[index, ..., 0])


# --- fingerprint ----------------------------------------------------------------------------

def test_fingerprint_is_stable_and_content_based(tmp_path: Path) -> None:
    make_folder(tmp_path / "one", {"a": 2, "b": 2})
    first = load_split(tmp_path / "one", val_fraction=0).fingerprint()
    assert len(first) == 16 and first == load_split(tmp_path / "one", val_fraction=0).fingerprint()
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    assert load_split(tmp_path / "two", val_fraction=0).fingerprint() == first
    _image(np.random.default_rng(9)).save(tmp_path / "two" / "a" / "000.png")
    assert load_split(tmp_path / "two", val_fraction=0).fingerprint() != first
    images = np.zeros((4, 2, 2, 1), np.uint8)
    a = LabeledImages(images, np.array([0, 1, 0, 1]), ("x", "y"), "t")
    b = LabeledImages(images, np.array([0, 1, 1, 1]), ("x", "y"), "t")
    assert a.fingerprint() != b.fingerprint()


# --- preprocessing --------------------------------------------------------------------------

def _np_axis(n_in: int, n_out: int, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights along one axis, TF2 half-pixel-centre conventions."""
    scale = n_in / n_out
    if method == "nearest":
        idx = np.minimum(np.floor((np.arange(n_out) + 0.5) * scale), n_in - 1).astype(int)
        return idx, idx, np.zeros(n_out)
    pos = (np.arange(n_out) + 0.5) * scale - 0.5
    lo = np.floor(pos)
    return np.clip(lo, 0, n_in - 1).astype(int), np.clip(np.ceil(pos), 0, n_in - 1).astype(int), pos - lo


def numpy_reference(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The contract in plain numpy: resize, channels, normalise (see edgekit.data.preprocess)."""
    x = image.astype(np.float64)
    (y0, y1, fy), (x0, x1, fx) = (_np_axis(x.shape[i], spec.size[i], spec.resize) for i in (0, 1))
    fx = fx[None, :, None]
    top = x[y0][:, x0] * (1 - fx) + x[y0][:, x1] * fx
    bottom = x[y1][:, x0] * (1 - fx) + x[y1][:, x1] * fx
    x = top * (1 - fy[:, None, None]) + bottom * fy[:, None, None]
    if spec.channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif spec.channels == 1 and x.shape[-1] == 3:
        x = x @ np.array([0.2989, 0.5870, 0.1140])[:, None]
    return ((x - np.array(spec.mean)) / np.array(spec.std)).astype(np.float32)


PREPROCESS_CASES = [
    ((9, 13, 3), PreprocessSpec(size=(16, 16), channels=3)),
    ((20, 17, 1), PreprocessSpec(size=(8, 12), channels=3, mean=(0.0,), std=(255.0,))),
    ((11, 11, 3), PreprocessSpec(size=(7, 5), channels=1, resize="nearest")),
    ((9, 7, 3), PreprocessSpec(size=(12, 4), channels=1, mean=(0.0,), std=(1.0,))),
    ((6, 6, 1), PreprocessSpec(size=(6, 6), channels=1, mean=(100.0,), std=(2.0,))),
    ((5, 8, 3), PreprocessSpec(size=(10, 3), channels=3, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0))),
]


@pytest.mark.parametrize("shape, spec", PREPROCESS_CASES)
def test_preprocess_tf_matches_numpy_reference(shape: tuple, spec: PreprocessSpec) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    got = preprocess_tf(image, spec).numpy()
    assert got.dtype == np.float32 and got.shape == (*spec.size, spec.channels)
    np.testing.assert_allclose(got, numpy_reference(image, spec), rtol=0, atol=1e-4)
    batch = preprocess_tf(image[None], spec).numpy()
    np.testing.assert_allclose(batch[0], got, rtol=0, atol=1e-6)


@pytest.mark.skipif(runtime_preprocess is None, reason="edgekit.runtime.preprocess.preprocess (numpy) is missing")
@pytest.mark.parametrize("shape, spec", PREPROCESS_CASES)
def test_preprocess_tf_agrees_with_runtime(shape: tuple, spec: PreprocessSpec) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    expected = preprocess_tf(image, spec).numpy()
    got = np.asarray(runtime_preprocess(image, spec), dtype=np.float32)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_preprocess_range_and_channel_conversion() -> None:
    gray = np.array([[[0], [255]], [[128], [64]]], np.uint8)
    rgb = preprocess_tf(gray, PreprocessSpec(size=(2, 2), channels=3)).numpy()
    assert rgb.shape == (2, 2, 3) and np.all(rgb[..., 0] == rgb[..., 2])
    assert rgb.min() == -1.0 and rgb.max() == 1.0
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[..., 1] = 200
    one = preprocess_tf(colour, PreprocessSpec(size=(2, 2), channels=1, mean=(0.0,), std=(1.0,))).numpy()
    np.testing.assert_allclose(one, 0.587 * 200, rtol=1e-6)


# --- tf.data pipeline -----------------------------------------------------------------------

def _array_data(n: int = 20, classes: int = 4) -> LabeledImages:
    images = np.random.default_rng(0).integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)
    return LabeledImages(images, np.arange(n) % classes, tuple("abcd"[:classes]), "test array")


def test_make_dataset_eval_keeps_order_and_shapes() -> None:
    data = _array_data()
    batches = list(make_dataset(data, SPEC, batch_size=8, training=False).as_numpy_iterator())
    assert [len(y) for _, y in batches] == [8, 8, 4]
    x, y = batches[0]
    assert x.shape == (8, 16, 16, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.concatenate([y for _, y in batches]).tolist() == data.labels.tolist()
    np.testing.assert_allclose(x[3], preprocess_tf(data.images[3], SPEC).numpy(), atol=1e-6)


def test_make_dataset_training_shuffle_is_seeded() -> None:
    data = _array_data(64)

    def labels(seed: int) -> list[int]:
        ds = make_dataset(data, SPEC, batch_size=64, training=True, seed=seed)
        return next(ds.as_numpy_iterator())[1].tolist()

    assert labels(1) == labels(1)
    assert labels(1) != labels(2)
    assert sorted(labels(1)) == sorted(data.labels.tolist())


def test_make_dataset_decodes_mixed_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for i, mode in enumerate(["L", "RGB", "RGBA", "LA"]):
        _image(rng, mode, size=(5 + i, 9)).save(tmp_path / ("a" if i % 2 else "b") / f"{i}.png")
    _image(rng, "RGB").save(tmp_path / "a" / "j.jpg")
    data = load_split(tmp_path, val_fraction=0)
    for channels in (1, 3):
        spec = PreprocessSpec(size=(6, 6), channels=channels)
        x, y = next(make_dataset(data, spec, batch_size=5, training=False).as_numpy_iterator())
        assert x.shape == (5, 6, 6, channels) and np.all(np.abs(x) <= 1.0)
    gray_file = [p for p in data.images if p.endswith("0.png")][0]
    expected = preprocess_tf(np.asarray(Image.open(gray_file))[..., None], SPEC).numpy()
    only = data.subset([data.images.index(gray_file)])
    x, _ = next(make_dataset(only, SPEC, batch_size=1, training=False).as_numpy_iterator())
    np.testing.assert_allclose(x[0], expected, atol=1e-6)


def test_make_dataset_rejects_bad_batch_size() -> None:
    for batch_size in (0, -1, 2.5, True):
        with pytest.raises(DataError, match="batch_size"):
            make_dataset(_array_data(), SPEC, batch_size=batch_size, training=False)  # type: ignore[arg-type]


# --- calibration ----------------------------------------------------------------------------

def test_calibration_batches_shapes_and_determinism() -> None:
    data = load_split(SAMPLE_DIR, "train", val_fraction=0)
    spec = PreprocessSpec(size=(32, 32), channels=3)
    calib = calibration_batches(data, spec, num=12, batch_size=1, seed=0)
    assert isinstance(calib, CalibrationData) and len(calib) == 12
    batches = list(calib)
    assert len(batches) == 12
    assert all(b.shape == (1, 32, 32, 3) and b.dtype == np.float32 for b in batches)
    assert all(b.min() >= -1.0 and b.max() <= 1.0 for b in batches)
    again = list(calibration_batches(data, spec, num=12, seed=0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert [b.shape for b in calibration_batches(data, spec, num=300, batch_size=4)][-1] == (4, 32, 32, 3)


@pytest.mark.parametrize(
    "num, batch_size, match",
    [(21, 1, "needs 21 images"), (0, 1, "num got 0"), (4, 0, "batch_size got 0"), (5, 2, "not a multiple")],
)
def test_calibration_count_errors(num: int, batch_size: int, match: str) -> None:
    with pytest.raises(DataError, match=match):
        calibration_batches(_array_data(20), SPEC, num=num, batch_size=batch_size)


def test_calibration_corrupt_file_raises_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    data = LabeledImages([str(bad)], np.array([0]), ("a", "b"), "corrupt files")
    calib = calibration_batches(data, SPEC, num=1)
    with pytest.raises(DataError, match="cannot be decoded"):
        list(calib)


def test_array_calibration() -> None:
    inputs = np.zeros((6, 4, 4, 3), np.float32)
    assert [b.shape for b in ArrayCalibration(inputs, batch_size=3)] == [(3, 4, 4, 3)] * 2
    with pytest.raises(DataError, match="float64"):
        ArrayCalibration(inputs.astype(np.float64))
