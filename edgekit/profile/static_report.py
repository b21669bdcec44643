"""The static figures of a model file as data: each operator (:class:`OpStat`) and the file's
totals (:class:`StaticReport`), with the conventions of :mod:`.static` (MACs at batch 1,
parameters, precision classes). The readers (:mod:`.tflite_static`, :mod:`.onnx_static`) fill
them; :func:`.static.read_static` picks the reader.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PRECISIONS = ("int8", "hybrid", "float", "convert", "other")


@dataclass(frozen=True)
class OpStat:
    """One operator of the file, in execution (file) order."""

    index: int
    name: str
    type: str
    macs: int | None  # None: a MAC operator whose shapes are unknown
    precision: str


@dataclass(frozen=True)
class StaticReport:
    format: str  # "tflite", "onnx", "ort" or "keras"
    size_bytes: int
    params: int | None  # None: the graph was not read (see ``graph_read``)
    ops: tuple[OpStat, ...]
    shape_source: str  # where the tensor shapes behind the MACs came from
    notes: tuple[str, ...] = field(default_factory=tuple)
    graph_read: bool = True  # False: only the size is known (a format without a graph reader here)

    @property
    def macs(self) -> int | None:
        """Total MACs at batch 1; None when a MAC operator's shapes could not be found."""
        if not self.graph_read or any(op.macs is None for op in self.ops):
            return None
        return sum(op.macs for op in self.ops)

    def op_counts(self) -> dict[str, int]:
        """Operators by type, most frequent first."""
        return dict(Counter(op.type for op in self.ops).most_common())

    def op_share(self) -> dict[str, float]:
        """Fraction of the operators in each precision class (summing to 1)."""
        counts = Counter(op.precision for op in self.ops)
        total = len(self.ops) or 1
        return {p: round(counts[p] / total, 4) for p in PRECISIONS if counts[p]}

    def int8_mac_share(self) -> float | None:
        """Fraction of the MACs computed by int8 kernels (None without MACs)."""
        total = self.macs
        if not total:
            return None
        return round(sum(op.macs for op in self.ops if op.precision == "int8") / total, 4)

    def to_dict(self) -> dict:
        return {"format": self.format, "size_bytes": self.size_bytes, "params": self.params,
                "macs": self.macs, "op_count": len(self.ops), "ops": self.op_counts(),
                "op_share": self.op_share(), "int8_mac_share": self.int8_mac_share(),
                "shape_source": self.shape_source, "static_notes": list(self.notes)}


def positions(shape, skip_leading: int = 1, skip_trailing: int = 1) -> int | None:
    """Product of the dims between the batch and the channels (None when one is unknown)."""
    dims = list(shape)[skip_leading : len(shape) - skip_trailing if skip_trailing else None]
    n = 1
    for d in dims:
        if d is None or d < 0:
            return None
        n *= int(d)
    return n
