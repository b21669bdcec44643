"""``--epochs auto``: the epoch count chosen from the number of images, the plan of a run
(early stopping, no validation data), and parsing of ``--epochs``; ``--batch-size auto``."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from edgekit.train import AUTO, TrainConfig, auto_batch_size, auto_epochs, parse_batch_size, parse_epochs, plan_epochs
from edgekit.train.epochs import (BATCH_SIZES, MAX_EPOCHS, MIN_EPOCHS, TARGET_STEPS, BestWeights, auto_patience,
                                  strip_length)


@pytest.mark.parametrize("images, batch, epochs", [
    (54_000, 128, 30),  # Fashion-MNIST with the 10% hold-out: 30 epochs
    (60_000, 128, 27),
    (20_000, 128, 81),  # 157 steps an epoch, uncapped
    (20_000, 64, 41),  # half the batch, twice the steps: half the epochs
    (3_600, 128, MAX_EPOCHS),  # issue 14's digits: 218 wanted, capped
    (64, 16, MAX_EPOCHS),
    (1_200_000, 128, MIN_EPOCHS),  # ImageNet-sized: 1 wanted, raised
])
def test_auto_epochs_gives_about_the_recipes_steps(images, batch, epochs):
    chosen, why = auto_epochs(images, batch)
    assert chosen == epochs
    assert f"{images} images at batch {batch}" in why
    steps = -(-images // batch) * chosen
    if MIN_EPOCHS < chosen < MAX_EPOCHS:
        assert TARGET_STEPS <= steps < TARGET_STEPS + -(-images // batch)
    assert ("capped" in why) == (chosen == MAX_EPOCHS and steps < TARGET_STEPS)
    assert ("raised" in why) == (chosen == MIN_EPOCHS and steps > TARGET_STEPS + -(-images // batch))


@pytest.mark.parametrize("images, batch", [(0, 128), (10, 0)])
def test_auto_epochs_refuses_nothing_to_train(images, batch):
    with pytest.raises(ValueError, match=f"got {images} images at batch size {batch}"):
        auto_epochs(images, batch)


@pytest.mark.parametrize("text, value", [("auto", AUTO), (" AUTO ", AUTO), ("12", 12), (7, 7), ("1", 1)])
def test_parse_epochs(text, value):
    assert parse_epochs(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "many", "", 0, True, 2.0])
def test_parse_epochs_names_the_bad_value(text):
    with pytest.raises(ValueError, match=f"--epochs got {text!r}; expected auto or an integer >= 1"):
        parse_epochs(text)


def test_train_config_epochs_is_auto_or_a_count():
    assert TrainConfig("lenet5", "d", "o").epochs == AUTO
    for bad in (0, "12", 3.0, None):
        with pytest.raises(ValueError, match=f"--epochs got {bad!r}"):
            TrainConfig("lenet5", "d", "o", epochs=bad)


def test_plan_auto_with_validation_stops_early():
    plan = plan_epochs(AUTO, 0, 3_600, 128, has_val=True)
    assert plan.epochs == MAX_EPOCHS and plan.patience == auto_patience(MAX_EPOCHS) == 20
    assert plan.watch_from == 50  # the second half: the cosine schedule's learning rate is down
    assert "early stopping on the smoothed val_loss from epoch 51 with patience 20" in plan.reason
    assert plan.to_dict()["monitor"] == "val_loss"
    assert plan_epochs(AUTO, 4, 3_600, 128, has_val=True).patience == 4  # --early-stopping wins


def test_plan_auto_without_validation_says_what_it_does_instead():
    plan = plan_epochs(AUTO, 0, 3_600, 128, has_val=False)
    assert plan.epochs == MAX_EPOCHS and plan.patience is None
    assert "no validation images" in plan.reason and "no early stopping" in plan.reason
    assert "\n" not in plan.reason


def test_plan_explicit_epochs_are_obeyed():
    plan = plan_epochs(7, 0, 3_600, 128, has_val=True)
    assert (plan.epochs, plan.patience) == (7, None) and plan.to_dict()["monitor"] is None
    assert plan_epochs(7, 2, 3_600, 128, has_val=True).patience == 2
    assert plan_epochs(7, 2, 3_600, 128, has_val=True).watch_from == 0  # as asked: from the start
    assert plan_epochs(7, 2, 3_600, 128, has_val=False).patience is None


def _stop_epoch(losses, patience, tmp_path, split=None):
    """The epoch (from 1) at which BestWeights stops on raw ``losses`` (None: never), run in
    one go or, with ``split``, through state() as a resumed run would."""
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callbacks = [BestWeights(tmp_path, patience)]
    callbacks[0].set_model(model)
    for epoch, loss in enumerate(losses):
        if epoch == split:
            callbacks.append(BestWeights(tmp_path, patience, callbacks[-1].state()))
            callbacks[-1].set_model(model)
        callbacks[-1].on_epoch_end(epoch, {"val_loss": loss})
        if getattr(model, "stop_training", False):
            return epoch + 1
    return None


def test_early_stopping_waits_while_the_loss_comes_down(tmp_path, monkeypatch):
    """Patience runs out at epoch 8, with the loss falling again (0.6 against 0.9 five epochs
    before): the run goes on until the loss is above its value a strip (5 epochs) before."""
    monkeypatch.setattr("edgekit.train.epochs.SMOOTHING", 0.0)  # the raw losses, to read the test
    losses = [1.0, 0.5, 0.9, 0.9, 0.9, 0.8, 0.7, 0.6, 0.65, 0.7, 0.8, 0.9, 0.95]
    assert strip_length(6) == 5
    assert _stop_epoch(losses, 6, tmp_path) == 12  # 0.9 > 0.7 of epoch 7
    assert _stop_epoch(losses, 6, tmp_path, split=9) == 12  # resumed from the state after epoch 9
    rising = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    assert _stop_epoch(rising, 6, tmp_path) == 8  # a rising loss stops when patience runs out
    assert _stop_epoch([1.0, 0.5, 0.9, 0.8, 0.7, 0.6, 0.55, 0.52, 0.51], 6, tmp_path) is None


def test_early_stopping_with_short_patience_is_patience_alone(tmp_path, monkeypatch):
    """With patience <= 5 the strip reaches back to the best epoch, so the stop comes when the
    patience runs out, as it did before the strip rule."""
    monkeypatch.setattr("edgekit.train.epochs.SMOOTHING", 0.0)
    assert [strip_length(p) for p in (1, 3, 5, 20)] == [1, 3, 5, 5]
    assert _stop_epoch([1.0, 0.5, 0.9, 0.8, 0.7, 0.6], 3, tmp_path) == 5


def test_auto_patience():
    assert [auto_patience(e) for e in (10, 15, 40, 100)] == [5, 5, 8, 20]


@pytest.mark.parametrize("images, batch", [
    (54_000, 128),  # Fashion-MNIST with the 10% hold-out: the recipe as tuned
    (16_128, 128),  # 126 steps an epoch: 100 epochs reach the target exactly
    (16_000, 64),
    (10_800, 64),  # the quick start's 12,000 images
    (5_000, 32),
    (2_700, 16),  # the small sets of issue 14: reach the target at batch 16
    (1_130, 16),  # sklearn's digits: as many steps as the cap allows
    (1, 16),
])
def test_auto_batch_size_reaches_the_recipes_steps_when_it_can(images, batch):
    chosen, why = auto_batch_size(images)
    assert chosen == batch and f"{images} images" in why
    reaches = -(-images // batch) * MAX_EPOCHS >= TARGET_STEPS
    assert reaches or batch == BATCH_SIZES[-1]
    larger = [b for b in BATCH_SIZES if b > batch]
    assert all(-(-images // b) * MAX_EPOCHS < TARGET_STEPS for b in larger)  # the largest that reaches it


@pytest.mark.parametrize("text, value", [("auto", AUTO), ("32", 32), (64, 64)])
def test_parse_batch_size(text, value):
    assert parse_batch_size(text) == value


@pytest.mark.parametrize("text", ["0", "big", 2.5, True])
def test_parse_batch_size_names_the_bad_value(text):
    with pytest.raises(ValueError, match=f"--batch-size got {text!r}; expected auto or an integer >= 1"):
        parse_batch_size(text)


def test_train_config_batch_size_is_auto_by_default():
    assert TrainConfig("lenet5", "d", "o").batch_size == AUTO
    assert TrainConfig("lenet5", "d", "o", batch_size="auto").to_dict()["batch_size"] == "auto"
    with pytest.raises(ValueError, match="--batch-size got 0"):
        TrainConfig("lenet5", "d", "o", batch_size=0)


def test_a_run_resolves_and_records_auto_batch_size(sample_npz, tmp_path):
    """The run trains at the resolved size, records what was asked and why; a resume under auto
    goes on at the checkpoint's size (a run started before auto was the default: 128), one with
    another number given is refused with the size to pass."""
    from edgekit.train import train
    from edgekit.train.run import _batch_size

    meta = train(TrainConfig("lenet5", sample_npz, str(tmp_path / "run"), epochs=1, limit=64, augment="none",
                             tensorboard=False))
    assert meta["batch_size"]["requested"] == "auto" and meta["batch_size"]["batch_size"] == 16
    assert meta["config"]["batch_size"] == 16 and "the smallest automatic batch, 16" in meta["batch_size"]["reason"]
    cfg = TrainConfig("lenet5", sample_npz, str(tmp_path / "x"))
    resumed, record = _batch_size(cfg, 57, {"config": {"batch_size": 128}})
    assert resumed.batch_size == 128 and record == {"requested": "auto", "batch_size": 128,
                                                    "reason": "the resumed checkpoint's batch size (128)"}
    assert _batch_size(cfg, 57, {"config": {"batch_size": 32}})[0].batch_size == 32
    given = replace(cfg, batch_size=32)
    with pytest.raises(ValueError, match="checkpoint trained at batch size 16, not 32; resume with --batch-size 16 or auto"):
        _batch_size(given, 57, {"config": {"batch_size": 16}})
    assert _batch_size(given, 57, {"config": {"batch_size": 32}})[0].batch_size == 32


def test_mcnemar_needs_a_significant_net_difference_on_the_same_images():
    """McNemar's test (continuity-corrected, 5%): only the images the two disagree on count."""
    from edgekit.train.epochs import mcnemar

    def pair(b, c, both=90):  # b images only the best got right, c only the current
        best = np.array([True] * both + [True] * b + [False] * c)
        return best, np.array([True] * both + [False] * b + [True] * c)

    assert mcnemar(*pair(3, 0)) == (False, 3, 0)  # 3 of 300 images, as on MNIST-5k: noise
    assert mcnemar(*pair(6, 0)) == (True, 6, 0)  # (6 - 1)^2 / 6 = 4.17 > 3.84
    assert mcnemar(*pair(20, 10))[0] is False  # (10 - 1)^2 / 30 = 2.7
    assert mcnemar(*pair(30, 10))[0] is True  # 19^2 / 40 = 9.0
    assert mcnemar(*pair(0, 9))[0] is False  # the current epoch is the better one
    with pytest.raises(ValueError, match=r"got \(3,\) and \(4,\) results"):
        mcnemar(np.ones(3, bool), np.ones(4, bool))


def _kept(losses, correct, patience, tmp_path, split=None, rule="significant"):
    """(stop epoch or None, kept epoch, differ, restore) of BestWeights on raw ``losses`` and
    per-image results ``correct`` (one array per epoch), in one go or resumed through state() at
    ``split``."""
    stop, best = _watch(losses, correct, patience, tmp_path, split, rule)
    return stop, best.kept_epoch, best.differ, best.state()["restore"]


def _watch(losses, correct, patience, tmp_path, split=None, rule="significant"):
    """(stop epoch or None, the BestWeights at the end) on ``losses`` and ``correct``."""
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    now = {}
    make = lambda saved=None: BestWeights(tmp_path, patience, saved, 0, rule, lambda: now["correct"])  # noqa: E731
    callbacks = [make()]
    callbacks[0].set_model(model)
    stop = None
    for epoch, (loss, right) in enumerate(zip(losses, correct)):
        if epoch == split:
            callbacks.append(make(json.loads(json.dumps(callbacks[-1].state()))))  # as state.json keeps it
            callbacks[-1].set_model(model)
        now["correct"] = np.asarray(right, bool)
        callbacks[-1].on_epoch_end(epoch, {"val_loss": loss})
        if getattr(model, "stop_training", False):
            stop = epoch + 1
            break
    return stop, callbacks[-1]


# Epoch 2 has the lowest loss; the loss then rises. On 100 validation images, epoch 2 gets the
# first 96 right; later epochs 95 (two of those wrong, another image right), or, when worse, 80.
RISING = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]
CLOSE = [np.arange(100) < 96] * 2 + [(np.arange(100) < 94) | (np.arange(100) == 99)] * 6
WORSE = [np.arange(100) < 96] * 2 + [np.arange(100) < 80] * 6


def test_early_stopping_keeps_the_last_weights_unless_the_best_are_significantly_better(tmp_path, monkeypatch):
    monkeypatch.setattr("edgekit.train.epochs.SMOOTHING", 0.0)
    assert _kept(RISING, CLOSE, 3, tmp_path) == (None, 8, [2, 1], False)  # 2 vs 1 images: not significant
    assert _kept(RISING, CLOSE, 3, tmp_path, split=5) == (None, 8, [2, 1], False)  # the same when resumed
    assert _kept(RISING, WORSE, 3, tmp_path) == (5, 2, [16, 0], True)  # stops when patience runs out
    assert _kept(RISING, WORSE, 3, tmp_path, split=3) == (5, 2, [16, 0], True)
    # --restore best: the loss alone, as classic early stopping.
    assert _kept(RISING, CLOSE, 3, tmp_path, rule="best") == (5, 2, None, True)


def test_kept_weights_says_which_epoch_and_why(tmp_path, monkeypatch):
    from edgekit.stopping import kept_weights, stopping_record

    monkeypatch.setattr("edgekit.train.epochs.SMOOTHING", 0.0)
    state = _watch(RISING, CLOSE, 3, tmp_path)[1].state()
    assert kept_weights(state) == ("kept the weights of the last epoch, 8: epoch 2's (lowest smoothed validation loss "
                                   "0.5000) are not significantly better (McNemar's test); of the validation images "
                                   "the two disagree on, epoch 2's got 2 right, epoch 8's 1")
    assert kept_weights(stopping_record(state)) == kept_weights(state)  # edgekit.json's record says the same
    assert "best_correct" in state and "best_correct" not in stopping_record(state)
    state = _watch(RISING, WORSE, 3, tmp_path)[1].state()
    assert kept_weights(state) == ("restored the weights of epoch 2 (lowest smoothed validation loss 0.5000); of the "
                                   "validation images the two disagree on, epoch 2's got 16 right, epoch 5's 0")
    state = _watch([1.0, 0.9, 0.8], [np.ones(4, bool)] * 3, 3, tmp_path)[1].state()
    assert kept_weights(state) == "kept the weights of the last epoch, 3 (lowest smoothed validation loss 0.8000)"
    old = {"best": 0.25, "best_epoch": 4, "file": "best-004.weights.h5", "wait": 3}  # state.json before --restore
    assert kept_weights(old) == "restored the weights of epoch 4 (lowest smoothed validation loss 0.2500)"
    assert kept_weights(None) is None and kept_weights({"best_epoch": None}) is None


def test_restore_best_follows_the_recorded_decision(tmp_path):
    import keras

    from edgekit.train.epochs import restore_best

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    (tmp_path / "checkpoints").mkdir()
    model.save_weights(tmp_path / "checkpoints" / "best-002.weights.h5")
    saved = {"file": "best-002.weights.h5", "best_epoch": 2}
    assert restore_best(model, tmp_path, {**saved, "restore": False}) is None
    assert restore_best(model, tmp_path, {**saved, "restore": True}) == 2
    assert restore_best(model, tmp_path, saved) == 2  # a state.json from before the rule: as before
