"""How edgekit words an exception in one line, and where progress lines go (stderr).

Two wordings, each for its own kind of message: :func:`first_line` for native engines and
converters, whose messages can run to a stack dump after a useful first line, and
:func:`one_line` for messages that are all useful but may be wrapped over several lines
(edgekit's own errors, file system errors). Standard library only: every layer, the runtime
included, may import it.
"""

from __future__ import annotations

import sys


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def one_line(exc: BaseException) -> str:
    """``exc``'s whole message with its whitespace (newlines included) collapsed to single
    spaces, or its type's name when the message is empty."""
    return " ".join(str(exc).split()) or type(exc).__name__


def stderr(line: str) -> None:
    """Print ``line`` to stderr now (flushed): progress and warnings, never results."""
    print(line, file=sys.stderr, flush=True)
