"""Typed export options: formats, precisions, calibration and ONNX quantization choices.

Strings from the command line become these Enums at the boundary (``parse_choices``); the
converters only ever see the typed values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from edgekit.devices import ActivationType, DeviceTarget, OnnxQuantFormat, get_device
from edgekit.runtime.spec import PreprocessSpec

from .budget import DEFAULT_MAX_DROP_PP, DEFAULT_MIN_AGREEMENT
from .inputs import InputColor, IoType


class Format(str, Enum):
    TFLITE = "tflite"
    ONNX = "onnx"
    ORT = "ort"  # ONNX Runtime Mobile's ORT format, converted from the ONNX graph

    @property
    def from_onnx(self) -> bool:
        """Made from the export's ONNX graph, so ``--nchw`` and the ONNX int8 choices apply."""
        return self in (Format.ONNX, Format.ORT)


class Precision(str, Enum):
    FP32 = "fp32"  # float weights and activations
    FP16 = "fp16"  # float16 weights, float compute
    DYNAMIC = "dynamic"  # int8 weights, activations quantized on the fly
    INT8 = "int8"  # full-integer: int8 weights and activations, calibrated


def target_key(fmt: Format, precision: Precision) -> str:
    """A (format, precision) row's name: the key of its notes in the report, e.g. ``tflite/int8``."""
    return f"{fmt.value}/{precision.value}"


TFLITE_INT8 = target_key(Format.TFLITE, Precision.INT8)
ONNX_INT8 = target_key(Format.ONNX, Precision.INT8)
ORT_INT8 = target_key(Format.ORT, Precision.INT8)


class Int8Head(str, Enum):
    """The int8 strategy's head: where the classifier (fully connected + softmax) runs. Layers
    kept float beyond it are chosen by the accuracy budget (budget.py), not here."""

    FLOAT = "float"  # float activations, int8 weights (TFLite hybrid ops; ONNX float nodes)
    INT8 = "int8"  # fully in int8, like every other layer


class CalibrationMethod(str, Enum):
    """How activation ranges are chosen (ONNX Runtime's CalibrationMethod; TFLite always uses min/max)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


E = TypeVar("E", bound=Enum)


def parse_choice(value: str | E, enum: type[E], option: str) -> E:
    """One Enum member from its value; ValueError naming the option, the value and the choices."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise ValueError(f"{option} got {value!r}; expected one of {choices}") from None


def parse_choices(text: str | list | tuple, enum: type[E], option: str) -> tuple[E, ...]:
    """A comma-separated list (or a sequence) of Enum values, de-duplicated in order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    parsed = [parse_choice(item, enum, option) for item in items if str(getattr(item, "value", item)).strip()]
    if not parsed:
        raise ValueError(f"{option} got {text!r}; expected at least one of {', '.join(m.value for m in enum)}")
    return tuple(dict.fromkeys(parsed))


def _number_or_none(value, option: str, low: float, high: float, expected: str) -> float | None:
    """``value`` as a finite number in [low, high], None for none; ValueError naming ``option``."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{option} got {value!r}; expected {expected} or none")
    return number


def parse_budget(value) -> float | None:
    """``--max-accuracy-drop``: a number of percentage points >= 0, or none (no budget)."""
    return _number_or_none(value, "--max-accuracy-drop", 0.0, math.inf, "percentage points >= 0 (e.g. 0.5)")


def parse_min_agreement(value) -> float | None:
    """``--min-agreement``: a percentage in [0, 100] of top-1 answers equal to Keras, or none."""
    return _number_or_none(value, "--min-agreement", 0.0, 100.0, "a percentage from 0 to 100 (e.g. 98.5)")


@dataclass(frozen=True)
class ExportOptions:
    """Everything ``export_model`` needs besides the model; defaults match the CLI's."""

    formats: tuple[Format, ...] = (Format.TFLITE,)
    precisions: tuple[Precision, ...] = (Precision.FP32,)
    out_dir: Path | None = None  # default: the run folder, or the .keras file's folder
    # Any source load_split accepts, or a Python caller's own edgekit.data.CalibrationData (an
    # iterable of preprocessed float32 batches); default: the run's data.
    calibration: object = None
    num_calibration: int | None = None  # default: min(300, images available)
    # None: percentile when the calibration activations fit in memory, else minmax (see
    # onnx_convert.choose_calibration_method).
    calibration_method: CalibrationMethod | None = None
    float_io: bool = False  # TFLite int8: keep float32 input/output tensors (the same as io=FLOAT)
    io: IoType = IoType.AUTO  # TFLite int8 input/output types; AUTO: uint8 pixels in
    input_color: InputColor = InputColor.RGB  # a grayscale model gets an RGB input
    embedding: bool = False  # export the pooled features instead of the classifier
    int8_head: Int8Head = Int8Head.FLOAT  # int8: where the classifier runs (Int8Head)
    nchw: bool = False  # ONNX and ORT: NCHW input (a transpose in front of the NHWC graph)
    # The device the files are for (edgekit.devices): its ONNX int8 flavour, and recorded in the
    # files' metadata. A name is looked up at construction; "host": this machine's row.
    target: DeviceTarget | str = "host"
    onnx_quant_format: OnnxQuantFormat | None = None  # None: the target's
    onnx_activation_type: ActivationType | None = None  # None: the target's
    num_validation: int = 1000
    force: bool = False
    report: bool = False  # per-layer int8 sensitivity CSV (TFLite)
    # int8 files: percentage points of accuracy (top-1 agreement without labels) they may lose
    # against Keras before the most sensitive layers are kept float; None: no budget.
    max_accuracy_drop: float | None = DEFAULT_MAX_DROP_PP
    # ... and the percent of top-1 answers that must equal Keras's; None: accuracy only.
    min_agreement: float | None = DEFAULT_MIN_AGREEMENT
    preprocess: PreprocessSpec | None = None  # for a bare .keras file

    def __post_init__(self) -> None:
        for name in ("num_calibration", "num_validation"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} got {value!r}; expected an integer >= 1")
        object.__setattr__(self, "target", get_device(self.target))
        object.__setattr__(self, "io", parse_choice(self.io, IoType, "--io"))
        object.__setattr__(self, "input_color", parse_choice(self.input_color, InputColor, "--input-color"))
        if self.float_io and self.io not in (IoType.AUTO, IoType.FLOAT):
            raise ValueError(f"--float-io and --io {self.io.value} contradict each other; use --io float")
        object.__setattr__(self, "int8_head", parse_choice(self.int8_head, Int8Head, "--int8-head"))
        object.__setattr__(self, "max_accuracy_drop", parse_budget(self.max_accuracy_drop))
        object.__setattr__(self, "min_agreement", parse_min_agreement(self.min_agreement))

    @property
    def int8_io(self) -> IoType:
        """The I/O types of a TFLite int8 file, AUTO resolved (uint8 pixels)."""
        if self.float_io or self.io is IoType.FLOAT:
            return IoType.FLOAT
        return IoType.UINT8 if self.io is IoType.AUTO else self.io
