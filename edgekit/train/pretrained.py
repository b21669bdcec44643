"""``--weights imagenet``: keras.applications' ImageNet weight files, downloaded, checked, cached.

The families whose layer names and weight shapes equal keras.applications' (``ModelSpec.
keras_weights``) load its backbone files (``include_top=False``, "no top") by layer name:
MobileNet v1 (Howard et al. 2017), MobileNetV2 (Sandler et al. 2018) and EfficientNet B0-B7
(Tan & Le 2019). The table below is keras.applications' own (keras/src/applications/
mobilenet.py, mobilenet_v2.py, efficientnet.py): the same URLs, the same alphas and sizes.

- Sizes: keras has MobileNet files trained at a few input sizes; a backbone's weights do not
  depend on the input size, and keras itself loads its 224 file for any other size. edgekit
  takes the file trained at the size nearest to the model's input and says which.
- Checksums: keras publishes md5 sums for the EfficientNet files (``WEIGHTS_HASHES``) and edgekit
  checks them. For MobileNet keras publishes none and checks nothing; edgekit then pins the
  file's sha256 at its first download (``NAME.sha256`` beside the cached file) and checks the
  cached file against it at every later use, so a file changed or cut short in the cache is
  caught. Either way the sum is in the run's metadata (``transfer``).
- A download goes to a hidden temporary file that is renamed into the cache only once it
  passed the check; a file that fails is deleted.
- EfficientNet: keras.applications, for ImageNet weights, divides its Normalization layer's
  output once more by sqrt(ImageNet stddev) (tensorflow/tensorflow#49930: the files hold the
  stddev where the variance belongs); edgekit folds that into the layer's variance.

The cache is ``$EDGEKIT_CACHE/weights`` (default ``~/.cache/edgekit/weights``).
``EDGEKIT_WEIGHTS_URL`` replaces ``https://storage.googleapis.com`` in the URLs (a mirror; the
tests serve files from 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekit.tempfiles import atomic_write_text, publish, temp_path

from .config import IMAGENET

HOST = "https://storage.googleapis.com"
HOST_ENV = "EDGEKIT_WEIGHTS_URL"
CACHE_ENV = "EDGEKIT_CACHE"
TIMEOUT_S = 60
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Family:
    """keras.applications' ImageNet backbone files of one family."""

    path: str  # URL path below HOST
    filename: Callable[[float, int], str]  # (alpha, size) -> file name
    alphas: tuple[float, ...] = ()  # () : one file per variant, no width multiplier
    sizes: tuple[int, ...] = ()  # () : one file for every input size


def _v1_alpha(alpha: float) -> str:
    return {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]


FAMILIES: dict[str, Family] = {
    "mobilenet_v1": Family("/tensorflow/keras-applications/mobilenet/",
                           lambda a, s: f"mobilenet_{_v1_alpha(a)}_{s}_tf_no_top.h5",
                           (0.25, 0.5, 0.75, 1.0), (128, 160, 192, 224)),
    "mobilenet_v2": Family("/tensorflow/keras-applications/mobilenet_v2/",
                           lambda a, s: f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(a)}_{s}_no_top.h5",
                           (0.35, 0.5, 0.75, 1.0, 1.3, 1.4), (96, 128, 160, 192, 224)),
}
for _b in range(8):
    FAMILIES[f"efficientnet_b{_b}"] = Family("/keras-applications/",
                                             (lambda b: lambda a, s: f"efficientnetb{b}_notop.h5")(_b))

# keras.applications.efficientnet.WEIGHTS_HASHES[bN][1]: the md5 of each no-top file.
MD5: dict[str, str] = {
    "efficientnetb0_notop.h5": "50bc09e76180e00e4465e1a485ddc09d",
    "efficientnetb1_notop.h5": "74c4e6b3e1f6a1eea24c589628592432",
    "efficientnetb2_notop.h5": "111f8e2ac8aa800a7a99e3239f7bfb39",
    "efficientnetb3_notop.h5": "af6d107764bb5b1abb91932881670226",
    "efficientnetb4_notop.h5": "ebc24e6d6c33eaebbd558eafbeedf1ba",
    "efficientnetb5_notop.h5": "38879255a25d3c92d5e44e04ae6cec6f",
    "efficientnetb6_notop.h5": "9ecce42647a20130c1f39a5d4cb75743",
    "efficientnetb7_notop.h5": "cbcfe4450ddf6f3ad90b1b398090fe4a",
}


@dataclass(frozen=True)
class WeightFile:
    arch: str
    filename: str
    url: str
    md5: str | None  # None: keras publishes no sum; the sha256 is pinned at first download
    trained_size: int | None  # the input size the file was trained at, where keras has several
    alpha: float | None


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgekit") / "weights"


def resolve(arch: str, alpha: float | None, size: int) -> WeightFile:
    """The keras.applications file for ARCH at this alpha and input size; a family or alpha
    keras has no ImageNet weights for is a ValueError that lists what exists."""
    family = FAMILIES.get(arch)
    if family is None:
        raise ValueError(f"--weights imagenet: keras.applications has no ImageNet weights for {arch!r}; "
                         f"it has them for {', '.join(FAMILIES)}")
    if family.alphas:
        alpha = 1.0 if alpha is None else float(alpha)
        if alpha not in family.alphas:
            raise ValueError(f"--weights imagenet: keras.applications has no ImageNet weights for {arch} "
                             f"--alpha {alpha:g}; it has alpha {', '.join(f'{a:g}' for a in family.alphas)}")
    elif alpha is not None:
        raise ValueError(f"--weights imagenet: {arch} has no --alpha (got {alpha:g})")
    trained = min(family.sizes, key=lambda s: (abs(s - size), -s)) if family.sizes else None
    name = family.filename(alpha, trained)
    host = os.environ.get(HOST_ENV) or HOST
    return WeightFile(arch, name, host.rstrip("/") + family.path + name, MD5.get(name), trained,
                      alpha if family.alphas else None)


def check(arch: str, alpha: float | None, size: int, channels: int | None) -> WeightFile:
    """``--weights imagenet`` is usable with these options (before any data is read)."""
    if channels not in (None, 3):
        raise ValueError(f"--weights imagenet needs 3 input channels (the ImageNet weights are for RGB "
                         f"input); got --channels {channels}: leave --channels out and grayscale images "
                         "are repeated to 3 channels")
    return resolve(arch, alpha, size)


def _digests(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _pin(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _problem(wf: WeightFile, path: Path) -> str | None:
    """Why the file at PATH is not WF's (None: it is)."""
    md5, sha = _digests(path)
    if wf.md5 is not None:
        return None if md5 == wf.md5 else f"has md5 {md5}, expected {wf.md5} (keras.applications')"
    pin = _pin(path)
    pinned = pin.read_text().strip() if pin.is_file() else None
    if pinned is None:
        return "has no sha256 pinned at its download"
    return None if sha == pinned else f"has sha256 {sha}, expected {pinned} (pinned at its first download)"


def fetch(wf: WeightFile, log: Callable[[str], None]) -> tuple[Path, str]:
    """The checked file in the cache, downloaded when missing or bad; returns (path, sha256)."""
    path = cache_dir() / wf.filename
    if path.is_file():
        problem = _problem(wf, path)
        if problem is None:
            log(f"ImageNet weights: {path} (cached)")
            return path, _digests(path)[1]
        log(f"ImageNet weights: cached {path} {problem}; deleted it, downloading again")
        path.unlink()
        _pin(path).unlink(missing_ok=True)
    log(f"ImageNet weights: downloading {wf.url}")
    tmp = temp_path(path)
    try:
        _download(wf.url, tmp)
        md5, sha = _digests(tmp)
        if wf.md5 is not None and md5 != wf.md5:
            raise ValueError(f"--weights imagenet: {wf.url} has md5 {md5}, expected {wf.md5} "
                             "(keras.applications'); deleted the download")
        import h5py

        if not h5py.is_hdf5(tmp):
            raise ValueError(f"--weights imagenet: {wf.url} is not an HDF5 weight file; deleted the download")
        if wf.md5 is None:
            atomic_write_text(_pin(path), sha + "\n")
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, sha


def _download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"--weights imagenet: could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ValueError(f"--weights imagenet: could not download {url}: {reason}") from None


def load_imagenet(model, arch: str, alpha: float | None, size: int, log: Callable[[str], None]) -> dict:
    """Load the ImageNet backbone into MODEL by layer name (the new head stays as built);
    return what the run metadata records under ``transfer``."""
    from .transfer import load_pretrained

    wf = resolve(arch, alpha, size)
    if wf.trained_size is not None and wf.trained_size != size:
        log(f"ImageNet weights: keras.applications has no {arch} file for {size}x{size}; using the one "
            f"trained at {wf.trained_size}x{wf.trained_size}, the nearest of {', '.join(map(str, FAMILIES[arch].sizes))}")
    path, sha = fetch(wf, log)
    copied, new = load_pretrained(model, str(path))
    if arch.startswith("efficientnet_b"):
        _fold_imagenet_stddev(model)
    return {"weights": IMAGENET, "url": wf.url, "file": str(path), "sha256": sha, "md5": wf.md5,
            "trained_size": wf.trained_size, "layers_loaded": copied, "layers_new": new}


def _fold_imagenet_stddev(model) -> None:
    """keras.applications' EfficientNet follows its Normalization layer, for ImageNet weights,
    with Rescaling(1 / sqrt(stddev)); the same as multiplying the layer's variance by stddev."""
    import numpy as np

    layer = model.get_layer("normalization")
    mean, variance, count = layer.get_weights()
    layer.set_weights([mean, variance * np.asarray(IMAGENET_STDDEV_RGB, variance.dtype), count])
    layer.finalize_state()
