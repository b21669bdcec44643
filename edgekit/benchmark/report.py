"""The benchmark's result: one row per exported file, its JSON document and CSV table.

JSON schema ``edgekit.benchmark/1`` (what ``BenchmarkReport.to_dict`` returns and
``edgekit benchmark --json`` prints): ``model``, ``data``, ``validation`` (the images the
accuracy is measured on), ``threads``, ``timing`` (the run-count rule), ``environment`` (as
``edgekit profile`` records it, with ``runtimes``: backend -> version), ``keras``
{``accuracy``}, ``rows``, ``notes`` (skipped pairs, the int8 verdicts, export warnings),
``target`` {``file``: the device target the files were exported for, ``measuring``: this
machine's, see :mod:`edgekit.devices`} and ``target_mismatch`` (why those differ, or null).
Each row: ``format``, ``precision``, ``status`` ("ok" or "failed"), ``path``, ``size_bytes``,
``accuracy`` (top-1 on the labelled split; null without labels), ``agreement`` (fraction of
top-1 predictions equal to the Keras model's), ``latency_ms`` {p50, p90, mean, min, cv, runs},
``fps`` (1000 / p50, batch 1), ``macs`` (batch 1, read from the file), ``float_ops``
(operators left in float), ``backend`` and ``note`` (the one-line reason of a failure, or why
int8 is not faster). Figures a failed row never reached are null.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from edgekit.profile.latency import LatencyStats

SCHEMA = "edgekit.benchmark/1"
CSV_COLUMNS = ("format", "precision", "status", "size_bytes", "accuracy", "agreement", "latency_p50_ms",
               "latency_p90_ms", "fps", "macs", "float_ops", "backend", "path", "note")


@dataclass
class BenchmarkRow:
    format: str
    precision: str
    status: str = "ok"  # "ok" or "failed"
    path: str | None = None
    size_bytes: int | None = None
    accuracy: float | None = None
    agreement: float | None = None
    latency: LatencyStats | None = None
    macs: int | None = None
    float_ops: int | None = None
    backend: str | None = None
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.format}/{self.precision}"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def fps(self) -> float | None:
        return None if self.latency is None or self.latency.p50 <= 0 else 1000.0 / self.latency.p50

    def fail(self, reason: str) -> None:
        self.status, self.note, self.latency = "failed", reason, None

    def to_dict(self) -> dict:
        s = self.latency
        latency = None if s is None else {"p50": round(s.p50, 6), "p90": round(s.p90, 6), "mean": round(s.mean, 6),
                                          "min": round(s.min, 6), "cv": round(s.cv, 4), "runs": s.runs}
        return {"format": self.format, "precision": self.precision, "status": self.status, "path": self.path,
                "size_bytes": self.size_bytes, "accuracy": self.accuracy, "agreement": self.agreement,
                "latency_ms": latency, "fps": None if self.fps is None else round(self.fps, 2),
                "macs": self.macs, "float_ops": self.float_ops, "backend": self.backend, "note": self.note}


@dataclass
class BenchmarkReport:
    model: str
    data: str
    rows: list[BenchmarkRow]
    threads: int
    timing: str
    validation: str = ""
    keras_accuracy: float | None = None
    environment: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    target: dict = field(default_factory=dict)  # {"file", "measuring"}
    target_mismatch: str | None = None

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "model": self.model, "data": self.data, "validation": self.validation,
                "threads": self.threads, "timing": self.timing, "environment": self.environment,
                "keras": {"accuracy": self.keras_accuracy}, "rows": [r.to_dict() for r in self.rows],
                "notes": self.notes, "target": {k: self.target.get(k) for k in ("file", "measuring")},
                "target_mismatch": self.target_mismatch}

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in self.rows:
            d = row.to_dict()
            latency = d["latency_ms"] or {}
            d.update(latency_p50_ms=latency.get("p50"), latency_p90_ms=latency.get("p90"))
            writer.writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS])
        return out.getvalue()
