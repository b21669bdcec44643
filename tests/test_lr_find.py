"""``--lr auto``: the learning-rate range test's picking rule on synthetic curves, a tiny
end-to-end sweep that writes lr_find.png and the record, resume reusing the rate, bad input."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.train import Auto, FreezeSpec, TrainConfig, lr_find, parse_lr, train
from edgekit.train import runstate
from edgekit.train.lr_find import PickRule

from run_helpers import assert_same_weights, interrupt_after_first_epoch

RATES = lr_find.sweep_rates()
LOG_LR = np.log10(RATES)


def _sweep(raw) -> tuple[list[float], list[float]]:
    """What a sweep records for per-step losses ``raw``: smoothed, cut at divergence."""
    seen: list[float] = []
    smoothed: list[float] = []
    for loss in raw:
        seen.append(float(loss))
        smoothed = lr_find.smooth(seen)
        if lr_find.diverged(smoothed):
            break
    return list(RATES[:len(smoothed)]), smoothed


# Synthetic per-step losses over log10(lr) in -6..0: flat, then falling linearly in log-lr,
# then blowing up. The valley rule lands in the middle of the fall (where it is steepest and
# long before the minimum); min/10 one decade below the smoothed minimum.
def _fall(x, start, bottom, blow_up=20.0):
    return np.where(x < start, 2.3, np.where(x <= bottom, 2.3 - 1.8 * (x - start) / (bottom - start),
                                             0.5 + blow_up * (x - bottom) ** 2))


CURVES = {
    "fall 1e-4..1e-1": _fall(LOG_LR, -4, -1),
    "fall 1e-5..1e-3, hard divergence": _fall(LOG_LR, -5, -3, blow_up=200.0),
    "noisy fall 1e-4..1e-1": _fall(LOG_LR, -4, -1) + np.random.default_rng(0).normal(0, 0.05, len(LOG_LR)),
}
# (curve, rule) -> the range the picked rate must fall in. A wrong rule misses: the valley
# picks are one to two decades below the min/10 ones, and argmin itself is above both.
EXPECTED = {
    ("fall 1e-4..1e-1", PickRule.VALLEY): (1e-3, 6e-3),
    ("fall 1e-4..1e-1", PickRule.MIN_OVER_10): (1e-2, 3e-2),
    ("fall 1e-5..1e-3, hard divergence", PickRule.VALLEY): (5e-5, 3e-4),
    ("fall 1e-5..1e-3, hard divergence", PickRule.MIN_OVER_10): (1e-4, 5e-4),
    ("noisy fall 1e-4..1e-1", PickRule.VALLEY): (5e-4, 8e-3),
    ("noisy fall 1e-4..1e-1", PickRule.MIN_OVER_10): (8e-3, 3e-2),
}


@pytest.mark.parametrize("curve, rule", list(EXPECTED), ids=[f"{c}-{r.value}" for c, r in EXPECTED])
def test_pick_rule_on_synthetic_curves(curve, rule):
    rates, losses = _sweep(CURVES[curve])
    low, high = EXPECTED[curve, rule]
    picked = lr_find.pick(rates, losses, rule)
    assert low <= picked <= high, f"{rule.value} picked {picked:.3g}, expected {low:g}..{high:g}"
    assert picked < rates[int(np.argmin(losses))]  # never the rate at the minimum itself


def test_the_rule_is_min_over_10():
    """min/10 trained better than valley on the small Fashion-MNIST set (lr_find's docstring)."""
    assert lr_find.RULE is PickRule.MIN_OVER_10
    rates, losses = _sweep(CURVES["fall 1e-4..1e-1"])
    assert lr_find.pick(rates, losses) == pytest.approx(rates[int(np.argmin(losses))] / 10)


def test_valley_sits_in_the_steepest_fall():
    rates, losses = _sweep(CURVES["fall 1e-4..1e-1"])
    picked = lr_find.pick(rates, losses, PickRule.VALLEY)
    i = rates.index(picked)
    slope = np.diff(losses)
    # The loss still falls there, and faster than on average between the start and the minimum.
    assert slope[i] < np.mean(slope[:int(np.argmin(losses))])


def test_hard_divergence_stops_the_sweep_early():
    rates, losses = _sweep(CURVES["fall 1e-5..1e-3, hard divergence"])
    assert len(losses) < len(RATES) and losses[-1] > lr_find.DIVERGENCE * min(losses)


@pytest.mark.parametrize("raw", [np.full(100, 2.3), np.linspace(2.3, 9.0, 100), [2.3, 2.4, float("nan")]],
                         ids=["flat", "rising", "nan at once"])
def test_no_fall_no_pick_and_the_record_falls_back(raw):
    rates, losses = _sweep(raw)
    for rule in PickRule:
        assert lr_find.pick(rates, losses, rule) is None
    rec = lr_find.record(lr_find.Sweep(rates, losses, losses, "test"), 16, 3e-3)
    assert rec["fallback"] and rec["lr"] == 3e-3
    json.dumps(rec, allow_nan=False)  # NaN is written as null
    assert "never fell" in lr_find.describe(rec)


@pytest.mark.parametrize("text, expected", [("auto", Auto.AUTO), ("AUTO", Auto.AUTO), ("1e-3", 1e-3), ("0.5", 0.5)])
def test_parse_lr(text, expected):
    assert parse_lr(text) == expected


@pytest.mark.parametrize("text", ["fast", "0", "-1e-3", "nan", "inf", ""])
def test_parse_lr_refuses_garbage_naming_it(text):
    with pytest.raises(ValueError, match=f"--lr got {text!r}; expected a number > 0 or auto"):
        parse_lr(text)


def test_config_records_auto():
    cfg = TrainConfig(arch="lenet5", data="d", out="o", lr=Auto.AUTO)
    assert cfg.lr_auto and cfg.to_dict()["lr"] == "auto"


def _cfg(data, out, **kw):
    base = dict(arch="lenet5", data=data, out=str(out), epochs=2, batch_size=16, augment="crop",
                tensorboard=False, lr=Auto.AUTO)
    base.update(kw)
    return TrainConfig(**base)


def test_train_lr_auto_writes_plot_and_record_and_trains_as_with_that_rate(sample_npz, tmp_path):
    meta = train(_cfg(sample_npz, tmp_path / "auto"))
    run = tmp_path / "auto"
    rec = meta["lr_find"]
    assert (run / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "lr_find.json").read_text()) == rec
    assert json.loads((run / "edgekit.json").read_text())["lr_find"] == rec
    assert rec["rule"] == "min/10" and not rec["fallback"] and rec["batch_size"] == 16
    assert rec["lr"] == rec["candidates"]["min/10"] and rec["candidates"]["valley"] < rec["lr"]
    assert len(rec["rates"]) == len(rec["losses"]) == len(rec["raw_losses"]) > 20
    assert lr_find.START_LR <= rec["lr"] <= 1.0 and meta["config"]["lr"] == rec["lr"]
    # The per-step losses (recovered from Keras' running means) start near ln(10) for 10 classes.
    assert abs(rec["raw_losses"][0] - np.log(10)) < 0.5
    # The sweep changed nothing: the same run with the picked rate gives the same weights.
    train(_cfg(sample_npz, tmp_path / "fixed", lr=rec["lr"]))
    assert_same_weights(run, tmp_path / "fixed")


def test_lr_auto_sweeps_with_the_transfer_freezing(sample_npz, tmp_path, monkeypatch):
    train(_cfg(sample_npz, tmp_path / "base", epochs=1, lr=3e-3))
    trainable = []
    original = lr_find.run_sweep

    def spy(model, *args, **kwargs):
        trainable.append([w.path for w in model.trainable_weights])
        return original(model, *args, **kwargs)

    monkeypatch.setattr(lr_find, "run_sweep", spy)
    meta = train(_cfg(sample_npz, tmp_path / "ft", epochs=1, weights=str(tmp_path / "base"),
                      freeze=FreezeSpec.parse("all-but-head")))
    assert trainable == [["predictions/kernel", "predictions/bias"]]  # the sweep trains what training trains
    assert meta["config"]["lr"] == meta["lr_find"]["lr"] and meta["transfer"]["layers_loaded"] > 0
    base = keras.models.load_model(tmp_path / "base" / "model.keras", compile=False)
    tuned = keras.models.load_model(tmp_path / "ft" / "model.keras", compile=False)
    for layer in base.layers:
        if layer.weights and layer.name != "predictions":
            for a, b in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)


def test_resume_reuses_the_rate_picked_before(sample_npz, tmp_path, monkeypatch):
    train(_cfg(sample_npz, tmp_path / "full", epochs=2))
    interrupt_after_first_epoch(monkeypatch, lambda: train(_cfg(sample_npz, tmp_path / "cut", epochs=2)))
    picked = json.loads((tmp_path / "cut" / "lr_find.json").read_text())["lr"]

    def no_sweep(*args, **kwargs):
        raise AssertionError("a resumed run swept again")

    monkeypatch.setattr(lr_find, "run_sweep", no_sweep)
    meta = train(_cfg(sample_npz, tmp_path / "cut", epochs=2, resume=True))
    assert meta["lr_find"]["lr"] == picked and meta["config"]["lr"] == picked
    assert meta["epochs_run_this_invocation"] == 1
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


def test_resume_without_the_sweep_record_is_a_clear_error(sample_npz, tmp_path, monkeypatch):
    interrupt_after_first_epoch(monkeypatch, lambda: train(_cfg(sample_npz, tmp_path / "cut", epochs=2)))
    (tmp_path / "cut" / "lr_find.json").unlink()
    with pytest.raises(ValueError, match="cannot read the rate the run picked"):
        train(_cfg(sample_npz, tmp_path / "cut", epochs=2, resume=True))
    assert runstate.read_state(tmp_path / "cut")["epoch"] == 1


def test_too_few_images_for_a_sweep_is_refused_before_anything_is_written(sample_npz, tmp_path):
    # 270 training images; at batch 32 one sweep needs 320.
    with pytest.raises(ValueError, match=r"--lr auto needs at least 320 training images at --batch-size 32 .* got 270"):
        train(_cfg(sample_npz, tmp_path / "run", batch_size=32))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("lr, extra, message", [
    ("fast", [], "--lr got 'fast'; expected a number > 0 or auto"),
    # --limit 150: 135 training images; --batch-size auto picks 16, and one sweep needs 160
    ("auto", ["--limit", "150"], "--lr auto needs at least 160 training images at --batch-size 16"),
])
def test_cli_bad_lr_is_one_line_exit_2(sample_npz, tmp_path, lr, extra, message):
    result = CliRunner().invoke(main, ["train", "lenet5", "--data", sample_npz, "--out", str(tmp_path / "run"),
                                       "--lr", lr, "--epochs", "1", *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
