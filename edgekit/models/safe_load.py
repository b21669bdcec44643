"""Loading ``.keras`` files from anywhere without running code stored in them.

A ``.keras`` file (Keras 3's zip of ``config.json``, ``metadata.json`` and the weights) can
hold a ``Lambda`` layer whose function is marshalled Python bytecode: deserializing it runs
that code. Keras' safe mode (``keras.models.load_model(..., safe_mode=True)``, see
https://keras.io/api/models/model_saving_apis/model_saving_and_loading/) refuses such layers.
Every edgekit entry point that reads a ``.keras`` file (export, evaluate, summary, profile,
``train --weights`` and ``--resume``) loads it through :func:`load_keras_model`, which always
asks for safe mode and turns Keras' refusal into one line that says why the file was refused.
"""

from __future__ import annotations

import json
import os
import zipfile

from edgekit.messages import one_line

CONFIG = "config.json"
MAX_CONFIG_BYTES = 64 << 20  # a model config is kilobytes; larger is not worth scanning
# Words of Keras' own safe-mode refusals ("... potential risk of arbitrary code execution ...
# passing `safe_mode=False` ...").
_SAFE_MODE_WORDS = ("safe_mode", "arbitrary code")


class UnsafeModelError(ValueError):
    """A .keras file refused because loading it would run Python code stored in it."""


def load_keras_model(path: str | os.PathLike, compile: bool = False):
    """``keras.models.load_model`` in safe mode; ValueError (UnsafeModelError when safe mode
    refused the file) with a one-line message for anything that cannot be loaded."""
    import keras

    import edgekit.models  # noqa: F401 - registers the zoo's custom layers before deserializing

    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, zipfile errors, ...
        raise refusal(path, exc) from None


def refusal(path: str | os.PathLike, exc: BaseException) -> ValueError:
    """The one-line error for a .keras file that Keras could not load (in safe mode)."""
    text = one_line(exc)
    lambdas = lambda_layers(path)
    if lambdas:
        names = ", ".join(repr(n) for n in lambdas)
        what = f"it contains {'a Lambda layer' if len(lambdas) == 1 else 'Lambda layers'} {names} (arbitrary Python code)"
    elif any(word in text for word in _SAFE_MODE_WORDS):
        what = f"Keras safe mode refused it ({text[:200]})"
    else:
        why = archive_problem(path) or text[:300]  # Keras says "File not found" for a file that is no zip
        return ValueError(f"cannot load {str(path)!r} as a Keras model: {why}")
    return UnsafeModelError(f"refused to load {str(path)!r}: {what}; edgekit loads .keras files in "
                            "Keras safe mode and never runs code stored in a model file")


def archive_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a .keras archive (a zip with config.json), in words, or None."""
    try:
        if os.path.getsize(path) == 0:
            return "the file is empty"
        if not zipfile.is_zipfile(path):
            return "it is not a Keras archive (not a zip file, or a truncated one)"
        with zipfile.ZipFile(path) as archive:
            if CONFIG not in archive.namelist():
                return f"it is not a Keras archive (a zip file without {CONFIG})"
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return None  # a folder or an unreadable file: Keras' own message says more
    return None


def lambda_layers(path: str | os.PathLike) -> list[str]:
    """Names of the Lambda layers in a .keras file's config (nested models included); [] when
    the file has none or its config cannot be read."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(CONFIG)
            if info.file_size > MAX_CONFIG_BYTES:
                return []
            config = json.loads(archive.read(info))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError):
        return []
    names, stack = [], [config]
    while stack:  # iterative: a hostile config may nest deeply
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                inner = node.get("config")
                names.append(str(inner.get("name", "?")) if isinstance(inner, dict) else "?")
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return names
