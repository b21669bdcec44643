"""``edgekit benchmark``: every format x precision edgekit exports, side by side.

Like Ultralytics' ``yolo benchmark``: for each exported file, its status (a failure is a row,
not the end of the table), size, accuracy on labelled data, top-1 agreement with the Keras
model, median latency and FPS (interleaved timing, :func:`edgekit.profile.latency.interleaved`),
MACs read from the file, and, when int8 is not faster than fp32, the likely cause (:mod:`.diagnose`). Exporting is
``edgekit.export``, timing and static figures are ``edgekit.profile``, running is
``edgekit.runtime``; this package only puts them together (:mod:`.run`), writes the JSON, CSV
(:mod:`.report`) and trade-off plot (:mod:`.plot`).
"""

from .diagnose import Int8Facts, Pair, RunSettings, int8_verdict
from .report import SCHEMA, BenchmarkReport, BenchmarkRow
from .run import BenchmarkOptions, Exported, benchmark_export, benchmark_model, write_outputs

__all__ = ["BenchmarkOptions", "BenchmarkReport", "BenchmarkRow", "Exported", "Int8Facts", "Pair", "RunSettings",
           "SCHEMA", "benchmark_export", "benchmark_model", "int8_verdict", "write_outputs"]
