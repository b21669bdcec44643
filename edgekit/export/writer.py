"""The one wrapper around every converter: timing, the non-empty check, the edgekit metadata,
validation, the atomic write (of the model file and its sidecars) and the log line.

A file is first written under a hidden temporary name in the target folder
(``.NAME.partial-<pid>-<random>.SUFFIX``), completed there (metadata, validation) and only then
moved onto its final name with ``os.replace``; a killed export leaves at most hidden partial
files, never one that looks complete. The next export to the same NAME removes the partial
files whose process is gone (:func:`remove_stale_partials`). A target's sidecar files (the
.ort file's required-operators config) are made from the finished partial file and published,
each atomically, just before the model file, so a model file never lacks its sidecars.
"""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgekit.tempfiles import atomic_write_bytes, hidden_temp, publish

from .context import ConversionContext
from .errors import ConverterError, ExportError, converting, describe
from .targets import Target
from .validate import Validation


@dataclass
class FileResult:
    target: Target
    path: Path
    size_bytes: int = 0
    seconds: float = 0.0
    validation: Validation | None = None
    notes: dict = field(default_factory=dict)
    error: str | None = None  # set when the file failed validation (and was not kept)
    sidecars: list[Path] = field(default_factory=list)  # written next to the model file

    def to_dict(self, keras_accuracy: float | None) -> dict:
        v = self.validation
        doc = {"path": str(self.path), "format": self.target.format.value,
               "precision": self.target.precision.value, "size_bytes": self.size_bytes,
               "agreement": v.agreement if v else None, "max_abs_diff": v.max_abs_diff if v else None,
               "mean_abs_diff": v.mean_abs_diff if v else None, "min_cosine": v.min_cosine if v else None,
               "validation_samples": v.samples if v else 0}
        if v is not None and v.accuracy is not None:
            doc["accuracy"] = v.accuracy
        doc["keras_accuracy"] = keras_accuracy
        doc["seconds"] = round(self.seconds, 3)
        if self.notes:
            doc["notes"] = self.notes
        if self.sidecars:
            doc["sidecars"] = [str(p) for p in self.sidecars]
        doc["ok"] = self.error is None
        if self.error:
            doc["error"] = self.error
        return doc


def check_destinations(paths, force: bool) -> None:
    """Refuse to overwrite existing files (without ``force``) before any work is done."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            raise ExportError(f"{str(path)!r} is a folder; expected a file path to write")
        if path.exists() and not force:
            raise ExportError(f"{str(path)!r} already exists; pass --force to overwrite it")


PARTIAL = ".partial-"
_PARTIAL_PID = re.compile(re.escape(PARTIAL) + r"(\d+)-")


def partial_path(path: Path) -> Path:
    """A new hidden file next to ``path``, named after it and this process, with the usual
    permissions (mkstemp's 0600 would otherwise carry over to the published file)."""
    return hidden_temp(path, f".{path.name}{PARTIAL}{os.getpid()}-", path.suffix)


def _alive(pid: int) -> bool:
    if os.name != "posix":  # Windows' os.kill(pid, 0) would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(paths) -> list[Path]:
    """Delete the partial files (and the metadata writer's temporary copies of them) that an
    export killed while writing one of ``paths`` left behind; those of a live process stay."""
    removed = []
    for path in map(Path, paths):
        if not path.parent.is_dir():
            continue
        name = glob.escape(path.name)
        for pattern in (f".{name}{PARTIAL}*", f"..{name}{PARTIAL}*"):
            for tmp in path.parent.glob(pattern):
                match = _PARTIAL_PID.search(tmp.name[len(path.name) + 1:])
                if tmp.is_file() and not (match and _alive(int(match.group(1)))):
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
    return removed


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` as ``path``, through a partial file (``edgekit.tempfiles``' policy)."""
    atomic_write_bytes(path, data, temp=partial_path)


def export_target(target: Target, ctx: ConversionContext, path: Path,
                  finish: Callable[[Path], Validation], strict: bool,
                  log: Callable[[str], None]) -> FileResult:
    """Convert, write to a partial file, ``finish`` it (metadata + validation), then publish.

    ``strict``: a validation problem (fp32 beyond tolerance) keeps the file from being
    published and is recorded as the result's error. A converter that raises, or makes a file
    that edgekit's runtime cannot load or run, is a ConverterError naming the target.
    """
    start = time.perf_counter()
    try:
        with converting(target.tool):
            data = target.convert(ctx)
    except ConverterError as exc:
        raise exc.at(target.key) from exc.__cause__
    if not data:
        raise ConverterError(target.tool, "it produced an empty file", target.key)
    result = FileResult(target, path, notes=dict(ctx.notes.get(target.key, {})))
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data)
        result.validation = _finished(target, finish, tmp)
        result.size_bytes = tmp.stat().st_size
        if result.size_bytes == 0:
            raise ExportError(f"{str(path)!r} came out empty")
        problem = result.validation.fp32_problem() if strict else None
        if problem:
            result.error = f"{path.name}: {problem}; file not written"
        else:
            result.sidecars = _write_sidecars(target, tmp, path)
            publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    result.seconds = time.perf_counter() - start
    log(_line(result))
    return result


def _finished(target: Target, finish: Callable[[Path], Validation], tmp: Path) -> Validation:
    """``finish(tmp)``; a file the runtime cannot load or run is the converter's failure."""
    try:
        return finish(tmp)
    except ExportError:
        raise
    except Exception as exc:
        raise ConverterError(target.tool, f"its file does not load or run: {describe(exc)}", target.key) from exc


def _write_sidecars(target: Target, finished: Path, path: Path) -> list[Path]:
    written = []
    for sidecar in target.sidecars:
        data = sidecar.build(finished, path.name)
        if not data:
            raise ExportError(f"{target.key} produced an empty {sidecar.suffix} file")
        write_atomic(sidecar.path_for(path), data)
        written.append(sidecar.path_for(path))
    return written


def _line(r: FileResult) -> str:
    v = r.validation
    acc = f", accuracy {100 * v.accuracy:.2f}%" if v and v.accuracy is not None else ""
    status = f"FAILED: {r.error}" if r.error else f"wrote {r.path}"
    status += "".join(f" + {p.name}" for p in r.sidecars)
    return (f"[{r.target.key}] {status} ({r.size_bytes / 1024:.1f} KiB, {r.seconds:.1f} s; "
            f"agreement {100 * v.agreement:.2f}%, max abs diff {v.max_abs_diff:.3g}{acc})")
