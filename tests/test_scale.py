"""edgekit scale (issue 16 item 3): scaling rules, enumeration, the choice under a budget, the
latency path with a fake latency model, the Pareto PNG and the CLI.

Tiny grids keep the default tests fast (a family with a grid of its own: alphas 0.35/0.5 at
32..64 px); one slow test exports and times real files.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from click.testing import CliRunner

from edgekit.cli import scale_cmd
from edgekit.cli.main import main
from edgekit.scale import (ALPHA, BETA, BYTES_PER_WEIGHT, FAMILIES, GAMMA, Budget, Metric, Rule, ScaleOptions,
                           UnreachableBudget, count_configs, multipliers, round_resolution, scale)
from edgekit.scale import search as search_module

TINY = {
    "mobilenet_v2": replace(FAMILIES["mobilenet_v2"], alphas=(0.35, 0.5), resolutions=(32, 48, 64), base_resolution=64),
    "mobilenet_v1": replace(FAMILIES["mobilenet_v1"], alphas=(0.25, 0.5), resolutions=(32, 64), base_resolution=64),
    "efficientnet": replace(FAMILIES["efficientnet"], phis=(-2.0, -1.5), base_resolution=48),
    "efficientnet_lite": replace(FAMILIES["efficientnet_lite"], phis=(-2.0, -1.5), base_resolution=48),
}


def test_compound_rule_values():
    width, depth, factor = multipliers(1.0, Rule.COMPOUND)
    assert (width, depth) == pytest.approx((1.1, 1.2))
    assert factor == pytest.approx(1.15)
    assert round_resolution(224 * factor) == 256  # 257.6 to a multiple of 8
    assert 1.9 <= ALPHA * BETA ** 2 * GAMMA ** 2 <= 2.1
    assert multipliers(0.0) == pytest.approx((1.0, 1.0, 1.0))


@pytest.mark.parametrize("rule", [Rule.WIDTH, Rule.RESOLUTION])
def test_one_knob_rules_spend_the_compound_macs_factor(rule):
    width, depth, factor = multipliers(2.0, rule)
    assert depth == 1.0
    assert (width if rule is Rule.WIDTH else factor) == pytest.approx(2.0)  # MACs x 2^phi = x4
    assert (factor if rule is Rule.WIDTH else width) == 1.0


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_enumerates_and_counts_without_building(name, monkeypatch):
    import edgekit.models

    family = FAMILIES[name]
    configs = family.configs(Rule.COMPOUND)
    assert len(configs) >= 20
    assert all(c.input_size % 8 == 0 and c.input_size >= 32 for c in configs)
    assert len({(c.arch, c.overrides, c.input_size) for c in configs}) == len(configs)
    monkeypatch.setattr(edgekit.models, "create_model", lambda *a, **k: pytest.fail("built a model to count it"))
    counted = count_configs(configs, "int8")
    assert all(c.macs > 0 and c.param_count > 0 for c in counted)
    assert counted[0].size_kb == pytest.approx(counted[0].param_count / 1024)
    assert len({(c.macs, c.param_count, c.input_size) for c in counted}) == len(counted)  # no network twice
    if family.compound:  # phi = 0 is the base variant: the published B0 / Lite0 counts
        base = next(c for c in counted if c.config.phi == 0.0)
        assert (base.macs, base.param_count) == {"efficientnet": (385814752, 5330571),
                                                 "efficientnet_lite": (385187552, 4694024)}[name]
    else:
        base = next(c for c in counted if c.overrides == {"alpha": 1.0} and c.input_size == 224)
        assert (base.macs, base.param_count) == {"mobilenet_v1": (568740352, 4253864),
                                                 "mobilenet_v2": (300774272, 3538984)}[name]


def test_efficientnet_phi_zero_is_b0_and_lite0():
    for name, arch in (("efficientnet", "efficientnet_b0"), ("efficientnet_lite", "efficientnet_lite0")):
        zero = [c for c in FAMILIES[name].configs(Rule.COMPOUND) if c.phi == 0.0]
        assert zero and zero[0].arch == arch
        assert dict(zero[0].overrides) == {"width": 1.0, "depth": 1.0, "resolution": 224} and zero[0].input_size == 224


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_width_and_resolution_rules_vary_only_their_knob(name):
    family = FAMILIES[name]
    width_only = family.configs(Rule.WIDTH)
    res_only = family.configs(Rule.RESOLUTION)
    assert {c.input_size for c in width_only} == {family.base_resolution}
    assert len({c.input_size for c in res_only}) == len(res_only) > 3
    width_knobs, res_knobs = [c.knobs for c in width_only], [c.knobs for c in res_only]
    if family.compound:
        assert {k["depth"] for k in width_knobs} == {1.0} == {k["depth"] for k in res_knobs}
        assert {k["width"] for k in res_knobs} == {1.0}
        assert len({k["width"] for k in width_knobs}) == len(width_only) > 3
    else:
        assert {k["alpha"] for k in res_knobs} == {1.0}
        assert {k["alpha"] for k in width_knobs} == set(family.alphas)


@pytest.mark.parametrize("arch, alpha, size, extra", [
    ("mobilenet_v2", 0.35, 96, {}), ("mobilenet_v2", 1.4, 104, {}), ("mobilenet_v2", 0.5, 33, {"expansion": 4}),
    ("mobilenet_v1", 0.25, 97, {}), ("mobilenet_v1", 1.0, 120, {}), ("mobilenet_v1", 0.5, 48, {"depth_multiplier": 2}),
])
def test_mobilenet_plan_counts_equal_full_builds(arch, alpha, size, extra):
    """MobileNet candidates are counted from the block tables: equal to count_model's figures."""
    from edgekit.models import count_model, create_model
    from edgekit.scale import Config

    c, = count_configs([Config.of(arch, {"alpha": alpha, **extra}, size)], "fp32", num_classes=10)
    full = count_model(create_model(arch, (size, size, 3), 10, alpha=alpha, **extra))
    assert (c.macs, c.param_count) == (full.macs, full.params)
    assert c.size_kb == pytest.approx(full.params * BYTES_PER_WEIGHT["fp32"] / 1024)


def test_an_architecture_without_a_plan_is_built_and_counted():
    from edgekit.models import count_model, create_model
    from edgekit.scale import Config

    c, = count_configs([Config.of("lenet5", {}, 40)], "int8", num_classes=10)
    full = count_model(create_model("lenet5", (40, 40, 3), 10))
    assert (c.macs, c.param_count) == (full.macs, full.params)


@pytest.mark.parametrize("name, phi, size, rule", [
    ("efficientnet", -2.0, 224, Rule.COMPOUND), ("efficientnet", 3.0, 224, Rule.COMPOUND),
    ("efficientnet", -1.0, 90, Rule.RESOLUTION), ("efficientnet_lite", -2.0, 224, Rule.COMPOUND),
    ("efficientnet_lite", 2.0, 40, Rule.WIDTH), ("efficientnet_lite", -1.0, 97, Rule.RESOLUTION),
])
def test_efficientnet_plan_counts_equal_full_builds(name, phi, size, rule):
    """EfficientNet candidates are counted from the stage plan: equal to count_model's figures."""
    from edgekit.models import count_model, create_model

    family = replace(FAMILIES[name], phis=(phi,), base_resolution=size)
    c, = count_configs(family.configs(rule), "int8", num_classes=10)
    knobs = {k: v for k, v in c.overrides.items() if k != "resolution"}
    full = count_model(create_model(c.arch, (c.input_size,) * 2 + (3,), 10, **knobs))
    assert (c.macs, c.param_count) == (full.macs, full.params)


@pytest.fixture(scope="module")
def counted_v2():
    return count_configs(TINY["mobilenet_v2"].configs(Rule.COMPOUND), "int8", num_classes=10)


@pytest.fixture
def tiny_v2(counted_v2, monkeypatch):
    """The tiny MobileNet v2 grid, counted once per module: scale() gets fresh copies of it."""
    monkeypatch.setattr(search_module, "count_configs",
                        lambda configs, precision, num_classes: [replace(c, notes=[]) for c in counted_v2])
    return counted_v2


def _options(budget, **kw):
    return ScaleOptions(TINY["mobilenet_v2"], budget, num_classes=10, **kw)


def test_macs_budget_picks_the_largest_under_it(tiny_v2):
    macs = sorted(c.macs for c in tiny_v2)
    limit = (macs[3] + macs[4]) / 2
    result = scale(_options(Budget(Metric.MACS, limit)), log=lambda line: None)
    chosen = result.chosen
    assert chosen.macs == macs[3] <= limit
    excluded = [c for c in result.candidates if not c.under_budget]
    assert min(c.macs for c in excluded) == macs[4] > limit
    assert all(c.macs <= limit for c in result.candidates if c.under_budget)
    assert chosen.measured_ms is None and chosen.predicted_ms is None
    assert f"--alpha {chosen.overrides['alpha']:g} --input-size {chosen.input_size}" in chosen.train_command()


@pytest.mark.parametrize("metric", [Metric.PARAMS, Metric.SIZE_KB])
def test_params_and_size_budgets(tiny_v2, metric):
    budget = Budget(metric, max(Budget(metric, 1).value(c) for c in tiny_v2) - 1)
    result = scale(_options(budget), log=lambda line: None)
    assert result.chosen.overrides["alpha"] == 0.35
    assert result.chosen.input_size == 64  # the most MACs among the smaller alpha's


def test_unreachable_budget_names_the_smallest_reachable(tiny_v2):
    smallest = min(tiny_v2, key=lambda c: c.macs)
    with pytest.raises(UnreachableBudget) as info:
        scale(_options(Budget(Metric.MACS, 1000)), log=lambda line: None)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("no mobilenet_v2 configuration fits --max-macs 1000: the smallest reachable is")
    assert "alpha 0.35 at 32x32" in message and f"{smallest.macs / 1e6:.3g}M MACs" in message


class FakeLatencyModel:
    """The edgekit.latency.LatencyModel methods scale calls: ms proportional to MACs."""

    def __init__(self, ms_per_mmac: float = 1.0, fitted_for: str | None = None, macs: dict | None = None):
        self.ms_per_mmac, self.fitted_for, self.checked, self.calls = ms_per_mmac, fitted_for, [], []
        self.macs = macs or {}  # (arch, overrides, size) -> MACs known already

    def check(self, target: str, fmt: str, precision: str) -> None:
        self.checked.append((target, fmt, precision))
        if self.fitted_for is not None and precision != self.fitted_for:
            raise ValueError(f"latency model fitted for {self.fitted_for}; got --precision {precision}")

    def predict_config(self, arch, overrides, input_size, fmt="tflite", precision="int8") -> float:
        from edgekit.models import count_model, create_model

        self.calls.append((arch, dict(overrides), input_size, fmt, precision))
        key = (arch, tuple(sorted(overrides.items())), input_size)
        if key in self.macs:
            return self.macs[key] / 1e6 * self.ms_per_mmac
        knobs = {k: v for k, v in overrides.items() if k != "resolution"}
        model = create_model(arch, (input_size, input_size, 3), 10, **knobs)
        return count_model(model).macs / 1e6 * self.ms_per_mmac


def _fake_model(candidates) -> FakeLatencyModel:
    """A latency model that predicts 1 ms per million MACs of each candidate."""
    return FakeLatencyModel(macs={(c.arch, tuple(sorted(c.overrides.items())), c.input_size): c.macs
                                  for c in candidates})


def _measuring(factor: float, batches: list):
    """A stand-in for the search's ``measure``: every file takes ``factor`` x its prediction;
    the size of each batch measured is appended to ``batches``."""
    def measure(batch, folder, settings, log):
        batches.append(len(batch))
        for c in batch:
            c.measured_ms = c.predicted_ms * factor
    return measure


def test_latency_budget_predicts_then_measures_the_best_few(tiny_v2, monkeypatch, tmp_path):
    fake = _fake_model(tiny_v2)
    monkeypatch.setattr(search_module, "load_latency_model", lambda path: fake)
    measured = []

    def fake_measure(batch, folder, settings, log):
        measured.append(list(batch))
        for i, c in enumerate(batch):  # the largest measures over budget, the next ones within
            c.measured_ms = c.predicted_ms * (1.5 if i == 0 else 0.9)

    monkeypatch.setattr(search_module, "measure", fake_measure)
    limit = sorted(c.macs for c in tiny_v2)[-2] / 1e6 + 0.01  # all but the largest fit by prediction
    result = scale(_options(Budget(Metric.LATENCY_MS, limit), latency_model="fake.json", measure=2,
                            plot=tmp_path / "p.png"), log=lambda line: None)
    assert fake.checked and fake.checked[0][1:] == ("tflite", "int8")
    assert len(fake.calls) == len(tiny_v2)
    ranked = sorted((c for c in result.candidates if c.under_budget), key=lambda c: -c.macs)
    assert [[id(c) for c in batch] for batch in measured] == [[id(c) for c in ranked[:2]]]
    assert result.chosen is ranked[1]  # the largest measured over budget: the next one is chosen
    assert result.chosen.measured_ms <= limit
    doc = result.to_dict()
    assert doc["chosen"]["measured_ms"] == pytest.approx(result.chosen.measured_ms, abs=1e-4)
    assert doc["chosen"]["predicted_ms"] is not None and doc["measured"] == 2
    assert sum(c["measured_ms"] is not None for c in doc["candidates"]) == 2
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_model_for_another_precision_is_refused(tiny_v2, monkeypatch):
    monkeypatch.setattr(search_module, "load_latency_model", lambda path: FakeLatencyModel(fitted_for="fp32"))
    with pytest.raises(ValueError, match="fitted for fp32"):
        scale(_options(Budget(Metric.LATENCY_MS, 5), latency_model="x"), log=lambda line: None)


@pytest.mark.parametrize("kw, match", [
    ({"budget": Budget(Metric.LATENCY_MS, 5)}, "needs --latency-model"),
    ({"latency_model": "x"}, "applies to --max-latency-ms only"),
    ({"precision": "int4"}, "--precision got 'int4'"),
    ({"family": "resnet"}, "expected one of mobilenet_v1, mobilenet_v2, efficientnet, efficientnet_lite"),
    ({"proxy": object()}, "needs --data"),
])
def test_bad_options(kw, match):
    args = {"family": "mobilenet_v2", "budget": Budget(Metric.MACS, 1e8), **kw}
    with pytest.raises(ValueError, match=match):
        ScaleOptions(**args)


@pytest.fixture
def tiny_cli(monkeypatch):
    from edgekit.scale import rules

    for name, family in TINY.items():
        monkeypatch.setitem(rules.FAMILIES, name, family)


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_json_is_one_document(tiny_cli, tmp_path):
    result = _invoke("scale", "mobilenet_v2", "--max-macs", 5e6, "--classes", 10, "--plot", tmp_path / "s.png",
                     "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "edgekit.scale/1" and doc["rule"] == "compound"
    assert doc["budget"] == {"metric": "macs", "limit": 5e6, "option": "--max-macs"}
    chosen = doc["chosen"]
    assert set(chosen) >= {"arch", "overrides", "input_size", "predicted_ms", "measured_ms", "macs", "param_count",
                           "train_command"}
    assert chosen["macs"] <= 5e6 and chosen["train_command"].startswith("edgekit train mobilenet_v2 --alpha ")
    assert all("under_budget" in c for c in doc["candidates"])
    assert (tmp_path / "s.png").stat().st_size > 0


def test_cli_efficientnet_train_command_has_width_and_depth(tiny_cli):
    result = _invoke("scale", "efficientnet_lite", "--max-params", 1e9, "--rule", "width", "--json")
    assert result.exit_code == 0, result.output
    cmd = json.loads(result.stdout)["chosen"]["train_command"]
    assert cmd.startswith("edgekit train efficientnet_lite0 --width ") and " --depth 1 --input-size 48 " in cmd


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_base_resolution_anchors_every_rule_there(name):
    family = FAMILIES[name].at_resolution(64)
    assert family.base_resolution == 64 and FAMILIES[name].at_resolution(224) is FAMILIES[name]
    assert {c.input_size for c in family.configs(Rule.WIDTH)} == {64}
    sizes = {c.input_size for c in family.configs(Rule.RESOLUTION)}
    assert min(sizes) >= 32 and all(s % 8 == 0 for s in sizes) and 64 in sizes
    if family.compound:  # phi 0 is the base network at 64 px; phi +1 is 1.15x the resolution
        by_phi = {c.phi: c.input_size for c in family.configs(Rule.COMPOUND)}
        assert by_phi[0.0] == 64 and by_phi[1.0] == round_resolution(64 * GAMMA) == 72
    else:  # 96..224 scaled by 64/224: 27..64 px, at least 32
        assert family.resolutions == (32, 40, 48, 56, 64)


@pytest.mark.parametrize("base", [31, 0, True])
def test_a_base_resolution_under_the_zoo_minimum_is_refused(base):
    with pytest.raises(ValueError, match=f"--base-resolution got {base!r}; expected an integer >= 32"):
        FAMILIES["efficientnet_lite"].at_resolution(base)


def test_cli_base_resolution_scales_small_images(tiny_cli):
    result = _invoke("scale", "efficientnet_lite", "--max-params", 1e9, "--rule", "resolution",
                     "--base-resolution", 32, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["base_resolution"] == 32 and doc["chosen"]["input_size"] == round_resolution(32 * 2 ** (-1.5 / 2))


@pytest.mark.parametrize("args, message", [
    (["mobilenet_v2", "--max-macs", "1e8", "--base-resolution", "16"], "--base-resolution"),
    (["mobilenet_v2"], "give exactly one budget of --max-latency-ms, --max-macs, --max-params, --max-size-kb"),
    (["mobilenet_v2", "--max-macs", "1e8", "--max-params", "1e6"], "give exactly one budget"),
    (["resnet50", "--max-macs", "1e8"], "expected one of mobilenet_v1, mobilenet_v2, efficientnet, efficientnet_lite"),
    (["mobilenet_v2", "--max-latency-ms", "5"], "--max-latency-ms needs --latency-model"),
    (["mobilenet_v2", "--max-macs", "1000"], "the smallest reachable is"),
    (["mobilenet_v2", "--max-macs", "-5"], "--max-macs got -5.0; expected a number > 0"),
    (["mobilenet_v2", "--max-macs", "1e8", "--proxy-epochs", "1"], "--proxy-epochs needs --data"),
    (["mobilenet_v2", "--max-macs", "1e8", "--target", "pi9"], "unknown target"),
])
def test_cli_bad_input_is_one_line_exit_2(tiny_cli, args, message):
    result = _invoke("scale", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_cli_choices_equal_the_library():
    from edgekit.export import Precision

    assert scale_cmd.FAMILY_NAMES == tuple(FAMILIES)
    assert scale_cmd.RULES == tuple(r.value for r in Rule)
    assert set(scale_cmd.PRECISIONS) == set(BYTES_PER_WEIGHT) == {p.value for p in Precision}
    assert {m for _, m in scale_cmd.BUDGETS} == {m.value for m in Metric}


@pytest.mark.slow
def test_latency_budget_steps_up_when_the_model_is_pessimistic(tiny_v2, monkeypatch):
    """Every file measures at half its prediction: the best finalist is far under the budget, so
    larger configurations predicted over it are measured, and the largest that fits is chosen."""
    fake = _fake_model(tiny_v2)
    monkeypatch.setattr(search_module, "load_latency_model", lambda path: fake)
    batches = []
    monkeypatch.setattr(search_module, "measure", _measuring(0.5, batches))
    macs = sorted(c.macs for c in tiny_v2)
    limit = macs[1] / 1e6 + 0.01  # the two smallest fit by prediction
    larger = [m for m in macs if m / 1e6 * 0.5 <= limit and m / 1e6 > limit]
    assert larger, "the tiny grid needs a configuration that fits only once measured"
    result = scale(_options(Budget(Metric.LATENCY_MS, limit), latency_model="fake.json", measure=2),
                   log=lambda line: None)
    chosen = result.chosen
    assert chosen.macs == max(larger) and chosen.predicted_ms > limit >= chosen.measured_ms
    assert chosen.under_budget and any("pessimistic" in note for note in chosen.notes)
    assert len(batches) >= 2  # the finalists under the prediction, then the larger ones
    assert result.to_dict()["chosen"]["measured_ms"] <= limit


def test_latency_budget_measures_real_files(tmp_path):
    """Two tiny MobileNet v2 files exported to int8 TFLite and timed; the chosen one is measured."""
    family = replace(TINY["mobilenet_v2"], alphas=(0.35,), resolutions=(32, 64))
    fake = FakeLatencyModel(ms_per_mmac=1e-3)
    options = ScaleOptions(family, Budget(Metric.LATENCY_MS, 1e3), latency_model=fake, measure=2, num_classes=10,
                           out=tmp_path, timing=search_module.TimingPlan(warmup=2, runs=20))
    result = scale(options, log=lambda line: None)
    assert result.chosen.input_size == 64
    assert all(c.measured_ms is not None and c.measured_ms > 0 for c in result.candidates)
    assert len(list(tmp_path.glob("*.tflite"))) == 2 and (tmp_path / "scale.png").is_file()
    assert math.isfinite(result.chosen.measured_ms)


@pytest.mark.slow
def test_proxy_training_ranks_finalists_by_validation_accuracy(sample_npz, tmp_path):
    """EfficientNet-Lite finalists trained one epoch on the sample (--width/--depth reach the builder)."""
    from edgekit.scale import ProxyRecipe

    family = replace(TINY["efficientnet_lite"], base_resolution=32)
    options = ScaleOptions(family, Budget(Metric.MACS, 1e9), rule=Rule.WIDTH, num_classes=10, data=sample_npz,
                           proxy=ProxyRecipe(1, limit=64, batch_size=32), out=tmp_path)
    result = scale(options, log=lambda line: None)
    finalists = [c for c in result.candidates if c.val_accuracy is not None]
    assert len(finalists) == 2 and result.chosen in finalists
    assert result.chosen.val_accuracy == max(c.val_accuracy for c in finalists)
    info = json.loads(next(tmp_path.glob("proxy_*/edgekit.json")).read_text())
    assert info["config"]["width"] in {c.overrides["width"] for c in finalists}


def test_predictions_too_optimistic_after_every_round(tiny_v2, monkeypatch):
    fake = _fake_model(tiny_v2)
    rounds = []
    monkeypatch.setattr(search_module, "measure", _measuring(100, rounds))
    limit = sorted(c.macs for c in tiny_v2)[-2] / 1e6 + 0.01  # 5 of the 6 fit by prediction
    with pytest.raises(UnreachableBudget, match="^none of the 5 mobilenet_v2 configurations measured met "
                                                "--max-latency-ms .* the latency model is optimistic"):
        scale(_options(Budget(Metric.LATENCY_MS, limit), latency_model=fake, measure=2), log=lambda line: None)
    assert rounds == [2, 2, 1]  # rounds of --measure 2 down the ranking, until none is left


def test_cli_latency_budget_loads_the_model_lazily(tiny_cli, tiny_v2, monkeypatch, tmp_path):
    fake = _fake_model(tiny_v2)
    paths = []
    monkeypatch.setattr(search_module, "load_latency_model", lambda path: paths.append(path) or fake)

    def fake_measure(batch, folder, settings, log):
        assert (settings.threads, settings.precision, settings.fmt) == (2, "fp32", "tflite")
        for c in batch:
            c.measured_ms = c.predicted_ms

    monkeypatch.setattr(search_module, "measure", fake_measure)
    model_file = tmp_path / "lat.json"
    model_file.write_text("{}")
    result = _invoke("scale", "mobilenet_v2", "--max-latency-ms", 6, "--latency-model", model_file,
                     "--precision", "fp32", "--threads", 2, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert paths == [str(model_file)] and doc["chosen"]["measured_ms"] <= 6
    assert doc["chosen"]["predicted_ms"] == pytest.approx(doc["chosen"]["macs"] / 1e6, abs=1e-3)
    assert doc["measured"] == 3


def test_cli_latency_model_without_the_latency_package(tiny_cli, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "edgekit.latency", None)  # importing it raises ImportError
    model_file = tmp_path / "lat.json"
    model_file.write_text("{}")
    result = _invoke("scale", "mobilenet_v2", "--max-latency-ms", 6, "--latency-model", model_file)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "edgekit: error: --latency-model needs edgekit.latency (edgekit latency fit), which this install lacks"]


def test_another_target_is_chosen_by_prediction_unless_measure_is_asked(tiny_v2, monkeypatch):
    fake = _fake_model(tiny_v2)
    monkeypatch.setattr(search_module, "measure", lambda *a: pytest.fail("measured for another target"))
    from edgekit.devices import resolve_host

    other = "raspberry-pi-4" if resolve_host().name != "raspberry-pi-4" else "x86-avx2"
    limit = sorted(c.macs for c in tiny_v2)[-2] / 1e6 + 0.01
    result = scale(_options(Budget(Metric.LATENCY_MS, limit), latency_model=fake, target=other), log=lambda line: None)
    assert fake.checked[0] == (other, "tflite", "int8")
    assert result.chosen.macs == sorted(c.macs for c in tiny_v2)[-2] and result.chosen.measured_ms is None
    assert "finalists not measured" in result.to_dict()["notes"][0]
