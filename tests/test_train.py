"""Training: run directory, resume equals an uninterrupted run, freezing, transfer learning,
evaluation with TTA and ensembles, and the mirrored / multi-worker strategies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from edgekit.data import load_split
from edgekit.train import FreezeSpec, TrainConfig, train
from edgekit.train import runstate
from edgekit.evaluation import evaluate

from conftest import REPO
from run_helpers import assert_same_weights, interrupt_after_epoch, interrupt_after_first_epoch


def _cfg(data, out, **kw):
    base = dict(arch="lenet5", data=data, out=str(out), epochs=2, batch_size=32, augment="flip,crop",
                tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def test_run_directory_contract(sample_npz, tmp_path):
    meta = train(_cfg(sample_npz, tmp_path / "run"))
    run = tmp_path / "run"
    for name in ("model.keras", "edgekit.json", "history.csv", "curve.png"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0
    assert not (run / "checkpoints").exists()
    saved = json.loads((run / "edgekit.json").read_text())
    assert saved["architecture"] == "lenet5" and saved["input_shape"] == [32, 32, 1]
    assert saved["class_names"][0] == "T-shirt/top" and len(saved["class_names"]) == 10
    assert saved["preprocess"]["size"] == [32, 32] and len(saved["data"]["fingerprint"]) == 16
    assert len(saved["history"]["loss"]) == 2 and meta["data"]["images"] == 270


def test_resume_equals_uninterrupted(sample_npz, tmp_path, monkeypatch):
    train(_cfg(sample_npz, tmp_path / "full", epochs=3))
    interrupt_after_first_epoch(monkeypatch, lambda: train(_cfg(sample_npz, tmp_path / "cut", epochs=3)))
    assert runstate.read_state(tmp_path / "cut")["epoch"] == 1
    with pytest.raises(ValueError, match="already holds a run"):
        train(_cfg(sample_npz, tmp_path / "cut", epochs=3))
    # A checkpoint from before --epochs auto (no planned_epochs): resumed with its fixed count.
    state_file = tmp_path / "cut" / runstate.CHECKPOINTS / runstate.STATE
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({k: v for k, v in state.items() if k != "planned_epochs"}))
    with pytest.raises(ValueError, match="older edgekit .* resume with --epochs N"):
        train(_cfg(sample_npz, tmp_path / "cut", epochs="auto", resume=True))
    meta = train(_cfg(sample_npz, tmp_path / "cut", epochs=3, resume=True))
    assert meta["epochs_run_this_invocation"] == 2
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


# --epochs auto: 64 images at batch 16 plan MAX_EPOCHS; early stopping watches from epoch 51,
# patience 3 stops the run a few epochs later. --restore best: on 6 validation images no epoch is
# significantly better than another, so the default rule would never stop (tested below).
AUTO_RUN = dict(epochs="auto", limit=64, batch_size=16, early_stopping=3, augment="crop,scale", lr=1e-2,
                restore="best")


def _val_loss(run, data):
    """The validation loss of RUN's final model, measured as training measured it."""
    from edgekit.runtime.spec import PreprocessSpec
    from edgekit.train.dataset import EpochData

    meta = json.loads((run / "edgekit.json").read_text())
    model = keras.models.load_model(run / "model.keras", compile=False)
    val = EpochData(load_split(data, "val", val_fraction=0.1, seed=0),
                    PreprocessSpec.from_dict(meta["preprocess"]), 32).once()
    losses = [keras.losses.sparse_categorical_crossentropy(np.asarray(y), model(x, training=False)).numpy()
              for x, y in val]
    return float(np.concatenate(losses).mean())


@pytest.fixture(scope="module")
def auto_run(sample_npz, tmp_path_factory):
    run = tmp_path_factory.mktemp("auto") / "run"
    return run, train(_cfg(sample_npz, run, **AUTO_RUN))


def test_auto_epochs_stop_early_and_restore_the_best_weights(sample_npz, auto_run):
    run, meta = auto_run
    record, losses = meta["epochs"], meta["history"]["val_loss"]
    stop = record["early_stopping"]
    assert record["requested"] == "auto" and record["epochs"] == 100 and record["patience"] == 3
    assert "capped at 100" in record["reason"]
    assert stop["stopped_at"] == len(losses) < 100  # stopped early ...
    watched = record["watch_from"]
    assert watched == 50 and np.argmin(losses) < watched  # (an earlier, unwatched epoch was lower)
    smoothed = [losses[0]]
    for loss in losses[1:]:  # each epoch's loss averaged with the smoothed value before it
        smoothed.append(0.5 * smoothed[-1] + 0.5 * loss)
    best = watched + int(np.argmin(smoothed[watched:]))
    assert stop["best_epoch"] == best + 1 == len(losses) - 3  # ... 3 epochs after the best watched one
    assert stop["best"] == pytest.approx(smoothed[best], rel=1e-9)
    # The model written is the best epoch's (precise BN statistics included), not the last one.
    assert _val_loss(run, sample_npz) == pytest.approx(losses[best], rel=1e-4)
    assert abs(losses[-1] - losses[best]) > 1e-3
    assert json.loads((run / "edgekit.json").read_text())["epochs"] == record


def test_auto_default_rule_keeps_the_last_weights_unless_the_best_are_significantly_better(sample_npz, tmp_path,
                                                                                           auto_run):
    """The run auto_run stops (--restore best) under the default --restore significant: on its 6
    validation images no epoch is significantly better than another, so it trains every epoch
    and writes the last weights, not the lowest-loss epoch's."""
    _, reference = auto_run
    meta = train(_cfg(sample_npz, tmp_path / "run", **{**AUTO_RUN, "restore": "significant"}))
    stop, losses = meta["epochs"]["early_stopping"], meta["history"]["val_loss"]
    np.testing.assert_allclose(losses[:len(reference["history"]["val_loss"])], reference["history"]["val_loss"],
                               rtol=1e-5)  # the same run up to where the loss alone stopped it
    assert stop["stopped_at"] is None and len(losses) == 100 and "best_correct" not in stop
    assert stop["restore"] is False and stop["kept_epoch"] == stop["last_epoch"] == 100 > stop["best_epoch"]
    b, c = stop["differ"]
    assert b + c <= meta["data"]["validation_images"]
    assert _val_loss(tmp_path / "run", sample_npz) == pytest.approx(losses[-1], rel=1e-4)
    assert abs(losses[-1] - losses[stop["best_epoch"] - 1]) > 1e-3


def test_auto_resume_after_kill_equals_uninterrupted(sample_npz, tmp_path, monkeypatch, auto_run):
    """Killed after the best epoch, while early stopping is counting: the resumed run restores
    the same best weights and stops at the same epoch."""
    full, reference = auto_run
    kill_at = reference["epochs"]["early_stopping"]["best_epoch"] + 1
    interrupt_after_epoch(monkeypatch, lambda: train(_cfg(sample_npz, tmp_path / "cut", **AUTO_RUN)), kill_at)
    state = runstate.read_state(tmp_path / "cut")
    assert state["epoch"] == kill_at and state["early_stopping"]["wait"] == 1
    assert (tmp_path / "cut" / "checkpoints" / state["early_stopping"]["file"]).is_file()
    meta = train(_cfg(sample_npz, tmp_path / "cut", resume=True, **AUTO_RUN))
    assert meta["epochs"] == reference["epochs"]
    assert meta["epochs_run_this_invocation"] == len(reference["history"]["loss"]) - kill_at
    np.testing.assert_allclose(meta["history"]["val_loss"], reference["history"]["val_loss"][kill_at:], rtol=1e-5)
    assert_same_weights(full, tmp_path / "cut")
    assert not (tmp_path / "cut" / "checkpoints").exists()


def test_auto_resume_after_the_stop_epoch_writes_the_best_weights(sample_npz, tmp_path, monkeypatch, auto_run):
    """Killed after the checkpoint of the epoch that stopped the run (its weights are the last
    ones, not the best): --resume trains nothing and writes the best weights."""
    full, reference = auto_run
    stop = reference["epochs"]["early_stopping"]["stopped_at"]
    interrupt_after_epoch(monkeypatch, lambda: train(_cfg(sample_npz, tmp_path / "cut", **AUTO_RUN)), stop)
    assert runstate.read_state(tmp_path / "cut")["early_stopping"]["stopped_at"] == stop
    meta = train(_cfg(sample_npz, tmp_path / "cut", resume=True, **AUTO_RUN))
    assert meta["epochs_run_this_invocation"] == 0
    assert_same_weights(full, tmp_path / "cut")


def test_auto_stop_then_fine_tune_starts_where_training_stopped(sample_npz, tmp_path, auto_run):
    _, reference = auto_run
    stop = reference["epochs"]["early_stopping"]["stopped_at"]
    meta = train(_cfg(sample_npz, tmp_path / "run", fine_tune_epochs=2, **AUTO_RUN))
    assert meta["epochs"]["early_stopping"]["stopped_at"] == stop
    assert len(meta["history"]["loss"]) == stop + 2
    np.testing.assert_allclose(meta["history"]["loss"][:stop], reference["history"]["loss"], rtol=1e-5)


def test_auto_without_validation_runs_every_epoch(sample_npz, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("edgekit.train.epochs.MAX_EPOCHS", 12)  # the cap, lowered to keep the test short
    meta = train(_cfg(sample_npz, tmp_path / "run", epochs="auto", limit=32, batch_size=32, val_fraction=0))
    assert meta["epochs"]["patience"] is None and meta["epochs"]["early_stopping"] is None
    assert len(meta["history"]["loss"]) == meta["epochs"]["epochs"] == 12
    lines = [line for line in capsys.readouterr().err.splitlines() if "no validation images" in line]
    assert len(lines) == 1 and "no early stopping" in lines[0]


def test_explicit_epochs_are_obeyed_exactly(sample_npz, tmp_path):
    meta = train(_cfg(sample_npz, tmp_path / "run", epochs=3))
    assert len(meta["history"]["loss"]) == 3 and meta["epochs"]["patience"] is None
    assert meta["epochs"]["reason"] == "--epochs 3 as given"


def test_resume_without_checkpoint_is_an_error(sample_npz, tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        train(_cfg(sample_npz, tmp_path / "none", resume=True))


def test_transfer_and_freeze_all_but_head(sample_npz, tmp_path):
    train(_cfg(sample_npz, tmp_path / "base", epochs=1))
    base = keras.models.load_model(tmp_path / "base" / "model.keras", compile=False)
    meta = train(_cfg(sample_npz, tmp_path / "ft", epochs=1, weights=str(tmp_path / "base"),
                      freeze=FreezeSpec.parse("all-but-head"), lr=1e-2))
    tuned = keras.models.load_model(tmp_path / "ft" / "model.keras", compile=False)
    assert meta["transfer"]["layers_loaded"] >= 4
    for layer in base.layers:
        if layer.weights and layer.name != "predictions":
            for a, b in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)  # frozen: unchanged
    assert not np.array_equal(base.get_layer("predictions").get_weights()[0],
                              tuned.get_layer("predictions").get_weights()[0])


def test_freeze_first_k_then_fine_tune_unfreezes(sample_npz, tmp_path):
    train(_cfg(sample_npz, tmp_path / "base", epochs=1))
    base = keras.models.load_model(tmp_path / "base" / "model.keras", compile=False)
    meta = train(_cfg(sample_npz, tmp_path / "ft", epochs=1, weights=str(tmp_path / "base"),
                      freeze=FreezeSpec.parse("2"), fine_tune_epochs=1))
    tuned = keras.models.load_model(tmp_path / "ft" / "model.keras", compile=False)
    assert len(meta["history"]["loss"]) == 2
    # c1 was frozen for the first phase, then trained in the fine-tune phase.
    assert not np.array_equal(base.get_layer("c1").get_weights()[0], tuned.get_layer("c1").get_weights()[0])


def test_bad_config_values_name_the_value():
    with pytest.raises(ValueError, match="--epochs got 0; expected auto or an integer >= 1"):
        TrainConfig("lenet5", "d", "o", epochs=0)
    with pytest.raises(ValueError, match="--freeze got 'x'"):
        FreezeSpec.parse("x")
    with pytest.raises(ValueError, match="--strategy got 'tpu'"):
        TrainConfig("lenet5", "d", "o", strategy="tpu")
    with pytest.raises(ValueError, match="--dropout got 1.0; expected a value in"):
        TrainConfig("lenet5", "d", "o", dropout=1.0)


def test_dropout_sets_the_rate_before_the_classifier(sample_npz, tmp_path):
    train(_cfg(sample_npz, tmp_path / "run", epochs=1, limit=32, dropout=0.3))
    model = keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates and set(rates) == {0.3}


def test_evaluate_tta_and_ensemble(sample_npz, tmp_path):
    train(_cfg(sample_npz, tmp_path / "a", epochs=2))
    train(_cfg(sample_npz, tmp_path / "b", epochs=2, seed=1))
    data = str(REPO / "calibration" / "fashion-mnist")
    results = {tta: evaluate([str(tmp_path / "a")], data, "test", tta) for tta in ("none", "flip", "10crop")}
    for r in results.values():
        cm = np.array(r["confusion_matrix"])
        assert cm.sum() == r["images"] == 200
        assert r["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    ens = evaluate([str(tmp_path / "a"), str(tmp_path / "b")], data, "test", "none", out_dir=str(tmp_path / "ev"))
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 0
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["accuracy"] == ens["accuracy"]
    with pytest.raises(ValueError, match="--tta got"):
        evaluate([str(tmp_path / "a")], data, "test", "5crop")


# Strategies. A data-parallel run of a model without batch norm computes the same global-batch
# gradients as one device (the pipeline gives every worker the same epoch-addressed batches, each
# keeps its share), so its losses must equal the single-device run's up to summation order.
STRATEGY_RUN = dict(arch="lenet5", epochs=2, batch_size=32, augment="flip,crop", tensorboard=False)


@pytest.fixture(scope="module")
def single_device_history(sample_npz, tmp_path_factory):
    return train(TrainConfig(data=sample_npz, out=str(tmp_path_factory.mktemp("one") / "run"),
                             **STRATEGY_RUN))["history"]


def _assert_same_training(history, reference):
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(history[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:  # all bound at once, so the ports differ
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _communicate_all(procs, timeout: float) -> list[tuple[str, str]]:
    """Outputs of every process; on a timeout (a worker waiting for a dead peer) kill them all."""
    try:
        return [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        outs = [p.communicate() for p in procs]
        pytest.fail("workers timed out:\n" + "\n---\n".join(se[-2000:] for _, se in outs))


MIRRORED_SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from edgekit.train import TrainConfig, train
    meta = train(TrainConfig(data=sys.argv[1], out=sys.argv[2], strategy="mirrored", **json.loads(sys.argv[3])))
    print(json.dumps({"replicas": meta["replicas"], "history": meta["history"]}))
""")


def test_mirrored_strategy_on_two_logical_cpus(sample_npz, tmp_path, single_device_history):
    out = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, sample_npz, str(tmp_path / "m"),
                          json.dumps(STRATEGY_RUN)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    _assert_same_training(result["history"], single_device_history)
    assert (tmp_path / "m" / "model.keras").is_file()


def test_mirrored_strategy_with_ema_validates_the_same_average(sample_npz, tmp_path):
    """--ema under MirroredStrategy: the average swapped in at each epoch's end is every
    replica's, so validation (and the weights written) equal the single-device run's."""
    config = dict(STRATEGY_RUN, ema=0.8)
    reference = train(TrainConfig(data=sample_npz, out=str(tmp_path / "one"), **config))["history"]
    out = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, sample_npz, str(tmp_path / "m"),
                          json.dumps(config)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    _assert_same_training(json.loads(out.stdout.strip().splitlines()[-1])["history"], reference)
    one, mirrored = (keras.models.load_model(tmp_path / r / "model.keras", compile=False).get_weights()
                     for r in ("one", "m"))
    for a, b in zip(one, mirrored):  # summation order differs: one element in 2,400 by ~1e-6
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _run_workers(cmd: list[str], n: int, **env) -> list[dict]:
    """Run ``cmd`` as ``n`` workers of one loopback cluster; the JSON on each one's stdout."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(n)]}
    procs = []
    for i in range(n):
        task_env = dict(os.environ, **env,
                        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=task_env, cwd=REPO))
    outs = _communicate_all(procs, timeout=300)
    for p, (_, se) in zip(procs, outs):
        assert p.returncode == 0, se[-2000:]
    return [json.loads(so) for so, _ in outs]  # --json: stdout is one JSON document


def _cli_train(run, sample_npz, **options) -> list[str]:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    return [sys.executable, "-m", "edgekit.cli", "train", STRATEGY_RUN["arch"], "--data", sample_npz,
            "--out", str(run), "--batch-size", str(STRATEGY_RUN["batch_size"]),
            "--augment", STRATEGY_RUN["augment"], "--strategy", "multiworker", "--json", *args]


def test_multiworker_strategy_two_processes_on_loopback(sample_npz, tmp_path, single_device_history):
    """Two `edgekit train --strategy multiworker --json` processes, one TF_CONFIG task each."""
    run, scratch = tmp_path / "mw", tmp_path / "scratch"
    scratch.mkdir()
    results = _run_workers(_cli_train(run, sample_npz, epochs=STRATEGY_RUN["epochs"]), 2, TMPDIR=str(scratch))
    assert [r["replicas"] for r in results] == [2, 2]
    for r in results:  # one model trained together, equal to the one-device run
        _assert_same_training(r["history"], single_device_history)
    # Only the chief (worker 0) wrote the run; worker 1 checkpointed into a temporary
    # directory that it removed.
    assert sorted(x.name for x in run.iterdir()) == ["curve.png", "edgekit.json", "history.csv",
                                                     "model.keras", "tensorboard"]
    assert len((run / "history.csv").read_text().splitlines()) == 1 + STRATEGY_RUN["epochs"]
    assert not any(scratch.iterdir())


CUT_AFTER_FIRST_EPOCH = textwrap.dedent("""
    import json, runpy, sys
    from edgekit.train import runstate

    class Cut(BaseException):  # passes through the CLI's error handling, as a kill would
        pass

    original = runstate.EpochCheckpoint.on_epoch_end

    def cut_after_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise Cut

    runstate.EpochCheckpoint.on_epoch_end = cut_after_first
    sys.argv = ["edgekit", *sys.argv[1:]]
    try:
        runpy.run_module("edgekit.cli", run_name="__main__")
    except Cut:
        print(json.dumps({"cut": 1}))
""")


@pytest.mark.slow
def test_multiworker_resume_equals_uninterrupted_one_device(sample_npz, tmp_path):
    """Both workers stop after epoch 1; `--resume` on both reloads the chief's checkpoint
    and finishes as an uninterrupted one-device run would have."""
    reference = train(TrainConfig(data=sample_npz, out=str(tmp_path / "one"), **{**STRATEGY_RUN, "epochs": 3}))
    run = tmp_path / "mw"
    cmd = _cli_train(run, sample_npz, epochs=3)
    cut = _run_workers([sys.executable, "-c", CUT_AFTER_FIRST_EPOCH, *cmd[3:]], 2)
    assert cut == [{"cut": 1}, {"cut": 1}] and runstate.read_state(run)["epoch"] == 1
    results = _run_workers([*cmd, "--resume"], 2)
    for r in results:
        assert r["epochs_run_this_invocation"] == 2
        _assert_same_training(r["history"], {k: v[1:] for k, v in reference["history"].items()})
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3


@pytest.mark.parametrize("tf_config, match", [
    (None, "needs TF_CONFIG"),
    ("{cluster", "not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG got"),
])
def test_multiworker_needs_a_valid_tf_config(monkeypatch, tf_config, match):
    from edgekit.train.strategy import make_strategy

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=match):
        make_strategy("multiworker")


PRECISE_BN_SCRIPT = textwrap.dedent("""
    import os, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from edgekit.train.precise_bn import batchnorm_layers, recompute_batchnorm

    def net():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                                 keras.layers.BatchNormalization(), keras.layers.ReLU(),
                                 keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])

    batches = [np.random.default_rng(i).normal(3.0, 2.0, (16, 8, 8, 1)).astype("float32") for i in range(3)]
    one = net()
    recompute_batchnorm(one, batches)
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    with strategy.scope():
        mirrored = net()
        recompute_batchnorm(mirrored, batches)
    bn_one, bn_mirrored = batchnorm_layers(one)[0], batchnorm_layers(mirrored)[0]
    copies = [v.numpy().tolist() for v in bn_mirrored.moving_variance.value.values]
    print(json.dumps({"one": bn_one.moving_variance.numpy().tolist(), "copies": copies,
                      "initial": np.ones(4).tolist()}))
""")


def test_precise_bn_under_mirrored_strategy_sets_every_replica(tmp_path):
    """Precise BN runs under every strategy: in cross-replica context, assigning the moving
    statistics sets each replica's copy, to what one device computes from the same batches."""
    out = subprocess.run([sys.executable, "-c", PRECISE_BN_SCRIPT], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["copies"]) == 2
    assert not np.allclose(result["one"], result["initial"])  # the statistics did change
    for copy in result["copies"]:
        np.testing.assert_allclose(copy, result["one"], rtol=1e-5)


def test_curve_png_without_validation_columns(tmp_path):
    """--val-fraction 0: Keras' CSVLogger writes NA for val_*; the curve still draws."""
    from edgekit.train.report import plot_curves

    csv_path = tmp_path / "history.csv"
    csv_path.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,NA,NA\n1,0.7,0.8,NA,NA\n")
    plot_curves(csv_path, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_precise_bn_compiled_forward_equals_eager():
    """The tf.function that PreciseBNValidation uses keeps momentum 0 although it is called
    again after training (momentum 0.99) moved the statistics: each epoch's statistics are
    those of its calibration batches alone, as the eager call computes them."""
    from edgekit.train.precise_bn import PreciseBNValidation, batchnorm_layers, recompute_batchnorm

    def net():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                                 keras.layers.BatchNormalization(momentum=0.99), keras.layers.ReLU(),
                                 keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])

    eager, compiled = net(), net()
    callback = PreciseBNValidation([])
    callback.set_model(compiled)
    for epoch, (mean, n) in enumerate([(3.0, 16), (-1.0, 5)]):  # a new batch size retraces
        batches = [np.random.default_rng(i).normal(mean, 2.0, (n, 8, 8, 1)).astype("float32") for i in range(3)]
        for model in (eager, compiled):  # what training does between two epochs' precise BN
            model(batches[0] * 5.0, training=True)
        recompute_batchnorm(eager, batches)
        callback.calib = [(b, None) for b in batches]
        callback.on_epoch_end(epoch)
        a, b = batchnorm_layers(eager)[0], batchnorm_layers(compiled)[0]
        np.testing.assert_allclose(b.moving_mean.numpy(), a.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.moving_variance.numpy(), a.moving_variance.numpy(), rtol=1e-5, atol=1e-6)
        assert b.momentum == 0.99
    assert callback._forward is not None


def test_cli_says_what_auto_chose_and_which_weights_it_kept(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from edgekit.cli.main import main

    monkeypatch.setattr("edgekit.train.epochs.MAX_EPOCHS", 14)  # the cap, lowered to keep the test short
    result = CliRunner().invoke(main, ["train", "lenet5", "--data", str(REPO / "calibration" / "fashion-mnist"),
                                       "--out", str(tmp_path / "run"), "--limit", "64", "--batch-size", "16",
                                       "--early-stopping", "3", "--lr", "0.01"])
    assert result.exit_code == 0, result.stderr
    assert "edgekit train: epochs: 14 (64 images at batch 16 = 4 steps per epoch; 3150 epochs reach" in result.stderr
    assert "capped at 14" in result.stderr
    assert ("early stopping on the smoothed val_loss from epoch 8 with patience 3: it stops only while the loss "
            "rises over 3 epochs and the lowest-loss epoch's weights are significantly better on the validation "
            "images (McNemar's test), and keeps those only then, else the last epoch's)") in result.stderr
    meta = json.loads((tmp_path / "run" / "edgekit.json").read_text())
    stop = meta["epochs"]["early_stopping"]
    assert stop["kept_epoch"] == stop["best_epoch"] == stop["last_epoch"] == 14  # the loss still falling at the cap
    assert (f"; kept the weights of the last epoch, 14 (lowest smoothed validation loss {stop['best']:.4f}); wrote"
            in result.stdout)


# --ema: 270 images at batch 32 = 9 steps an epoch.
EMA_RUN = dict(epochs=3, ema=0.8, augment="crop")


def test_ema_run_writes_the_moving_average_of_the_weights(sample_npz, tmp_path, monkeypatch):
    """The model written is the average of the weights after every optimizer step (Keras's
    update: the first step's weights, then m * average + (1 - m) * weights), not the last
    weights; validation measured that average (precise BN statistics recomputed for it)."""
    from edgekit.train import averaging

    seen: list[list[np.ndarray]] = []
    monkeypatch.setattr(averaging.EpochEMA, "on_train_batch_end",
                        lambda self, batch, logs=None: seen.append([v.numpy() for v in self.model.trainable_variables]),
                        raising=False)
    meta = train(_cfg(sample_npz, tmp_path / "run", **EMA_RUN))
    assert len(seen) == 27 and meta["config"]["ema"] == 0.8
    assert meta["ema"] == {"requested": 0.8, "phases": {"train": {"momentum": 0.8, "time_constant_steps": 5.0,
                                                                  "steps": 27}}}
    average = seen[0]
    for weights in seen[1:]:
        average = [0.8 * a + 0.2 * w for a, w in zip(average, weights)]
    model = keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
    written = [v.numpy() for v in model.trainable_variables]
    for a, w, last in zip(average, written, seen[-1]):
        np.testing.assert_allclose(w, a, rtol=1e-4, atol=1e-6)
    assert max(float(np.abs(w - last).max()) for w, last in zip(written, seen[-1])) > 1e-3
    assert _val_loss(tmp_path / "run", sample_npz) == pytest.approx(meta["history"]["val_loss"][-1], rel=1e-4)


def test_ema_resume_equals_uninterrupted(sample_npz, tmp_path, monkeypatch):
    """Killed after epoch 1 (its checkpoint holds the average in the model and the raw weights
    in the optimizer): the resumed run trains on from the raw weights, as an uninterrupted run."""
    full = train(_cfg(sample_npz, tmp_path / "full", **EMA_RUN))
    interrupt_after_first_epoch(monkeypatch, lambda: train(_cfg(sample_npz, tmp_path / "cut", **EMA_RUN)))
    meta = train(_cfg(sample_npz, tmp_path / "cut", resume=True, **EMA_RUN))
    np.testing.assert_allclose(meta["history"]["loss"], full["history"]["loss"][1:], rtol=1e-5)
    np.testing.assert_allclose(meta["history"]["val_loss"], full["history"]["val_loss"][1:], rtol=1e-5)
    assert_same_weights(tmp_path / "full", tmp_path / "cut")


@pytest.mark.parametrize("text, expected", [("off", None), ("auto", "auto"), ("0.999", 0.999), (None, None)])
def test_parse_ema(text, expected):
    from edgekit.train.averaging import parse_ema
    from edgekit.train.epochs import as_json

    assert as_json(parse_ema(text)) == expected


@pytest.mark.parametrize("text", ["1", "0", "-0.5", "nan", "fast", "1.5"])
def test_parse_ema_refuses(text):
    from edgekit.train.averaging import parse_ema

    with pytest.raises(ValueError, match=f"--ema got '{text}'; expected off, auto or a momentum in"):
        parse_ema(text)


def test_ema_auto_momentum_spans_a_twentieth_of_the_phase():
    from edgekit.train.averaging import ema_momentum
    from edgekit.train.epochs import AUTO

    assert ema_momentum(AUTO, 12600) == pytest.approx(1 - 1 / 630)
    assert ema_momentum(AUTO, 10) == 0.0  # a run shorter than 20 steps is not averaged
    assert ema_momentum(0.9, 12600) == 0.9 and ema_momentum(None, 12600) is None


def test_ema_record_names_the_momentum_auto_resolved_to_in_each_phase():
    from edgekit.train.averaging import ema_record
    from edgekit.train.epochs import AUTO

    record = ema_record(AUTO, {"train": 12600, "fine-tune": 400})
    assert record["requested"] == "auto"
    assert record["phases"]["train"] == {"momentum": pytest.approx(1 - 1 / 630), "time_constant_steps": 630.0,
                                         "steps": 12600}
    assert record["phases"]["fine-tune"]["time_constant_steps"] == 20.0
    assert ema_record(None, {"train": 12600}) is None


def test_precise_bn_statistics_come_from_augmented_training_batches(sample_npz, tmp_path):
    """The written model's BN statistics are those of the feed's calibration batches (shuffled,
    augmented, the same at every call), not of the unaugmented images (which differ)."""
    from edgekit.data import parse_augment
    from edgekit.run_record import read_record
    from edgekit.train.dataset import EpochData
    from edgekit.train.precise_bn import batchnorm_layers, recompute_batchnorm
    from edgekit.train.run import PRECISE_BN_IMAGES

    run = tmp_path / "run"
    train(_cfg(sample_npz, run, arch="mobilenet_v2", alpha=0.35, input_size=32, epochs=1, augment="crop,scale",
               val_fraction=0.1))
    written = keras.models.load_model(run / "model.keras", compile=False)
    stats = lambda m: [l.moving_variance.numpy() for l in batchnorm_layers(m)]  # noqa: E731
    data = load_split(sample_npz, "train", val_fraction=0.1, seed=0)
    spec = read_record(run).preprocess
    feed = EpochData(data, spec, 32, parse_augment("crop,scale"), None, 0)
    first, again = ([x.numpy() for x, _ in feed.calibration(PRECISE_BN_IMAGES)] for _ in range(2))
    assert len(first) == feed.steps and all(np.array_equal(a, b) for a, b in zip(first, again))
    model = keras.models.load_model(run / "model.keras", compile=False)
    recompute_batchnorm(model, first)
    for w, r in zip(stats(written), stats(model)):
        np.testing.assert_allclose(w, r, rtol=1e-4, atol=1e-6)
    recompute_batchnorm(model, [x for x, _ in EpochData(data, spec, 32).once()])
    assert max(float(np.abs(w - c).max() / (np.abs(w).max() + 1e-6)) for w, c in zip(stats(written), stats(model))) > 1e-2
