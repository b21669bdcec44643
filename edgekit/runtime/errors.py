"""The one exception type of ``edgekit.runtime``.

It subclasses ValueError so that callers who already catch ValueError for bad input keep
working; its message is one line naming the problem and the value received.
"""

from __future__ import annotations


class RuntimeModelError(ValueError):
    """A model file, backend choice or predict input that the runtime refuses."""
