"""A bad-input corpus for every ``edgekit`` command (edgekit issue 7, "Reliability: bad input").

Generated deterministically (seeded bytes, fixed sizes) into a folder, so every run tests the
same files. Each bad case is a ``Case``: a path, plus a regular expression for the problem the
one-line error must name. Four groups:

- models, for each suffix of ``MODEL_SUFFIXES``: an empty file, the first half of a valid file,
  random bytes, a file of another format under that name (a PNG named .tflite, a TFLite file
  named .onnx, an ONNX file named .ort, a zip that is no Keras archive named .keras), a folder with the name, a path that
  does not exist;
- images for ``edgekit predict``: empty, truncated PNG and JPEG, random bytes named .png, text
  named .jpg, a PNG whose header claims 100000 x 100000 pixels (a decompression bomb: it must be
  refused from its header, never decoded), and .npy arrays of the wrong dtype or shape; next to
  them the odd but valid images (CMYK JPEG, 16-bit, palette, RGBA, grey+alpha, 1x1 pixel), each
  with the plain 8-bit RGB image it shows, which must be read as the same pixels;
- ``--raw`` inputs of the wrong shape or dtype for the runtime;
- data sets for ``--data`` and ``--calibration``: missing, empty, no images, one class, only
  corrupt images, a text file, and .npz and IDX files that are corrupt, truncated or hold the
  wrong keys, dtypes or shapes.

``write_label_folder`` writes the good data set: a train/test image folder whose class folder
names hold spaces and non-ASCII letters (``UNICODE_CLASSES``), with the odd but valid images in
its test split, so that evaluation and export's validation meet them too, and a decompression
bomb among its training images, which training must skip (not decode).

Pure numpy, Pillow and the standard library: no TensorFlow (the valid model files a few cases
are cut from are made by the caller).
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image

MODEL_SUFFIXES = (".tflite", ".onnx", ".ort", ".keras")
# Sorted as the class folders are listed (code point order), so label i is UNICODE_CLASSES[i].
UNICODE_CLASSES = ("Größe 9", "T-shirt top", "日本")
IMAGE_SIZE = 16  # side of the label folder's images
TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 2
BOMB_SIDE = 100_000  # pixels per side claimed by the decompression-bomb PNG


@dataclass(frozen=True)
class Case:
    """One bad input: where it is and what the one-line error must say about it."""

    name: str
    path: Path
    problem: str  # regular expression, matched case-insensitively against the error line less the path


# -- bytes of small files -----------------------------------------------------------------

def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def random_bytes(name: str, n: int = 4096) -> bytes:
    return _rng(name).integers(0, 256, n, dtype=np.uint8).tobytes()


def class_pixels(label: int, index: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 RGB image of class ``label``: one bright channel per class over seeded noise."""
    rng = _rng(f"class-{label}-{index}")
    image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    image[..., label % 3] += np.uint8(150)
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A well-formed PNG of a few hundred bytes whose header claims side x side RGB pixels."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * 4096, 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows)
            + _png_chunk(b"IEND", b""))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def _zip_bytes(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)  # fixed time: same bytes
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- odd but valid images -------------------------------------------------------------------

def odd_images() -> dict[str, tuple[str, bytes, np.ndarray]]:
    """name -> (file name, encoded bytes, the uint8 RGB pixels that file shows).

    The expected pixels are Pillow's own reading for the formats whose conversion is
    unambiguous; 16-bit grey shows its high byte (as libpng's 16-to-8 strip, which TensorFlow's
    decoder uses); the CMYK JPEG shows whatever its decoder makes of it (lossy, so checked
    within a tolerance by the caller).
    """
    rgb = class_pixels(0, 99)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    wide = (grey.astype(np.uint16) << 8) | _rng("i16").integers(0, 256, grey.shape, dtype=np.uint16)
    palette = Image.fromarray(rgb).quantize(colors=16, dither=Image.Dither.NONE)
    rgba = np.dstack([rgb, _rng("alpha").integers(0, 256, rgb.shape[:2], dtype=np.uint8)])
    la = np.dstack([grey, np.full(grey.shape, 7, np.uint8)])
    cmyk = Image.fromarray(rgb).convert("CMYK")
    one = rgb[:1, :1]
    return {
        "cmyk": ("cmyk.jpg", encode(cmyk, "JPEG", quality=95), rgb),
        "16-bit": ("grey16.png", encode(Image.fromarray(wide), "PNG"), np.repeat(grey[..., None], 3, -1)),
        "palette": ("palette.png", encode(palette, "PNG"), np.asarray(palette.convert("RGB"))),
        "alpha": ("rgba.png", encode(Image.fromarray(rgba), "PNG"), rgb),
        "grey+alpha": ("la.png", encode(Image.fromarray(la, "LA"), "PNG"), np.repeat(grey[..., None], 3, -1)),
        "1x1": ("one.png", encode(Image.fromarray(one), "PNG"), one),
    }


# -- the good data set --------------------------------------------------------------------

def write_label_folder(root: Path) -> Path:
    """root/{train,test}/<UNICODE_CLASSES>/*.png; test/ also holds the odd but valid images
    (in the first class) and train/ one decompression bomb (in the last class), which loading
    skips as unreadable. Returns root."""
    for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for label, name in enumerate(UNICODE_CLASSES):
            for i in range(count):
                image = Image.fromarray(class_pixels(label, i if split == "train" else 100 + i))
                _write(root / split / name / f"bild {i}.png", encode(image, "PNG"))
    for file_name, data, _ in odd_images().values():
        _write(root / "test" / UNICODE_CLASSES[0] / f"odd {file_name}", data)
    _write(root / "train" / UNICODE_CLASSES[-1] / "bomb.png", bomb_png())
    return root


# -- bad models -----------------------------------------------------------------------------

def write_model_cases(root: Path, valid: Mapping[str, Path]) -> dict[str, Case]:
    """Bad model files under root/models, for each suffix; ``valid`` maps a suffix to a good
    file of that format (cut to make the truncated case, and reused as another's wrong format)."""
    folder = root / "models"
    png = encode(Image.fromarray(class_pixels(1, 0)), "PNG")
    wrong = {".tflite": png, ".onnx": valid[".tflite"].read_bytes(), ".ort": valid[".onnx"].read_bytes(),
             ".keras": _zip_bytes({"notes.txt": b"not a Keras archive\n"})}
    cases = {}
    for suffix in MODEL_SUFFIXES:
        fmt = suffix[1:]
        good = valid[suffix].read_bytes()
        kinds = {
            "empty": (b"", "empty"),
            "truncated": (good[: len(good) // 2], "truncated|corrupt|not a Keras archive"),
            "random": (random_bytes(fmt), "not an? |corrupt|truncated"),
            "wrong format": (wrong[suffix], "not an? "),
        }
        for kind, (data, problem) in kinds.items():
            name = f"{fmt} {kind}"
            cases[name] = Case(name, _write(folder / f"{kind.replace(' ', '_')}{suffix}", data), problem)
        directory = folder / f"model{suffix}"
        directory.mkdir(parents=True, exist_ok=True)
        cases[f"{fmt} folder"] = Case(f"{fmt} folder", directory, "folder|director|not a regular file")
        cases[f"{fmt} missing"] = Case(f"{fmt} missing", folder / f"missing{suffix}", "does not exist")
    return cases


# -- bad images -----------------------------------------------------------------------------

def bad_image_files() -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, bytes, the problem) of the images ``edgekit predict`` must refuse."""
    png = encode(Image.fromarray(class_pixels(2, 0, size=64)), "PNG")
    jpeg = encode(Image.fromarray(class_pixels(2, 0, size=64)), "JPEG", quality=90)
    return {
        "empty png": ("empty.png", b"", "cannot read image"),
        "truncated png": ("truncated.png", png[: len(png) // 2], "cannot read image"),
        "truncated jpeg": ("truncated.jpg", jpeg[: len(jpeg) // 2], "cannot read image"),
        "random png": ("random.png", random_bytes("png"), "cannot read image"),
        "text as jpeg": ("text.jpg", b"this is a text file, not a JPEG\n" * 8, "cannot read image"),
        "bomb png": ("bomb.png", bomb_png(), "decompression bomb"),
        "float npy": ("float.npy", _npy_bytes(np.zeros((8, 8, 3), np.float64)), "float64"),
        "1-d npy": ("line.npy", _npy_bytes(np.zeros(64, np.uint8)), r"shape \(64,\)"),
        "5-d npy": ("deep.npy", _npy_bytes(np.zeros((1, 1, 8, 8, 3), np.uint8)), r"shape \(1, 1, 8, 8, 3\)"),
        "empty npy": ("nothing.npy", _npy_bytes(np.zeros((0, 8, 3), np.uint8)), r"shape \(0, 8, 3\)"),
        "5-channel npy": ("five.npy", _npy_bytes(np.zeros((8, 8, 5), np.uint8)), r"shape \(8, 8, 5\)|5 channels"),
        "pickled npy": ("pickled.npy", _pickled_npy(), "cannot read array"),
    }


def write_image_cases(root: Path) -> dict[str, Case]:
    """The images of ``bad_image_files``, under root/images."""
    return {name: Case(name, _write(root / "images" / file_name, data), problem)
            for name, (file_name, data, problem) in bad_image_files().items()}


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def write_raw_cases(root: Path, sample_shape: tuple[int, ...]) -> dict[str, Case]:
    """.npy inputs for ``predict --raw`` of a model whose one sample has ``sample_shape`` (HWC)."""
    folder = root / "raw"
    h, w, c = sample_shape
    arrays = {
        "wrong size": (np.zeros((h, w + 1, c), np.float32), r"shape \(1, %d, %d, %d\)" % (h, w + 1, c)),
        "wrong rank": (np.zeros((h, w), np.float32), r"shape \(%d, %d\)" % (h, w)),
        "batch of two": (np.zeros((2, h, w, c), np.float32), r"shape \(2, %d, %d, %d\)" % (h, w, c)),
        "int32": (np.zeros((h, w, c), np.int32), "dtype int32"),
        "bool": (np.zeros((h, w, c), bool), "dtype bool"),
        "complex": (np.zeros((h, w, c), np.complex64), "dtype complex64"),
        "string": (np.full((h, w, c), "x"), "dtype <U1"),
        "scalar": (np.float32(0.5), r"shape \(\)"),
    }
    return {name: Case(name, _write(folder / f"{name.replace(' ', '_')}.npy", _npy_bytes(np.asarray(a))), problem)
            for name, (a, problem) in arrays.items()}


# -- bad data sets (--data, --calibration) ---------------------------------------------------

def write_data_cases(root: Path) -> dict[str, Case]:
    """Data sets every command taking --data/--calibration must refuse, under root/data."""
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Case] = {}

    def add(name: str, path: Path, problem: str) -> None:
        cases[name] = Case(name, path, problem)

    add("missing", folder / "no such data", "does not exist")
    (folder / "empty").mkdir()
    add("empty folder", folder / "empty", "no classes")
    for name in ("a", "b"):
        _write(folder / "no images" / name / "readme.txt", b"no images here\n")
    add("no images", folder / "no images", "has no images")
    _write(folder / "one class" / "only" / "x.png", encode(Image.fromarray(class_pixels(0, 0)), "PNG"))
    add("one class", folder / "one class", "1 class")
    bad_images = bad_image_files()
    for split in ("train", "test"):  # both splits, so that every command meets the images
        for label in ("a", "b"):
            for key in ("empty png", "truncated png", "truncated jpeg", "random png", "text as jpeg", "bomb png"):
                file_name, data, _ = bad_images[key]
                _write(folder / "corrupt" / split / label / file_name, data)
    add("only corrupt images", folder / "corrupt", "none can be decoded, e.g. 'a/bomb.png': .*decompression bomb")
    add("text file", _write(folder / "labels.txt", b"0\n1\n"), "expected a folder or an .npz")
    images = np.stack([class_pixels(i % 2, i)[..., 0] for i in range(6)])
    labels = np.arange(6) % 2
    npz = {
        "npz empty": (b"", "is empty"),
        "npz random": (random_bytes("npz"), "not a zip archive"),
        "npz truncated": (_npz_bytes(images=images, labels=labels)[:300], "not a zip archive, or a truncated"),
        "npz is a npy": (_npy_bytes(images), "not a zip archive"),
        "npz wrong keys": (_npz_bytes(x=images, y=labels), r"missing \['images', 'labels'\]"),
        "npz float images": (_npz_bytes(images=images.astype(np.float32), labels=labels), "float32"),
        "npz 2-d images": (_npz_bytes(images=images.reshape(6, -1), labels=labels), r"shape \(6, 256\)"),
        "npz 5 channels": (_npz_bytes(images=np.zeros((6, 4, 4, 5), np.uint8), labels=labels), r"\(6, 4, 4, 5\)"),
        "npz label count": (_npz_bytes(images=images, labels=labels[:4]), r"shape \(4,\)"),
        "npz float labels": (_npz_bytes(images=images, labels=labels.astype(np.float32)), "labels float32"),
        "npz negative labels": (_npz_bytes(images=images, labels=labels - 1), "labels range -1"),
        "npz no images": (_npz_bytes(images=np.zeros((0, 8, 8), np.uint8), labels=np.zeros(0, np.int64)),
                          "has no images"),
    }
    for name, (data, problem) in npz.items():
        add(name, _write(folder / f"{name.replace(' ', '_')}.npz", data), problem)
    idx_images, idx_labels = _idx_bytes(images), _idx_bytes(labels)
    idx = {
        "idx truncated": (idx_images[: len(idx_images) // 2], idx_labels, "truncated"),
        "idx bad magic": (b"\x12\x34" + idx_images[2:], idx_labels, "bad magic"),
        "idx corrupt gzip": (gzip.compress(idx_images, mtime=0)[:40], idx_labels, "corrupt gzip|truncated"),
        "idx label count": (idx_images, _idx_bytes(labels[:5]), "6 images and 5 labels"),
        "idx no labels": (idx_images, None, "not its labels file"),
    }
    for name, (image_bytes, label_bytes, problem) in idx.items():
        where = folder / name.replace(" ", "_")
        _write(where / "train-images-idx3-ubyte", image_bytes)
        if label_bytes is not None:
            _write(where / "train-labels-idx1-ubyte", label_bytes)
        add(name, where, problem)
    return cases
