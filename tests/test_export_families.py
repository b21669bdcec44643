"""Every family of the zoo exports (issue 13, item 1): each registered architecture, built by
``create_model``, goes to every row of the export table (``edgekit.export.TARGETS``), loads in
``edgekit.runtime.Model`` and passes the export's own validation against Keras.

By default one tiny case per family runs (32x32 or the family's minimum input, small alpha or
width and depth, 10 classes); ``-m slow`` adds every registered variant at its smallest input
with its own widths, and MobileNet v1/v2 at the other usual alphas. The models are untrained
but their batch-norm statistics are computed on the shipped Fashion-MNIST sample
(``edgekit.train.precise_bn``; a data-dependent initialisation for the families without batch
norm) and their classifier scaled to a trained model's logit spread, so activations have
realistic ranges and the Keras model predicts more than one class; calibration and validation
use the same sample.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from export_helpers import SAMPLE, save_run

NUM_VALIDATION = 40
NUM_CALIBRATION = 8


class Case(NamedTuple):
    name: str  # registered model name
    size: int  # input height and width
    overrides: tuple = ()  # (family parameter, value) pairs for create_model
    budget: bool = False  # keep the default int8 accuracy budget (else max_accuracy_drop=None)

    @property
    def id(self) -> str:
        return "-".join([self.name, str(self.size)] + [f"{k}{v}" for k, v in self.overrides])


# One tiny case per family: the default suite; or why a family has none (its slow cases run
# under -m slow). EfficientNet keeps its Rescaling + Normalization input layers at any width
# and depth (the in-model constants that broke ONNX export).
TINY: dict[str, Case | str] = {
    "mobilenet_v1": Case("mobilenet_v1", 32, (("alpha", 0.25),)),
    "mobilenet_v2": Case("mobilenet_v2", 32, (("alpha", 0.35),)),
    "efficientnet": Case("efficientnet_b0", 32, (("width", 0.25), ("depth", 0.1))),
    "efficientnet_lite": Case("efficientnet_lite0", 32, (("width", 0.25), ("depth", 0.1))),
    "lenet5": Case("lenet5", 32, budget=True),  # the cheapest: the only one with the budget on
    "alexnet": "no width multiplier: 22M parameters at its smallest input (67x67), 18M in fc6 and fc7",
    "vgg16": "no width multiplier: 34M parameters at 32x32",
    "resnet50": "no width multiplier: 24M parameters at 32x32",
    "inception_v3": "no width multiplier: 22M parameters, at least 75x75",
}
MORE_ALPHAS = {"mobilenet_v1": (0.5, 0.75), "mobilenet_v2": (0.5, 0.75, 1.3)}


# Untrained deep networks whose TFLite int8 file (min/max calibration, TFLite's only method)
# answers no better than a constant class would, on x86 with TF 2.21, while the ONNX int8 file
# of the same model (percentile calibration) does: activations of a network that learned
# nothing differ little between images, and min/max ranges stretched by outliers leave too few
# int8 steps for that difference.
INT8_MISSES = {
    ("resnet50-32", "tflite/int8"): "TFLite min/max int8 of untrained ResNet-50: top-1 agreement 30% "
                                    "with Keras, its most frequent class 37.5% (ONNX percentile int8 passes)",
    ("inception_v3-75", "tflite/int8"): "TFLite min/max int8 of untrained Inception v3: top-1 agreement 37.5% "
                                        "with Keras, equal to its most frequent class (ONNX percentile int8 passes)",
}


def _registry_cases() -> list[Case]:
    """Every registered variant at its smallest input (>= 32), with its own parameters."""
    from edgekit.models.registry import get_spec, list_models

    return [Case(name, max(32, get_spec(name).min_size)) for name in list_models()]


def _cases() -> list:
    tiny = [c for c in TINY.values() if isinstance(c, Case)]
    extra = [Case(f, 32, (("alpha", a),)) for f, alphas in MORE_ALPHAS.items() for a in alphas]
    slow = [c for c in _registry_cases() + extra if c.id not in {t.id for t in tiny}]
    return ([pytest.param(c, id=c.id) for c in tiny]
            + [pytest.param(c, id=c.id, marks=pytest.mark.slow) for c in slow])


def _target_keys() -> list[str]:
    from edgekit.export import TARGETS

    return [t.key for t in TARGETS]


def test_every_family_has_a_tiny_case_or_says_why_not():
    from edgekit.models.registry import get_spec, list_models

    assert {get_spec(n).family for n in list_models()} == set(TINY)


class FamilyExport(NamedTuple):
    case: Case
    report: object  # ExportReport
    keras_top1: object  # np.ndarray: the Keras model's class per validation image
    input_shape: tuple


def _model(case: Case):
    """The case's model and preprocessing, with batch-norm statistics (or a data-dependent
    initialisation) from the sample and a tempered classifier."""
    import keras

    from edgekit.data import load_split, make_dataset
    from edgekit.models.registry import create_model, get_spec
    from edgekit.runtime import PreprocessSpec
    from edgekit.train.precise_bn import recompute_batchnorm

    spec = get_spec(case.name)
    keras.utils.set_random_seed(0)
    model = create_model(case.name, (case.size, case.size, spec.default_channels), 10, **dict(case.overrides))
    pre = PreprocessSpec(size=(case.size, case.size), channels=spec.default_channels,
                         mean=(spec.mean,), std=(spec.std,))
    batches = [x for x, _ in make_dataset(load_split(SAMPLE, "train"), pre, 32, training=False,
                                          shuffle=False).take(4).as_numpy_iterator()]
    if not recompute_batchnorm(model, batches):
        _data_dependent_init(model, batches[0])
    _temper_classifier(model, batches[0])
    return model, pre


def _data_dependent_init(model, x) -> None:
    """Give each weighted layer but the classifier, in order, zero mean and unit variance per
    output channel before its activation on ``x`` (the data-dependent initialisation of
    Salimans & Kingma 2016, arXiv:1602.07868, sec. 3): what batch norm's statistics do for the
    other families. Untrained VGG-16 otherwise maps every image to nearly the same features
    over 13 ReLU convolutions and gives them all the same class."""
    import keras
    import numpy as np

    for layer in [layer for layer in model.layers if layer.weights][:-1]:
        activation, layer.activation = layer.activation, keras.activations.linear
        try:
            z = np.asarray(keras.Model(model.inputs, layer.output)(x))
        finally:
            layer.activation = activation
        axes = tuple(range(z.ndim - 1))
        mean, std = z.mean(axes), np.maximum(z.std(axes), 1e-6)
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel / std, (bias - mean) / std])


def _temper_classifier(model, x, spread: float = 8.0) -> None:
    """Scale the classifier's weights so that no image of ``x`` has logits further apart than
    ``spread`` (top probability at most ~0.997 of 10 classes), as in a trained model: an
    untrained head on well-scaled features gives logits tens apart, and float32 rounding alone
    (TFLite's kernels against TensorFlow's) then exceeds the exporter's fp32 tolerance of 1e-4."""
    import keras
    import numpy as np

    head = next(layer for layer in reversed(model.layers) if layer.weights)  # Dense or MobileNet's 1x1 conv
    kernel, bias = head.get_weights()
    features = np.asarray(keras.Model(model.inputs, head.input)(x)).reshape(len(x), -1)
    logits = features @ kernel.reshape(features.shape[1], -1) + bias
    scale = spread / max(float(np.ptp(logits, axis=1).max()), 1e-6)
    head.set_weights([kernel * scale, bias * scale])


@pytest.fixture(scope="module", params=_cases())
def family_export(request, tmp_path_factory) -> FamilyExport:
    import numpy as np

    from edgekit.export import DEFAULT_MAX_DROP_PP, ExportOptions, Format, Precision, export_model
    from edgekit.export.datasets import load_validation

    case = request.param
    model, pre = _model(case)
    keras_top1 = np.asarray(model(load_validation(str(SAMPLE), pre, NUM_VALIDATION, 10).inputs)).argmax(-1)
    run = save_run(tmp_path_factory.mktemp("families") / case.name, model, pre, case.name)
    options = ExportOptions(formats=tuple(Format), precisions=tuple(Precision), num_calibration=NUM_CALIBRATION,
                            num_validation=NUM_VALIDATION,
                            max_accuracy_drop=DEFAULT_MAX_DROP_PP if case.budget else None)
    report = export_model(run, options, log=lambda line: None)
    return FamilyExport(case, report, keras_top1, tuple(model.inputs[0].shape[1:]))


@pytest.mark.parametrize("key", _target_keys())
def test_family_exports_loads_and_validates(family_export, key, request):
    import numpy as np

    from edgekit.runtime import Model, read_metadata

    case, report, keras_top1, (h, w, _) = family_export
    if (case.id, key) in INT8_MISSES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=INT8_MISSES[case.id, key]))
    (f,) = [f for f in report.files if f.target.key == key]
    assert f.error is None and f.path.is_file() and f.path.stat().st_size == f.size_bytes > 0
    assert read_metadata(f.path).architecture == case.name
    model = Model(f.path)
    assert len(model.inputs) == 1 and len(model.outputs) == 1, [i.name for i in model.inputs]
    assert list(model.inputs[0].shape[1:3]) == [h, w] and model.outputs[0].shape[-1] == 10
    v = f.validation
    assert v.samples == NUM_VALIDATION
    precision = f.target.precision.value
    if precision == "fp32":  # what the exporter enforces, restated
        assert v.agreement >= 0.999 and v.max_abs_diff <= 1e-4
    elif precision == "fp16":  # float16 weights: the same answers, outputs close on average
        assert v.agreement >= 0.9 and v.mean_abs_diff < 0.01, v
    else:  # int8 weights (and activations): top-1 follows Keras better than any constant answer would
        constant = np.bincount(keras_top1).max() / len(keras_top1)
        assert v.agreement > constant, (v.agreement, constant)


def test_onnx_graphs_take_only_the_image(family_export):
    """tf2onnx made in-model constants (EfficientNet's Normalization) into graph inputs."""
    import onnx

    from edgekit.export.onnx_convert import INPUT_NAME

    for f in family_export.report.files:
        if f.target.key.startswith("onnx/"):
            assert [i.name for i in onnx.load(str(f.path)).graph.input] == [INPUT_NAME]


def test_budget_applies_where_left_on(family_export):
    for f in family_export.report.files:
        if f.target.precision.value == "int8":
            assert f.notes["budget"]["applied"] is family_export.case.budget
