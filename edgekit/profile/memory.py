"""Resident memory of the profiling process, before and after a model is loaded and run.

On Linux the peak comes from ``VmHWM`` in ``/proc/self/status`` (proc(5)); writing ``5`` to
``/proc/self/clear_refs`` resets it to the current resident size, so that each load is
measured on its own, not against everything the process touched before. Elsewhere (or when
the reset is refused) the peak is ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the peak
of the whole process (kilobytes on Linux, bytes on macOS), and says so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

_STATUS = "/proc/self/status"


def _status_bytes(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size (None where /proc is missing)."""
    return _status_bytes("VmRSS")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> tuple[int | None, str]:
    """(peak resident bytes, where the figure comes from)."""
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    try:
        import resource
    except ImportError:  # Windows
        return None, "unavailable"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024), "ru_maxrss"


@dataclass
class MemoryRecord:
    rss_before_load: int | None = None
    rss_after_load: int | None = None
    peak_after_load: int | None = None
    peak_after_runs: int | None = None
    peak_source: str = ""
    arena_bytes: int | None = None
    arena_note: str = ""

    def start(self) -> None:
        self.rss_before_load = rss_bytes()
        reset = reset_peak()
        _, source = peak_bytes()
        self.peak_source = f"{source} (reset before load)" if reset and source == "VmHWM" \
            else f"{source} (peak of the whole process)"

    def loaded(self) -> None:
        self.rss_after_load = rss_bytes()
        self.peak_after_load, _ = peak_bytes()

    def finished(self) -> None:
        self.peak_after_runs, _ = peak_bytes()

    def to_dict(self) -> dict:
        return {"rss_before_load_bytes": self.rss_before_load, "rss_after_load_bytes": self.rss_after_load,
                "peak_rss_after_load_bytes": self.peak_after_load, "peak_rss_bytes": self.peak_after_runs,
                "peak_source": self.peak_source, "arena_bytes": self.arena_bytes, "arena_note": self.arena_note}
