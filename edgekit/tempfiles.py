"""Hidden temporary files for atomic writes (write the temp, then ``os.replace`` it over the
target), shared by the run folder writer (train) and the export writer. Standard library only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
