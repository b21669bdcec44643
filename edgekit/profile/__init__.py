"""edgekit's profiler: latency, memory and static cost of a .tflite/.onnx/.ort file on the device.

``profile_model(path, ProfileOptions(threads=(1, 2)))`` reads the file's size, parameters,
MACs and operator mix straight from the file (:mod:`static`), then times it at each thread
count (:mod:`latency`), records peak memory (:mod:`memory`) and the machine (:mod:`env`), and
optionally times each operator (:mod:`per_op`). ``profile_remote`` does the same on another
machine over SSH (:mod:`remote`).

For .tflite, .onnx and .ort files only numpy and the inference runtime are imported (LiteRT or
onnxruntime; ``onnx`` for shape inference when installed), so it runs on the device itself;
a .keras file or run folder is timed in TensorFlow.
"""

from .latency import LatencyStats, TimingPlan
from .remote import SshTarget, profile_remote
from .report import SCHEMA, ProfileOptions, ProfileReport, profile_model
from .static import OpStat, StaticReport, read_static

__all__ = ["LatencyStats", "OpStat", "ProfileOptions", "ProfileReport", "SCHEMA", "SshTarget", "StaticReport",
           "TimingPlan", "profile_model", "profile_remote", "read_static"]
