"""Labelled image sources and their train/val/test splits.

Three source formats, all returned as one ``LabeledImages``:

* an image folder with one sub-folder per class (jpg/png/bmp/gif, the layout of
  ``keras.utils.image_dataset_from_directory``), either flat (``root/<class>/*.png``) or split
  (``root/train/<class>/...`` next to ``root/test/...`` and/or ``root/val/...``);
* a folder of IDX files in the MNIST layout (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``, ``t10k-...`` for the test split), see ``edgekit.data.idx``;
* an ``.npz`` file with ``images`` (NxHxW or NxHxWxC uint8), ``labels`` and optionally
  ``class_names``.

A split the source does not ship is made deterministically: ``val`` is a seeded, stratified
``val_fraction`` of ``train`` and ``train`` is then the rest, so the two never overlap. A
``class_names.txt`` (one name per line, in label order) in a folder root gives display names;
otherwise folder names are used, and IDX labels are named "0", "1", ... except in a folder
whose path contains "fashion", which gets the ten official Fashion-MNIST names.

Images of a folder are kept as file paths and decoded later by tf.data; every one is decoded
once here with Pillow so that unreadable files are skipped and reported, never a crash later.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
from PIL import Image

from edgekit.data.errors import DataError
from edgekit.data.idx import read_idx

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Pillow format names that tf.io.decode_image can decode too.
DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
CLASS_NAMES_FILE = "class_names.txt"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Folder names accepted for each split of a split image folder, in order of preference.
_SPLIT_DIRS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
_IDX_PREFIX = {"train": "train", "test": "t10k"}

Images = Union[np.ndarray, list]


@dataclass(frozen=True)
class LabeledImages:
    """Images with integer labels: an in-memory NxHxWxC uint8 array or a list of file paths."""

    images: Images
    labels: np.ndarray  # int64, one per image
    class_names: tuple[str, ...]
    source: str  # human-readable description, for logs and run metadata
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) seen at load

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or len(labels) != len(self.images):
            raise DataError(f"labels of {self.source} got shape {labels.shape}; expected ({len(self.images)},), "
                            "one per image")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(
                f"labels range {int(labels.min())}..{int(labels.max())} does not fit "
                f"{len(self.class_names)} class names in {self.source}"
            )
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if isinstance(self.images, np.ndarray):
            _check_image_array(self.images, self.source)
        else:
            object.__setattr__(self, "images", [str(p) for p in self.images])

    @property
    def in_memory(self) -> bool:
        return isinstance(self.images, np.ndarray)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray, source: str | None = None) -> "LabeledImages":
        """The images at ``indices`` (in that order), with the same class names."""
        idx = np.asarray(indices, dtype=np.int64)
        images = self.images[idx] if self.in_memory else [self.images[i] for i in idx]
        return replace(self, images=images, labels=self.labels[idx], source=source or self.source)

    def sample(self, num: int, seed: int = 0) -> "LabeledImages":
        """``num`` images drawn without replacement with ``seed``, kept in their order; all of
        them (``self``) when there are no more than ``num``.

        The one selection behind ``edgekit export --num-validation N`` and ``edgekit evaluate
        --limit N``, so that both look at the same images of a split.
        """
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
            raise DataError(f"sample size got {num!r}; expected an integer >= 1")
        if num >= len(self):
            return self
        pick = np.sort(np.random.default_rng(seed).choice(len(self), num, replace=False))
        return self.subset(pick, source=f"{num} images (seed {seed}) of {self.source}")

    def fingerprint(self) -> str:
        """A short hash of pixels (or file contents), labels and class names, for run metadata.

        It does not depend on where the files are, so a moved dataset keeps its fingerprint.
        For a file source every file is read, which costs one pass over the data.
        """
        h = hashlib.blake2b(digest_size=8)
        h.update("\x1f".join(self.class_names).encode())
        h.update(self.labels.tobytes())
        if self.in_memory:
            h.update(str(self.images.shape).encode())
            h.update(np.ascontiguousarray(self.images).tobytes())
        else:
            for path in self.images:
                h.update(hashlib.blake2b(Path(path).read_bytes(), digest_size=16).digest())
        return h.hexdigest()


def _check_image_array(images: np.ndarray, source: str) -> None:
    if images.dtype != np.uint8:
        raise DataError(f"images of {source} have dtype {images.dtype}; expected uint8 (0..255)")
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"images of {source} have shape {images.shape}; expected NxHxWxC with C 1 or 3")


def load_split(
    path: str | os.PathLike[str], split: str = "train", val_fraction: float = 0.1, seed: int = 0
) -> LabeledImages:
    """Load one split ("train", "val" or "test") of an image folder, IDX folder or .npz file.

    Raises DataError for a missing path, an empty source, fewer than two classes, a split the
    source does not have (test), or a val_fraction outside [0, 1).
    """
    if split not in SPLITS:
        raise DataError(f"split got {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction got {val_fraction!r}; expected a number in [0, 1)")
    root = Path(path)
    available, load, check = _source(root)
    if split in available:
        if split != "train" or "val" in available or val_fraction == 0:
            return load(split)
    if split == "test" or "train" not in available:
        if "train" in available:
            check()  # a broken source is reported as such, not as one that lacks a split
        raise DataError(f"{str(root)!r} has no {split!r} split; found {', '.join(sorted(available)) or 'none'}")
    if val_fraction == 0:
        raise DataError(f"{str(root)!r} has no 'val' split and val_fraction is 0; expected > 0 to hold one out")
    train = load("train")
    train_idx, val_idx = stratified_split(train.labels, val_fraction, seed)
    chosen = train_idx if split == "train" else val_idx
    if len(chosen) == 0:
        raise DataError(
            f"val_fraction {val_fraction} of {len(train)} images of {str(root)!r} leaves an empty {split!r} split"
        )
    note = f"{split} part of a seeded split (val_fraction={val_fraction}, seed={seed}) of {train.source}"
    return train.subset(chosen, source=note)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices; each class gives round(n_class * val_fraction) to val."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = [np.zeros(0, dtype=np.int64)]
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = int(np.floor(len(members) * val_fraction + 0.5))
        val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


# --- dispatch ------------------------------------------------------------------------------

Loader = Callable[[str], LabeledImages]


def _source(root: Path) -> tuple[set[str], Loader, Callable[[], object]]:
    """The splits a source ships, a function loading one of them, and a check of the train
    split that costs at most one read of an array file (image folders: their layout only, no
    image is decoded)."""
    if not root.exists():
        raise DataError(f"data path {str(root)!r} does not exist")
    if root.is_file():
        if root.suffix.lower() != ".npz":
            raise DataError(f"data path {str(root)!r} is a file; expected a folder or an .npz file")
        return {"train"}, lambda split: _load_npz(root), lambda: _load_npz(root)
    idx_splits = {s for s, prefix in _IDX_PREFIX.items() if _idx_pair(root, prefix)}
    if idx_splits:
        return idx_splits, lambda split: _load_idx(root, split), lambda: _load_idx(root, "train")
    split_dirs = {s: d for s in SPLITS if (d := _split_dir(root, s)) is not None}
    if split_dirs:
        train_dir = split_dirs.get("train")
        return (set(split_dirs), lambda split: _load_split_folder(root, split_dirs, split),
                lambda: _image_files(train_dir, _class_dirs(train_dir)))
    names = _class_dirs(root)
    return {"train"}, lambda split: _load_image_folder(root, root, names, split), lambda: _image_files(root, names)


def _display_names(root: Path, names: Sequence[str]) -> tuple[str, ...]:
    """Names from root/class_names.txt when present, else ``names``."""
    path = root / CLASS_NAMES_FILE
    if not path.is_file():
        return tuple(names)
    given = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(given) != len(names):
        raise DataError(f"{str(path)!r} lists {len(given)} class names; expected {len(names)}, one per class")
    return tuple(given)


def _check_num_classes(names: Sequence[str], where: Path) -> None:
    if len(names) < 2:
        found = f"1 class ({names[0]!r})" if names else "no classes"
        raise DataError(f"{str(where)!r} has {found}; expected at least 2 classes")


# --- image folders -------------------------------------------------------------------------

def _split_dir(root: Path, split: str) -> Path | None:
    for name in _SPLIT_DIRS[split]:
        candidate = root / name
        if candidate.is_dir() and _class_dirs(candidate):
            return candidate
    return None


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_split_folder(root: Path, split_dirs: dict[str, Path], split: str) -> LabeledImages:
    # Class names come from train/ so that every split labels a class the same way.
    names = _class_dirs(split_dirs.get("train", split_dirs[split]))
    return _load_image_folder(split_dirs[split], root, names, split)


def _list_images(class_dir: Path) -> list[Path]:
    found = []
    # Like keras, symlinked folders below a class folder are not followed (no loops).
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def check_image_file(path: str | os.PathLike[str]) -> str | None:
    """Why an image file cannot be used (decoded fully with Pillow), or None when it can."""
    try:
        with Image.open(path) as im:
            if im.format not in DECODABLE_FORMATS:
                return f"format {im.format} is not one of {', '.join(DECODABLE_FORMATS)}"
            im.load()
    except Exception as exc:  # noqa: BLE001 - corrupt files raise anything; never crash a load
        return f"cannot decode: {type(exc).__name__}: {exc}"
    return None


def _image_files(folder: Path, names: list[str]) -> tuple[list[Path], list[int]]:
    """The image files of ``folder``'s class folders and their labels; DataError for a layout
    that cannot be used (fewer than two classes, unknown classes, no image files)."""
    _check_num_classes(names, folder)
    unknown = sorted(set(_class_dirs(folder)) - set(names))
    if unknown:
        raise DataError(f"{str(folder)!r} has class folders {unknown} that train/ does not have")
    files, labels = [], []
    for label, name in enumerate(names):
        if (folder / name).is_dir():
            found = _list_images(folder / name)
            files += found
            labels += [label] * len(found)
    if not files:
        raise DataError(f"{str(folder)!r} has no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders")
    return files, labels


def _load_image_folder(folder: Path, root: Path, names: list[str], split: str) -> LabeledImages:
    files, labels = _image_files(folder, names)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(check_image_file, files))
    keep = [i for i, r in enumerate(reasons) if r is None]
    skipped = [(str(files[i]), r) for i, r in enumerate(reasons) if r is not None]
    if not keep:
        first, why = skipped[0]
        raise DataError(f"{str(folder)!r} has {len(files)} image files and none can be decoded, "
                        f"e.g. {os.path.relpath(first, folder)!r}: {why}")
    return LabeledImages(
        images=[str(files[i]) for i in keep],
        labels=np.asarray(labels, dtype=np.int64)[keep],
        class_names=_display_names(root, names),
        source=f"image folder {str(folder)!r} ({split})",
        skipped=skipped,
    )


# --- IDX folders ---------------------------------------------------------------------------

def _find(root: Path, stems: Sequence[str]) -> Path | None:
    for stem in stems:
        for name in (stem, stem + ".gz"):
            if (root / name).is_file():
                return root / name
    return None


def _idx_pair(root: Path, prefix: str) -> tuple[Path, Path] | None:
    images = _find(root, (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"))
    labels = _find(root, (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"))
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        have, lacking = (images, "labels") if labels is None else (labels, "images")
        raise DataError(f"IDX folder {str(root)!r} has {have.name!r} but not its {lacking} file")
    return images, labels


def _load_idx(root: Path, split: str) -> LabeledImages:
    images_path, labels_path = _idx_pair(root, _IDX_PREFIX[split])  # type: ignore[misc]
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"IDX file {str(images_path)!r} holds {images.dtype} {images.shape}; expected uint8 NxHxW")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"IDX file {str(labels_path)!r} holds {labels.dtype} {labels.shape}; expected integer N labels")
    if len(labels) != len(images):
        raise DataError(f"IDX files of {str(root)!r} ({split}) have {len(images)} images and {len(labels)} labels")
    names = _idx_class_names(root, labels)
    return LabeledImages(images, labels, names, f"IDX files {str(images_path)!r}, {labels_path.name!r}")


def _idx_class_names(root: Path, labels: np.ndarray) -> tuple[str, ...]:
    if labels.size and labels.min() < 0:
        raise DataError(f"IDX labels of {str(root)!r} include {int(labels.min())}; expected labels >= 0")
    # Both splits' labels decide the class count, so train and test agree on it.
    top = int(labels.max(initial=0))
    for prefix in _IDX_PREFIX.values():
        pair = _idx_pair(root, prefix)
        if pair:
            top = max(top, int(read_idx(pair[1]).max(initial=0)))
    digits = [str(i) for i in range(top + 1)]
    is_fashion = any("fashion" in part.lower() for part in root.resolve().parts)
    if is_fashion and not (root / CLASS_NAMES_FILE).is_file() and top < len(FASHION_MNIST_CLASSES):
        return FASHION_MNIST_CLASSES
    names = _display_names(root, digits)
    _check_num_classes(names, root)
    return names


# --- .npz files ----------------------------------------------------------------------------

def _load_npz(path: Path) -> LabeledImages:
    if not zipfile.is_zipfile(path):  # else np.load takes it for a pickle and suggests allow_pickle
        what = "the file is empty" if path.stat().st_size == 0 else "not a zip archive, or a truncated one"
        raise DataError(f".npz file {str(path)!r} cannot be read: {what}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - zipfile/pickle/format errors all mean "unreadable"
        raise DataError(f".npz file {str(path)!r} cannot be read: {type(exc).__name__}: {exc}") from None
    missing = [k for k in ("images", "labels") if k not in arrays]
    if missing:
        raise DataError(f".npz file {str(path)!r} has keys {sorted(arrays)}; missing {missing}")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim not in (3, 4):
        raise DataError(f".npz file {str(path)!r} has images of shape {images.shape}; expected NxHxW or NxHxWxC")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f".npz file {str(path)!r} has labels {labels.dtype} {labels.shape}; expected integer (N,)")
    if len(labels) != len(images):
        raise DataError(f".npz file {str(path)!r} has {len(images)} images and labels of shape {labels.shape}; "
                        f"expected ({len(images)},), one per image")
    if len(images) == 0:
        raise DataError(f".npz file {str(path)!r} has no images")
    if labels.min() < 0:
        raise DataError(f".npz file {str(path)!r} has labels range {int(labels.min())}..{int(labels.max())}; "
                        "expected labels >= 0")
    if "class_names" in arrays:
        names = tuple(str(n) for n in arrays["class_names"].ravel())
    else:
        names = tuple(str(i) for i in range(int(labels.max(initial=0)) + 1))
    _check_num_classes(names, path)
    return LabeledImages(images, labels, names, f".npz file {str(path)!r}")
