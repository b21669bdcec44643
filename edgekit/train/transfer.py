"""Transfer learning: start from an edgekit run or a keras.applications weight file, replace
the classifier for the new classes, freeze the first K layers or everything but the head."""

from __future__ import annotations

from pathlib import Path

import keras

from edgekit.models.safe_load import archive_problem, load_keras_model
from edgekit.run_record import check_run, is_run, model_file

from .config import Freeze, FreezeSpec, is_imagenet

HEAD_LAYERS = ("predictions", "top_dropout", "conv_preds", "reshape_2", "dropout")


def copy_matching_weights(src: keras.Model, dst: keras.Model) -> tuple[int, list[str]]:
    """Copy weights layer by layer where names and shapes match; return (copied, skipped names)."""
    by_name = {layer.name: layer for layer in src.layers}
    copied, skipped = 0, []
    for layer in dst.layers:
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is None or [w.shape for w in other.weights] != [w.shape for w in layer.weights]:
            skipped.append(layer.name)
            continue
        layer.set_weights(other.get_weights())
        copied += 1
    if copied == 0:
        raise ValueError(f"no layer of {src.name} matches {dst.name} by name and shape; "
                         "is --weights from the same architecture?")
    return copied, skipped


def check_weights(weights: str | None) -> None:
    """Refuse a --weights that cannot be loaded, before any data is read or folder made: a
    missing path, a folder that is no run, a file of another kind, or a .keras/.h5 file that is
    not a zip/HDF5 archive at all (empty, truncated, random bytes). A file that passes can
    still fail to load; that is reported when it is loaded."""
    if weights is None or is_imagenet(weights):  # checked by pretrained.check
        return
    path = Path(weights)
    expected = "expected an edgekit run dir, a .keras file or a keras.applications .h5 weight file"
    if not path.exists():
        raise ValueError(f"--weights {weights!r} does not exist; {expected}")
    if path.is_dir():
        try:
            check_run(weights, "--weights")
        except ValueError as exc:
            raise ValueError(f"{exc}; {expected}") from None
        return
    if path.suffix == ".keras":
        problem = archive_problem(path)
        if problem:
            raise ValueError(f"--weights {weights!r}: {problem}")
    elif path.suffix == ".h5":
        import h5py

        if not h5py.is_hdf5(path):
            raise ValueError(f"--weights {weights!r} is not an HDF5 weight file")
    else:
        raise ValueError(f"--weights got {weights!r}; {expected}")


def load_pretrained(dst: keras.Model, weights: str) -> tuple[int, list[str]]:
    """Load an edgekit run dir, a .keras file or a keras.applications .h5 into ``dst`` by name."""
    path = Path(weights)
    if is_run(path):
        path = model_file(path)
    if path.suffix == ".keras" and path.is_file():
        src = load_keras_model(path)
        return copy_matching_weights(src, dst)
    if path.is_file() and path.suffix == ".h5" and not path.name.endswith(".weights.h5"):
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            legacy_h5_format.load_weights_from_hdf5_group_by_name(group, dst, skip_mismatch=True)
            stored = _stored_shapes(group)
        with_weights = [l for l in dst.layers if l.weights]
        loaded = [l.name for l in with_weights if stored.get(l.name) == [tuple(w.shape) for w in l.weights]]
        if not loaded:
            raise ValueError(f"no layer of {weights!r} matches {dst.name} by name and shape; "
                             "is --weights from the same architecture?")
        return len(loaded), [l.name for l in with_weights if l.name not in loaded]
    if path.is_file() and path.name.endswith(".weights.h5"):
        dst.load_weights(path)  # Keras 3 weight file: the full model, same classes
        return len([l for l in dst.layers if l.weights]), []
    raise ValueError(f"--weights got {weights!r}; expected an edgekit run dir, a .keras file "
                     "or a keras.applications .h5 weight file")


def _stored_shapes(group) -> dict[str, list[tuple]]:
    """Layer name -> weight shapes of a keras.applications (legacy HDF5) weight group."""
    def text(v):
        return v.decode("utf8") if isinstance(v, bytes) else str(v)

    shapes = {}
    for name in map(text, group.attrs.get("layer_names", [])):
        layer = group[name]
        shapes[name] = [tuple(layer[text(w)].shape) for w in layer.attrs.get("weight_names", [])]
    return shapes


def apply_freeze(model: keras.Model, freeze: FreezeSpec) -> int:
    """Freeze layers as asked; return how many layers with weights are frozen."""
    for layer in model.layers:
        layer.trainable = True
    if freeze.mode is Freeze.NONE:
        return 0
    if freeze.mode is Freeze.ALL_BUT_HEAD:
        frozen = [l for l in model.layers if l.name not in HEAD_LAYERS]
    else:
        if freeze.k > len(model.layers):
            raise ValueError(f"--freeze got {freeze.k}; {model.name} has {len(model.layers)} layers")
        frozen = model.layers[:freeze.k]
    for layer in frozen:
        layer.trainable = False  # BatchNormalization then also runs in inference mode
    return sum(1 for l in frozen if l.weights)


def unfreeze_all(model: keras.Model) -> None:
    for layer in model.layers:
        layer.trainable = True
