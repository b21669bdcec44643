"""The latency model file: kernel-level regressors per (format, precision), fitted on one device.

JSON schema ``edgekit.latency/1``:

- ``device``: {``target`` (the measuring machine's target as :func:`edgekit.devices.resolve_host`
  names it there), ``cpu_model``, ``machine``, ``cores``, ``remote`` (USER@HOST or null)};
- ``threads``, ``formats``, ``precisions``, ``runtime_versions`` {backend: version},
  ``edgekit_version``, ``features`` (which extractor the fit used: ``config``), ``created``;
- ``predictors``: {"FORMAT/PRECISION": {``coefficients``: {kernel type: {``macs`` (ms per MAC),
  ``bytes`` (ms per byte), ``count`` (ms per kernel)}}, ``constant_ms``, ``channel_tiles``
  ({MAC family: tile}: its MACs are counted with the channels rounded up to the tile, see
  :mod:`.kernels`; absent in files written before it: no rounding), ``channel_aligns``
  ({MAC family: alignment}: its kernels with channels not a multiple of it are types of their
  own, ``TYPE_unaligned``; absent in older files: none), ``fit_rmspe`` (percent),
  ``within_10pct`` (share of the samples), ``reference`` ({``config``, ``baseline_ms``, ``min_ms``,
  ``max_ms``}: the model timed beside every sample, see :mod:`.measure`; null in files written
  before it), ``samples``: [{``config``, ``arch``, ``overrides``, ``input_size``, ``measured_ms``
  (normalized to the reference's baseline: what was fitted), ``fitted_ms``, ``raw_ms``,
  ``reference_ms``}], ``excluded``: [config keys]}}.

Predicting needs numpy only (and Keras for :meth:`LatencyModel.predict_config`, which builds the
configuration's layers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.devices import HOST, get_device, resolve_host
from edgekit.tempfiles import atomic_write_text

from .kernels import CHANNEL_ALIGNS, CHANNEL_TILES, ELEMENT_BYTES, MAC_FAMILIES, FeatureTable, Kernel, family

SCHEMA = "edgekit.latency/1"
FEATURES = ("macs", "bytes", "count")
FORMATS = ("tflite", "onnx")
PRECISIONS = tuple(ELEMENT_BYTES)
MAX_PASSES = 3  # coordinate-descent passes of the channel-tile search
MIN_GAIN = 0.01  # a tile or alignment must lower the cross-validated RMSPE by 1% of it to be taken


def predictor_key(fmt: str, precision: str) -> str:
    return f"{fmt}/{precision}"


@dataclass
class Prediction:
    latency_ms: float
    per_type_ms: dict[str, float]
    constant_ms: float
    substituted: dict[str, str] = field(default_factory=dict)  # kernel type never fitted -> type used

    def to_dict(self) -> dict:
        return {"latency_ms": round(self.latency_ms, 4), "constant_ms": round(self.constant_ms, 4),
                "per_kernel_type_ms": {t: round(v, 4) for t, v in self.per_type_ms.items()},
                **({"substituted": self.substituted} if self.substituted else {})}


@dataclass
class Predictor:
    """One (format, precision): latency = sum over types of coef . (MACs, bytes, count) + constant."""

    coefficients: dict[str, dict[str, float]]
    constant_ms: float
    fit_rmspe: float | None = None
    within_10pct: float | None = None
    samples: list[dict] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    channel_tiles: dict[str, int] = field(default_factory=dict)
    reference: dict | None = None
    channel_aligns: dict[str, int] = field(default_factory=dict)

    def features(self, kernels: list[Kernel]) -> FeatureTable:
        """``kernels`` summed per type as this predictor was fitted (its channel tiles and alignments)."""
        return FeatureTable.of(kernels, self.channel_tiles, self.channel_aligns)

    def _coef(self, kernel_type: str) -> tuple[dict[str, float], str | None]:
        if kernel_type in self.coefficients:
            return self.coefficients[kernel_type], None
        fam = family(kernel_type)
        same = [t for t in self.coefficients if family(t) == fam]
        if not same:
            raise ValueError(f"the latency model has no coefficients for {kernel_type} kernels "
                             f"(fitted: {', '.join(self.coefficients)}); refit with configurations that have them")
        size = kernel_type[len(fam):]
        same.sort(key=lambda t: (t[len(fam):].split("_")[0] != size.split("_")[0], t))
        return self.coefficients[same[0]], same[0]

    def predict(self, features: FeatureTable) -> Prediction:
        per_type, substituted = {}, {}
        for kernel_type, f in features.items():
            coef, used = self._coef(kernel_type)
            if used is not None:
                substituted[kernel_type] = used
            per_type[kernel_type] = coef["macs"] * f.macs + coef["bytes"] * f.bytes + coef["count"] * f.count
        return Prediction(sum(per_type.values()) + self.constant_ms, per_type, self.constant_ms, substituted)

    def to_dict(self) -> dict:
        return {"coefficients": self.coefficients, "constant_ms": self.constant_ms,
                "channel_tiles": self.channel_tiles, "channel_aligns": self.channel_aligns,
                "reference": self.reference, "fit_rmspe": self.fit_rmspe,
                "within_10pct": self.within_10pct, "samples": self.samples, "excluded": self.excluded}

    @classmethod
    def from_dict(cls, doc: dict) -> "Predictor":
        coefficients = {str(t): {k: float(c[k]) for k in FEATURES} for t, c in doc["coefficients"].items()}
        if any(v < 0 or not math.isfinite(v) for c in coefficients.values() for v in c.values()):
            raise ValueError("coefficients must be finite and non-negative")
        tiles = _per_family(doc, "channel_tiles")
        aligns = _per_family(doc, "channel_aligns")
        reference = doc.get("reference")
        if reference is not None and not (isinstance(reference, dict) and float(reference["baseline_ms"]) > 0):
            raise ValueError(f"reference got {reference!r}; expected null or a record with baseline_ms > 0")
        return cls(coefficients, float(doc["constant_ms"]), doc.get("fit_rmspe"), doc.get("within_10pct"),
                   list(doc.get("samples", [])), list(doc.get("excluded", [])), tiles, reference, aligns)


def _per_family(doc: dict, key: str) -> dict[str, int]:
    """``doc[key]`` as {MAC family: int >= 1} ({} when absent); ValueError otherwise."""
    values = {str(f): int(t) for f, t in dict(doc.get(key) or {}).items()}
    if any(f not in MAC_FAMILIES or t < 1 for f, t in values.items()):
        raise ValueError(f"{key} got {values}; expected {{family: integer >= 1}} for {', '.join(MAC_FAMILIES)}")
    return values


def design_row(features: FeatureTable, types: list[str]) -> list[float]:
    row = []
    for t in types:
        f = features.get(t)
        row += [0.0, 0.0, 0.0] if f is None else [float(f.macs), float(f.bytes), float(f.count)]
    return row + [1.0]


def fit_predictor(tables: list[FeatureTable], measured_ms: list[float], ridge: float = 1e-6) -> Predictor:
    """NNLS on whole-model latencies (see :mod:`.nnls`); the kernel types are those the sample has."""
    from .nnls import fit_relative

    types = sorted({t for table in tables for t in table})
    x = np.array([design_row(table, types) for table in tables])
    coef = fit_relative(x, np.asarray(measured_ms, dtype=np.float64), ridge=ridge)
    coefficients = {t: dict(zip(FEATURES, (float(v) for v in coef[3 * i: 3 * i + 3]))) for i, t in enumerate(types)}
    return Predictor(coefficients, float(coef[-1]))


def fit_kernels(kernel_lists: list[list[Kernel]], measured_ms: list[float], folds: int = 5,
                tiles: tuple[int, ...] = CHANNEL_TILES, aligns: tuple[int, ...] = CHANNEL_ALIGNS) -> Predictor:
    """:func:`fit_predictor` with each MAC family's channel tile and alignment (see
    :mod:`.kernels`) chosen by ``folds``-fold cross-validation: coordinate descent over the
    families (largest MAC share first), each taking the (tile, alignment) whose held-out
    predictions have the lowest RMSPE given the others, when that is lower than its current
    choice's by more than ``MIN_GAIN`` of it (no split or rounding without a gain), repeated until no
    family changes (at most ``MAX_PASSES`` passes). Under 2 * ``folds`` samples there is too
    little to validate on: no rounding, no split."""
    chosen = dict.fromkeys(_mac_families(kernel_lists), (1, 1))
    options = [(t, a) for t in tiles for a in aligns]
    if len(kernel_lists) >= 2 * folds:
        for _ in range(MAX_PASSES):
            before = dict(chosen)
            for fam in chosen:
                scores = {o: _cv_rmspe(kernel_lists, measured_ms, *_split({**chosen, fam: o}), folds) for o in options}
                best = min(scores, key=lambda o: (scores[o], o))
                if scores[best] < (1 - MIN_GAIN) * scores[chosen[fam]]:
                    chosen[fam] = best
            if chosen == before:
                break
    tile_of, align_of = _split(chosen)
    predictor = fit_predictor([FeatureTable.of(k, tile_of, align_of) for k in kernel_lists], measured_ms)
    predictor.channel_tiles, predictor.channel_aligns = tile_of, align_of
    return predictor


def _split(chosen: dict[str, tuple[int, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """{family: (tile, alignment)} -> ({family: tile > 1}, {family: alignment > 1})."""
    return ({f: t for f, (t, _) in chosen.items() if t > 1}, {f: a for f, (_, a) in chosen.items() if a > 1})


def _mac_families(kernel_lists: list[list[Kernel]]) -> list[str]:
    """The MAC families of the sample, largest share of the MACs first."""
    shares: dict[str, int] = {}
    for kernels in kernel_lists:
        for k in kernels:
            if family(k.type) in MAC_FAMILIES:
                shares[family(k.type)] = shares.get(family(k.type), 0) + k.macs
    return sorted(shares, key=shares.get, reverse=True)


def _cv_rmspe(kernel_lists: list[list[Kernel]], measured_ms: list[float], tiles: dict[str, int],
              aligns: dict[str, int], folds: int) -> float:
    tables = [FeatureTable.of(k, tiles, aligns) for k in kernel_lists]
    order = np.random.default_rng(0).permutation(len(tables))
    predicted = np.full(len(tables), np.nan)
    for f in range(folds):
        test = set(order[f::folds].tolist())
        fit = [i for i in range(len(tables)) if i not in test]
        predictor = fit_predictor([tables[i] for i in fit], [measured_ms[i] for i in fit])
        for i in test:
            try:
                predicted[i] = predictor.predict(tables[i]).latency_ms
            except ValueError:  # a kernel family only the held-out fold has: not scored (the
                pass  # same samples for every tile and alignment, which keep families as they are)
    scored = np.isfinite(predicted)
    if not scored.any():
        return float("inf")
    return rmspe(predicted[scored], np.asarray(measured_ms, dtype=np.float64)[scored])


def rmspe(predicted, measured) -> float:
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    return float(100 * np.sqrt(np.mean(((p - m) / m) ** 2))) if len(m) else float("nan")


def within(predicted, measured, tolerance: float = 0.10) -> float:
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    return float(np.mean(np.abs(p - m) <= tolerance * m)) if len(m) else float("nan")


@dataclass
class LatencyModel:
    device: dict
    threads: int
    predictors: dict[str, Predictor]
    runtime_versions: dict = field(default_factory=dict)
    edgekit_version: str = ""
    created: str = ""
    features: str = "config"
    path: str | None = None

    @property
    def keys(self) -> list[str]:
        return list(self.predictors)

    @property
    def formats(self) -> list[str]:
        return sorted({k.split("/")[0] for k in self.predictors})

    @property
    def precisions(self) -> list[str]:
        return sorted({k.split("/")[1] for k in self.predictors})

    # ------------------------------------------------------------------ checks
    def _label(self) -> str:
        return repr(self.path) if self.path else "the latency model"

    def check(self, target: str = HOST, fmt: str = "tflite", precision: str = "int8") -> None:
        """ValueError (one line) unless this model was fitted on ``target`` for (fmt, precision)."""
        fitted_on = self.device.get("target")
        name = str(target).strip().lower()
        if name != fitted_on:
            name = resolve_host().name if name == HOST else get_device(name).name
        if name != fitted_on:
            cpu = self.device.get("cpu_model") or "unknown CPU"
            here = " (this machine)" if str(target).strip().lower() == HOST else ""
            raise ValueError(f"{self._label()} was fitted on {fitted_on} ({cpu}), not on {name}{here}; pass "
                             f"--target {fitted_on} to predict for that device, or fit one for {name} with "
                             f"'edgekit latency fit'")
        self.predictor(fmt, precision)

    def predictor(self, fmt: str, precision: str) -> Predictor:
        key = predictor_key(fmt, precision)
        if key not in self.predictors:
            raise ValueError(f"{self._label()} was fitted for {', '.join(self.predictors)}, not {key}; fit one with "
                             f"'edgekit latency fit --format {fmt} --precision {precision}'")
        return self.predictors[key]

    # ------------------------------------------------------------- prediction
    def explain_config(self, arch: str, overrides: dict | None, input_size: int, fmt: str = "tflite",
                       precision: str = "int8") -> Prediction:
        from .from_config import config_kernels

        predictor = self.predictor(fmt, precision)
        return predictor.predict(predictor.features(config_kernels(arch, overrides, input_size, precision)))

    def predict_config(self, arch: str, overrides: dict | None, input_size: int, fmt: str = "tflite",
                       precision: str = "int8") -> float:
        """Predicted median latency in ms of ``create_model(arch, input_shape=(n, n, 3), **overrides)``
        exported as ``fmt`` at ``precision`` (ValueError for a pair this model was not fitted for)."""
        return self.explain_config(arch, overrides, input_size, fmt, precision).latency_ms

    def explain_file(self, path: str | Path, precision: str | None = None) -> Prediction:
        from edgekit.runtime.files import model_format

        from .from_file import file_kernels

        path = Path(path)
        fmt = model_format(path)
        if not path.is_file():
            raise ValueError(f"model file {str(path)!r} does not exist")
        precision = precision or file_precision(path)
        predictor = self.predictor(fmt, precision)
        return predictor.predict(predictor.features(file_kernels(path)))

    def predict_file(self, path: str | Path, precision: str | None = None) -> float:
        """Predicted median latency in ms of a .tflite/.onnx file (precision: from its metadata,
        else from its weights)."""
        return self.explain_file(path, precision).latency_ms

    # ------------------------------------------------------------------- file
    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "device": self.device, "threads": self.threads, "formats": self.formats,
                "precisions": self.precisions, "runtime_versions": self.runtime_versions,
                "edgekit_version": self.edgekit_version, "created": self.created, "features": self.features,
                "predictors": {k: p.to_dict() for k, p in self.predictors.items()}}

    @classmethod
    def from_dict(cls, doc: dict, path: str | None = None) -> "LatencyModel":
        label = repr(path) if path else "the document"
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"{label} is not an edgekit latency model (schema {found!r}; expected {SCHEMA})")
        try:
            predictors = {}
            for key, p in doc["predictors"].items():
                fmt, _, precision = key.partition("/")
                if fmt not in FORMATS or precision not in PRECISIONS:
                    raise ValueError(f"unknown predictor {key!r}")
                predictors[key] = Predictor.from_dict(p)
            if not predictors or not isinstance(doc["device"].get("target"), str):
                raise ValueError("no predictors or no device target")
            return cls(dict(doc["device"]), int(doc["threads"]), predictors, dict(doc.get("runtime_versions", {})),
                       str(doc.get("edgekit_version", "")), str(doc.get("created", "")),
                       str(doc.get("features", "config")), path)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{label} is not a valid latency model: {' '.join(str(exc).split()) or type(exc).__name__}") \
                from None

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")
        self.path = str(path)


def load_latency_model(path: str | Path) -> LatencyModel:
    """Read a latency model file; ValueError (one line) when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"latency model {str(path)!r} does not exist (make one with 'edgekit latency fit --out FILE')")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"latency model {str(path)!r} is not readable JSON: {' '.join(str(exc).split())}") from None
    return LatencyModel.from_dict(doc, str(path))


def file_precision(path: Path) -> str:
    """'int8' or 'fp32': from the file's edgekit metadata, else from its MAC kernels' weights."""
    from edgekit.runtime.errors import RuntimeModelError
    from edgekit.runtime.metadata import read_metadata

    try:
        meta = read_metadata(path)
    except RuntimeModelError:
        meta = None
    if meta is not None and meta.precision in PRECISIONS:
        return meta.precision
    from edgekit.profile.static import read_static

    static = read_static(path, path.suffix.lower().lstrip("."))
    return "int8" if (static.int8_mac_share() or 0) > 0.5 else "fp32"
