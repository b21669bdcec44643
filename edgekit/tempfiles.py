"""Hidden temporary files for atomic writes (write the temp, then ``os.replace`` it over the
target), shared by the run folder writer (train), the export writer and evaluation's outputs.
Standard library only."""

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


def atomic_write_with(path: Path, write: Callable[[Path], object]) -> None:
    """Publish what ``write(tmp)`` writes to a hidden temporary file as ``path``, by rename:
    ``path`` is complete or untouched, never half written."""
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
