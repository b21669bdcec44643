"""Converter failures: an exception raised inside TFLiteConverter, tf2onnx or onnxruntime, or a
file of theirs that edgekit's runtime cannot load or run, is edgekit's problem, not the user's.

``ConverterError`` (a RuntimeError, so never mistaken for the ValueErrors of bad input) names
the tool, the target (``onnx/int8``) and the original exception in one line; ``edgekit export``
reports it as an internal error (exit 1), where bad input (``ExportError`` and the other
ValueErrors) exits 2.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from edgekit.messages import first_line


class ExportError(ValueError):
    """An export that cannot be done or whose result is unusable; one-line message."""


class ConverterError(RuntimeError):
    """``TOOL failed on TARGET: ExcType: first line of its message``."""

    def __init__(self, tool: str, cause: str, target: str | None = None) -> None:
        self.tool, self.cause, self.target = tool, cause, target
        where = f" on {target}" if target else ""
        super().__init__(f"{tool} failed{where}: {cause}")

    def at(self, target: str) -> "ConverterError":
        """The same failure with its target named (kept when one is named already)."""
        return self if self.target else ConverterError(self.tool, self.cause, target)


def describe(exc: BaseException) -> str:
    """``ExcType: first non-empty line of the message`` (MLIR and tf2onnx errors run to pages)."""
    return f"{type(exc).__name__}: {first_line(exc).rstrip()}" if str(exc).strip() else type(exc).__name__


@contextlib.contextmanager
def converting(tool: str) -> Iterator[None]:
    """Turn any exception of the block into a ConverterError naming ``tool``; a ConverterError
    (naming a tool further down) and edgekit's own ExportError pass through."""
    try:
        yield
    except (ConverterError, ExportError):
        raise
    except Exception as exc:
        raise ConverterError(tool, describe(exc)) from exc
