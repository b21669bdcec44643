"""The one exception type of ``edgekit.data``.

``DataError`` subclasses ``ValueError`` so callers that already catch bad input as
``ValueError`` keep working; messages are one line and contain the value received.
"""

from __future__ import annotations


class DataError(ValueError):
    """A data source, split or data option that cannot be used as given."""
