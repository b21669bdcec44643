"""The one place where edgekit builds inference engines: a LiteRT / tflite_runtime / tf.lite
``Interpreter`` for .tflite files, an onnxruntime ``InferenceSession`` for .onnx and .ort files.

Every engine is built from one typed :class:`EngineSettings`; the rest of edgekit (the runtime's
:class:`~edgekit.runtime.Model`, the profiler, the benchmark, the exporter's ORT conversion)
asks here instead of calling the engines' constructors itself. Imports no engine at import
time: each function imports the one it builds.

ONNX Runtime's options are its ``SessionOptions`` and session config entries
(https://onnxruntime.ai/docs/performance/tune-performance/threading.html). LiteRT's Python
interpreter takes only a thread count: its XNNPACK thread pool spins as it was built, which no
setting changes, so a .tflite file ignores ``spinning`` (a policy each engine follows as far as
it can) and refuses the other onnxruntime-only settings.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields, replace
from enum import Enum
from pathlib import Path

from edgekit.devices import qdq_int8_fused

from .errors import RuntimeModelError

CPU_PROVIDER = "CPUExecutionProvider"


class Spinning(Enum):
    """What onnxruntime's intra-op worker threads do while they wait for work.

    A parallel operator hands slices to the workers; between operators (MobileNetV2 has ~100)
    a worker that spins picks up the next slice at once, one that sleeps must be woken.
    """

    DEFAULT = "default"  # onnxruntime's default: spin during a run and on for a while after it returns
    DURING_RUN = "during-run"  # spin during a run, stop when it returns (session.force_spinning_stop=1)
    OFF = "off"  # never spin (session.intra_op.allow_spinning=0): sleeping workers are woken per operator

    def config_entries(self) -> dict[str, str]:
        """The onnxruntime session config entries that select this behaviour."""
        return {Spinning.DEFAULT: {},
                Spinning.DURING_RUN: {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
                Spinning.OFF: {"session.intra_op.allow_spinning": "0"}}[self]


class GraphOptimization(Enum):
    """onnxruntime's graph optimization level (``SessionOptions.graph_optimization_level``)."""

    ALL = "all"  # onnxruntime's default
    DISABLED = "disabled"  # run the graph as the file has it (node names and shapes as written)


@dataclass(frozen=True)
class EngineSettings:
    """How to build an engine. The defaults are each engine's own; a .tflite file takes
    ``threads``, ignores ``spinning`` (not configurable in LiteRT) and refuses the other fields,
    which are onnxruntime's.

    - ``threads``: intra-op threads (``num_threads`` / ``intra_op_num_threads``); None: the
      engine's default.
    - ``spinning``: see :class:`Spinning` (onnxruntime only; LiteRT's pool spins as built).
    - ``optimization``: the graph optimization level; ``disabled_optimizers``: onnxruntime
      optimizers to leave out by name.
    - ``profile_prefix``: turn on onnxruntime's profiler, writing to files named from this
      prefix (``session.end_profiling()`` returns the file).
    - ``save_optimized``: write the optimized graph to this path while the session is built;
      ``save_ort_format``: in ORT format rather than ONNX; ``qdq_int8_allowed``: let the
      optimizer keep int8 (not only uint8) activations in QDQ fusions (None: its build's
      default; :class:`~edgekit.runtime.Model` sets it from the file's target, see
      :func:`for_target`).
    - ``quiet``: log errors only (onnxruntime warns about unused initializers and the like).
    """

    threads: int | None = None
    spinning: Spinning = Spinning.DEFAULT
    optimization: GraphOptimization = GraphOptimization.ALL
    disabled_optimizers: tuple[str, ...] = ()
    profile_prefix: str | None = None
    save_optimized: str | None = None
    save_ort_format: bool = False
    qdq_int8_allowed: bool | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise RuntimeModelError(f"threads got {t!r}; expected None or a positive integer")
        for name, enum in (("spinning", Spinning), ("optimization", GraphOptimization)):
            if not isinstance(getattr(self, name), enum):
                raise RuntimeModelError(f"{name} got {getattr(self, name)!r}; expected one of "
                                        f"{', '.join(f'{enum.__name__}.{m.name}' for m in enum)}")
        if not isinstance(self.disabled_optimizers, tuple):
            raise RuntimeModelError(f"disabled_optimizers got {self.disabled_optimizers!r}; expected a tuple of names")
        if self.save_ort_format and self.save_optimized is None:
            raise RuntimeModelError("save_ort_format needs save_optimized (the path to write)")

    def onnx_only(self) -> list[str]:
        """The fields set away from their defaults that only onnxruntime understands (spinning
        aside: a policy that LiteRT, which cannot change it, ignores)."""
        return [f.name for f in fields(self)
                if f.name not in ("threads", "spinning") and getattr(self, f.name) != f.default]


# -- LiteRT / TFLite -------------------------------------------------------------------------

TFLITE_ENGINES = ("litert", "tflite_runtime", "tensorflow")


def tflite_interpreter_class(name: str):
    """The ``Interpreter`` class of TFLite engine ``name``, or None when it is not installed."""
    try:
        if name == "litert":
            from ai_edge_litert.interpreter import Interpreter
        elif name == "tflite_runtime":
            from tflite_runtime.interpreter import Interpreter
        elif name == "tensorflow":
            # Last resort, imported only here: heavy, and absent on most devices.
            Interpreter = importlib.import_module("tensorflow").lite.Interpreter
        else:
            raise RuntimeModelError(f"TFLite engine got {name!r}; expected one of {', '.join(TFLITE_ENGINES)}")
    except ImportError:
        return None
    return Interpreter


def tflite_interpreter(path: Path | str, settings: EngineSettings, interpreter_cls):
    """A TFLite interpreter of ``path`` (tensors not yet allocated)."""
    extra = settings.onnx_only()
    if extra:
        raise RuntimeModelError(f"settings {', '.join(extra)} apply to onnxruntime only; a .tflite file takes threads")
    return interpreter_cls(model_path=str(path), num_threads=settings.threads)


# -- onnxruntime ------------------------------------------------------------------------------

def onnxruntime_module():
    """onnxruntime, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def session_options(ort, settings: EngineSettings):
    """onnxruntime ``SessionOptions`` for ``settings``."""
    options = ort.SessionOptions()
    if settings.quiet:
        options.log_severity_level = 3
    if settings.threads is not None:
        options.intra_op_num_threads = settings.threads
    for key, value in settings.spinning.config_entries().items():
        options.add_session_config_entry(key, value)
    if settings.optimization is GraphOptimization.DISABLED:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    else:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if settings.profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = settings.profile_prefix
    if settings.save_optimized is not None:
        options.optimized_model_filepath = str(settings.save_optimized)
        if settings.save_ort_format:
            options.add_session_config_entry("session.save_model_format", "ORT")
    if settings.qdq_int8_allowed is not None:
        options.add_session_config_entry("session.qdqisint8allowed", "1" if settings.qdq_int8_allowed else "0")
    return options


def for_target(settings: EngineSettings, fmt: str, arch: str | None) -> EngineSettings:
    """``settings`` for a ``fmt`` file made for a target of machine ``arch`` (its metadata's
    ``target.arch``): onnxruntime fuses int8 QDQ groups as its build for that arch does
    (:func:`edgekit.devices.qdq_int8_fused`), so that a file exported for a Raspberry Pi computes
    on an x86 machine what the Pi computes. A choice made in ``settings``, a .tflite file and a
    file that records no target are left as they are."""
    if fmt == "tflite" or not arch or settings.qdq_int8_allowed is not None:
        return settings
    return replace(settings, qdq_int8_allowed=qdq_int8_fused(arch))


def onnx_session(path: Path | str, settings: EngineSettings = EngineSettings(), ort=None):
    """An onnxruntime CPU ``InferenceSession`` of ``path`` built as ``settings`` say.

    Raises ImportError when onnxruntime is not installed; onnxruntime's own errors pass through.
    """
    if ort is None:
        import onnxruntime as ort
    kwargs = {"disabled_optimizers": list(settings.disabled_optimizers)} if settings.disabled_optimizers else {}
    return ort.InferenceSession(str(path), sess_options=session_options(ort, settings), providers=[CPU_PROVIDER],
                                **kwargs)
