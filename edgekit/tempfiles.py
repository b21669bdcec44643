"""Atomic writes: write a hidden temporary file next to the target, then ``os.replace`` it over
the target, so that a reader sees the old file or the complete new one, never half of one.

Durability policy (one for all of edgekit): the temporary file's data is flushed to disk
(``os.fsync``) before the rename; the folder itself is not fsynced. After a crash the target is
therefore either the old file or the complete new one: the rename may be lost, the data it
publishes may not. Used by edgekit's file writers: the run record (edgekit.run_record)
and train's checkpoints, models and downloaded weights, the export writer, evaluation's
outputs, IDX files, plots, and the runtime's metadata writer. Standard library only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def hidden_temp(path: Path, prefix: str, suffix: str) -> Path:
    """A new, empty file ``PREFIX<random>SUFFIX`` next to ``path`` with the permissions a plain
    ``open`` would give (mkstemp's 0600 would otherwise carry over to the published file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())
    return Path(tmp)


def temp_path(path: Path) -> Path:
    """A new, empty hidden file ``.NAME.<random>.tmp`` next to ``path`` (its folder is made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return hidden_temp(path, f".{path.name}.", ".tmp")


def publish(tmp: Path, path: Path) -> None:
    """Flush ``tmp``'s data to disk, then rename it onto ``path`` (the policy above)."""
    fd = os.open(tmp, os.O_RDONLY)  # fsync needs no write access (the file may be read-only by now)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def atomic_write_with(path: Path, write: Callable[[Path], object],
                      temp: Callable[[Path], Path] = temp_path) -> None:
    """Publish what ``write(tmp)`` writes to a hidden temporary file (``temp(path)``, by default
    :func:`temp_path`) as ``path``: ``path`` is complete or untouched, never half written."""
    tmp = temp(path)
    try:
        write(tmp)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, temp: Callable[[Path], Path] = temp_path) -> None:
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data), temp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
