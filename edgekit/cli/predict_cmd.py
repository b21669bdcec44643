"""``edgekit predict``: classify images with an exported .tflite/.onnx/.ort file, on the device.

Runs on the device install (``pip install edgekit``): it uses :mod:`edgekit.runtime` only
(numpy and LiteRT, tflite_runtime or onnxruntime) and Pillow for image files, and never imports
TensorFlow unless ``--backend tensorflow`` asks for it.

Inputs, prepared with the preprocessing stored in the file's edgekit metadata (see
:mod:`edgekit.runtime.spec`):

- ``.png``, ``.jpg``/``.jpeg``, ``.bmp`` image files (read with Pillow);
- ``.npy`` arrays holding a uint8 image, (H, W) or (H, W, C).

``--raw`` is for files without edgekit metadata (or to bypass it): every input is then a
``.npy`` array already prepared as the model's input for one sample, with or without a batch
axis of 1 (float, or already quantized in an int8/uint8 input's own dtype), fed unchanged;
labels are the metadata's class names when there are some, else class indices.

Every input is read and prepared before the first inference, so a bad one stops the command
(one line, exit 2) before anything is printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import click

from edgekit.messages import one_line

from .common import (CliError, emit_json, native_stderr_silenced, quiet_tensorflow, run_checked,
                     stdout_to_stderr)
from .tables import print_table

# The runtime's backend table (edgekit.runtime.backends.ALL_BACKENDS), listed here so that
# `edgekit --help` does not import numpy; a test keeps the two equal.
BACKENDS = ("auto", "litert", "tflite_runtime", "tensorflow", "onnxruntime")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ARRAY_SUFFIX = ".npy"


@dataclass(frozen=True)
class Prediction:
    """One input's result: its top-k (index, label, probability) and the predict time."""

    image: str
    top_k: list[tuple[int, str, float]]
    ms: float

    def to_dict(self) -> dict:
        ranked = [{"label": label, "index": index, "probability": p} for index, label, p in self.top_k]
        return {"image": self.image, "top_k": ranked, "ms": round(self.ms, 3)}


@click.command("predict")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=click.IntRange(1), default=5, show_default=True, help="Classes to show per image.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Inference threads  [default: the backend's]")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: LiteRT, then tflite_runtime, then TensorFlow for .tflite; onnxruntime for .onnx and .ort.")
@click.option("--raw", is_flag=True, help="Inputs are .npy arrays already prepared as the model's input; "
              "no preprocessing (for files without edgekit metadata).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def predict_command(model: Path, images: tuple[Path, ...], top_k: int, threads, backend: str, raw: bool,
                    as_json: bool) -> None:
    """Classify IMAGES (.png/.jpg/.bmp files or .npy uint8 arrays) with MODEL (.tflite, .onnx or .ort).

    Images are prepared as the file's edgekit metadata says (size, channels, normalisation) and
    labelled with its class names. "ms" is the time of the predict call for that image
    (quantization, inference, dequantization); the first image includes the backend's warm-up.
    """
    for path in images:
        _check_input_path(path, raw)
    if backend == "tensorflow":
        quiet_tensorflow()
    with stdout_to_stderr(as_json):
        loaded = _load(model, threads, backend, raw)
        inputs = [_prepare(loaded, path, raw) for path in images]
        results = [_predict(loaded, path, x, top_k) for path, x in zip(images, inputs)]
    if as_json:
        emit_json({"model": str(model), "backend": loaded.backend, "results": [r.to_dict() for r in results]})
        return
    for r in results:
        click.echo(f"{r.image}  ({loaded.backend}, {r.ms:.2f} ms)")
        print_table("", ["label", "index", "probability"],
                    [[label, str(index), f"{p:.4f}"] for index, label, p in r.top_k])


def _check_input_path(path: Path, raw: bool) -> None:
    suffix = path.suffix.lower()
    if raw and suffix != ARRAY_SUFFIX:
        raise CliError(f"--raw takes .npy arrays prepared as the model's input; got {str(path)!r}")
    if suffix not in (*IMAGE_SUFFIXES, ARRAY_SUFFIX):
        has = f"has suffix {suffix!r}" if suffix else "has no suffix"
        raise CliError(f"image {str(path)!r} {has}; expected one of {', '.join((*IMAGE_SUFFIXES, ARRAY_SUFFIX))}")
    if not path.is_file():
        raise CliError(f"image file {str(path)!r} does not exist" if not path.exists()
                       else f"image {str(path)!r} is not a regular file")


def _load(path: Path, threads, backend: str, raw: bool):
    from ..runtime import Model

    with native_stderr_silenced():
        model = run_checked(Model, path, threads=threads, backend=backend)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise CliError(f"edgekit predict needs a model with one input and one output; {str(path)!r} has "
                       f"{len(model.inputs)} and {len(model.outputs)}")
    if model.metadata is None and not raw:
        raise CliError(f"{str(path)!r} carries no edgekit metadata (input size, normalisation, class names) "
                       "nor usable TFLite Model Metadata, "
                       "so images cannot be prepared for it; pass .npy arrays prepared as its input with --raw, "
                       "or export the model with 'edgekit export'")
    return model


def _prepare(model, path: Path, raw: bool):
    """The model input for one file: a batch of one sample."""
    from ..runtime import RuntimeModelError, load_image

    try:
        if raw:
            return _raw_input(model, path, _load_array(path))
        if path.suffix.lower() == ARRAY_SUFFIX:
            image = _load_array(path)
            if image.dtype != "uint8" or image.ndim not in (2, 3):
                raise CliError(f"{str(path)!r} holds a {image.dtype} array of shape {image.shape}; expected a uint8 "
                               "image (H, W) or (H, W, C), or use --raw for arrays prepared as the model's input")
        else:
            _require_pillow(path)
            image = load_image(path, model.metadata.preprocess.channels)
        return model.prepare(image)[None]
    except (RuntimeModelError, ValueError, TypeError) as exc:  # preprocess refuses odd images with these
        message = one_line(exc)
        raise CliError(message if str(path) in message else f"{str(path)!r}: {message}") from None


def _raw_input(model, path: Path, array):
    info = model.inputs[0]
    if array.ndim == len(info.shape) - 1:
        return array[None]
    if array.ndim == len(info.shape) and array.shape[:1] == (1,):
        return array
    sample = "(" + ", ".join("?" if d is None else str(d) for d in info.shape[1:]) + ")"
    raise CliError(f"{str(path)!r} holds an array of shape {array.shape}; --raw expects one sample of input "
                   f"{info.name!r}, shape {sample}, with or without a batch axis of 1")


def _load_array(path: Path):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # not a .npy, truncated, or pickled objects
        raise CliError(f"cannot read array {str(path)!r}: {one_line(exc)}") from None


def _require_pillow(path: Path) -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise CliError(f"reading {str(path)!r} needs Pillow, which is not installed (pip install pillow); "
                       ".npy arrays work without it") from None


def _predict(model, path: Path, x, top_k: int) -> Prediction:
    from ..runtime import RuntimeModelError

    try:
        start = time.perf_counter()
        scores = model.predict(x)
        ms = (time.perf_counter() - start) * 1e3
        return Prediction(str(path), model.rank(scores, top_k), ms)
    except RuntimeModelError as exc:
        raise CliError(f"{str(path)!r}: {one_line(exc)}") from None
