"""edgekit's command line: thin click commands over the library's functions.

Conventions (see README): ``--json`` prints exactly one JSON document on stdout and
everything else (logs, TensorFlow chatter, progress bars) on stderr; bad arguments and bad
input exit 2 with one line on stderr; every command has ``--help``.
"""

from .main import main

__all__ = ["main"]
