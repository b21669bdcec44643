"""SIGKILL at random points: ``edgekit train --resume`` finishes the run as if it had never been
interrupted, and a killed ``edgekit export`` leaves no file that looks complete.

Real processes (``python -m edgekit.cli``), killed with SIGKILL. A kill point is "when the run
directory shows X": the test polls the folder and, on seeing X, stops the process (SIGSTOP),
checks that X still holds (so the kill point is known, not guessed), then SIGKILLs it. Other
points are a seeded random delay after an event. The default suite walks one training run
through three kills and one export through one; ``-m slow`` sweeps random points.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses SIGSTOP/SIGKILL and /proc")

SAMPLE = REPO / "calibration" / "fashion-mnist"
EPOCHS = 6
TRAIN = ["train", "lenet5", "--data", str(SAMPLE), "--epochs", str(EPOCHS), "--batch-size", "16",
         "--limit", "64"]
# --epochs auto (the default): 100 planned, early stopping with patience 3 ends it after ~10.
TRAIN_AUTO = ["train", "lenet5", "--data", str(SAMPLE), "--batch-size", "16", "--limit", "64",
              "--early-stopping", "3", "--lr", "0.01", "--restore", "best"]
EXPORT = ["--format", "tflite,onnx", "--quantize", "fp32,int8", "--num-validation", "20",
          "--num-calibration", "20"]
POLL_S = 0.005
TIMEOUT_S = 240


# --- killing a process at a known point -----------------------------------------------------

def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, "-m", "edgekit.cli", *args], stdout=f, stderr=f, env=env, cwd=REPO)


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def kill_when(proc: subprocess.Popen, condition: Callable[[], bool], log: Path) -> bool:
    """SIGKILL ``proc`` at a moment when ``condition()`` holds (checked again with the process
    stopped); False when the process exited first."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if condition():
            os.kill(proc.pid, signal.SIGSTOP)
            while _state(proc.pid) not in ("T", "t", "Z", "X", None):
                time.sleep(0.0005)
            if proc.poll() is None and condition():
                proc.kill()
                proc.wait()
                return True
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
        time.sleep(POLL_S)
    proc.kill()
    proc.wait()
    pytest.fail(f"kill point not reached in {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def finish(proc: subprocess.Popen, log: Path) -> None:
    try:
        rc = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"timed out:\n{log.read_text()[-3000:]}")
    assert rc == 0, log.read_text()[-3000:]


# --- the training run -------------------------------------------------------------------------

def _ckpt(run: Path) -> Path:
    return run / "checkpoints"


def _state_epoch(run: Path) -> int:
    from edgekit.train.runstate import read_state

    try:
        state = read_state(run)
    except ValueError:  # cannot happen with atomic writes; the assertions below would say so
        return -1
    return 0 if state is None else state["epoch"]


def _saving_epoch(run: Path) -> int:
    """The epoch whose checkpoint is being written now (0: none)."""
    try:
        names = [p.name for p in _ckpt(run).iterdir()]
    except FileNotFoundError:
        return 0
    epochs = [int(n[len(".epoch-"):-len(".tmp.keras")]) for n in names
              if n.startswith(".epoch-") and n.endswith(".tmp.keras")]
    return max(epochs, default=0)


def _finalizing(run: Path) -> bool:
    return ((run / ".model.tmp.keras").exists() or (run / "model.keras").exists()) and \
        (_ckpt(run) / "state.json").exists()


def _history_epochs(run: Path, strict: bool = True) -> list[int]:
    """The epoch column of history.csv; ``strict=False`` skips rows a kill cut short."""
    with open(run / "history.csv", newline="") as f:
        cells = [row["epoch"] for row in csv.DictReader(f)]
    return [int(c) for c in cells if strict or (c or "").isdigit()]


def _check_killed_run(run: Path) -> None:
    """What a killed run leaves: a state.json that names a complete checkpoint (or none)."""
    from edgekit.models.safe_load import load_keras_model
    from edgekit.train.runstate import read_state

    state = read_state(run)
    if state is not None:
        load_keras_model(_ckpt(run) / state["checkpoint"], compile=True)  # complete, loadable
        assert set(range(state["epoch"])) <= set(_history_epochs(run, strict=False))


@dataclass
class Chain:
    """One training run through several kills; what happened at each."""

    run: Path
    log: Path
    rng: random.Random
    kills: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=lambda: TRAIN)

    def step(self, resume: bool, point: str | None) -> None:
        before = _state_epoch(self.run)
        proc = _start([*self.args, "--out", str(self.run), *(["--resume"] if resume else [])], self.log)
        if point is None:
            return finish(proc, self.log)
        condition = self._condition(point, before)
        if kill_when(proc, condition, self.log):
            self.kills.append(f"{point} (state epoch {before} -> {_state_epoch(self.run)}; "
                              f"{'model.keras, ' if (self.run / 'model.keras').exists() else ''}"
                              f"{'edgekit.json' if (self.run / 'edgekit.json').exists() else ''})")
            _check_killed_run(self.run)
        else:
            assert proc.returncode == 0, self.log.read_text()[-3000:]
            self.kills.append(f"{point}: finished before the kill")

    def _condition(self, point: str, before: int) -> Callable[[], bool]:
        if point == "mid-checkpoint":  # a later epoch's checkpoint half written
            return lambda: _saving_epoch(self.run) > max(before, 1)
        if point == "final files":
            return lambda: _finalizing(self.run)
        if point == "after edgekit.json":  # only the checkpoints were left to remove
            return lambda: (self.run / "edgekit.json").exists() and (_ckpt(self.run) / "state.json").exists()
        k = self.rng.randint(before + 1, max(before + 1, EPOCHS - 3))  # k epochs done, then 0-0.3 s
        return _after(self.run, k, self.rng.uniform(0.0, 0.3))


def _reference(run: Path, out: Path) -> dict:
    """The same training, uninterrupted and in this process, from the run's recorded config."""
    import json

    from edgekit.train import FreezeSpec, TrainConfig, train

    config = json.loads((run / "edgekit.json").read_text())["config"]
    config.update(out=str(out), resume=False, freeze=FreezeSpec(), tensorboard=False)
    return train(TrainConfig(**config))


def _weights(path: Path) -> list[np.ndarray]:
    from edgekit.models.safe_load import load_keras_model

    return load_keras_model(path).get_weights()


def _check_finished_run(run: Path, reference: dict, reference_dir: Path, epochs: int = EPOCHS) -> None:
    from edgekit.models.safe_load import load_keras_model

    names = sorted(p.name for p in run.iterdir())
    assert names == ["curve.png", "edgekit.json", "history.csv", "model.keras", "tensorboard"], names
    assert _history_epochs(run) == list(range(epochs))  # each epoch once, in order
    with open(run / "history.csv", newline="") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    np.testing.assert_allclose(losses, reference["history"]["loss"], rtol=1e-5)
    for a, b in zip(_weights(run / "model.keras"), _weights(reference_dir / "model.keras")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    model = load_keras_model(run / "model.keras")
    x = np.random.default_rng(0).uniform(-1, 1, (4, *model.input_shape[1:])).astype(np.float32)
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (4, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training run killed mid-checkpoint, at a seeded random point, while writing its final
    files and once they were all written (before the checkpoints were removed), resumed each
    time; and the uninterrupted reference run of the same config."""
    folder = tmp_path_factory.mktemp("interrupt")
    chain = Chain(folder / "run", folder / "train.log", random.Random(7))
    chain.step(resume=False, point="mid-checkpoint")
    chain.step(resume=True, point="random")
    chain.step(resume=True, point="final files")
    chain.step(resume=True, point="after edgekit.json")
    chain.step(resume=True, point=None)
    reference = _reference(chain.run, folder / "reference")
    return chain, reference, folder / "reference"


def test_killed_training_resumes_to_the_uninterrupted_result(trained):
    chain, reference, reference_dir = trained
    print("kill points:", *chain.kills, sep="\n  ")
    assert len(chain.kills) == 4 and "finished" not in "".join(chain.kills), chain.kills
    _check_finished_run(chain.run, reference, reference_dir)
    log = chain.log.read_text()
    assert "removed 1 temporary file(s) left by the interrupted run, e.g. .epoch-" in log  # mid-checkpoint
    assert "already holds the final files of all 6 epochs" in log  # the last kill's resume


def test_killed_auto_training_resumes_to_the_uninterrupted_result(tmp_path):
    """--epochs auto, killed at a seeded random point after a few epochs, while writing the
    final files and after edgekit.json: the resumed run stops at the same epoch and writes the
    same best weights as an uninterrupted run."""
    chain = Chain(tmp_path / "run", tmp_path / "train.log", random.Random(11), args=TRAIN_AUTO)
    chain.step(resume=False, point="random")
    chain.step(resume=True, point="final files")
    chain.step(resume=True, point="after edgekit.json")
    chain.step(resume=True, point=None)
    print("kill points:", *chain.kills, sep="\n  ")
    assert len(chain.kills) == 3 and "finished" not in "".join(chain.kills), chain.kills
    reference = _reference(chain.run, tmp_path / "reference")
    stop = reference["epochs"]["early_stopping"]
    assert reference["epochs"]["requested"] == "auto" and stop["stopped_at"] < reference["epochs"]["epochs"]
    _check_finished_run(chain.run, reference, tmp_path / "reference", epochs=stop["stopped_at"])
    meta = json.loads((chain.run / "edgekit.json").read_text())
    assert meta["epochs"]["early_stopping"] == stop
    log = chain.log.read_text()
    assert f"stopped early after epoch {stop['stopped_at']}" in log
    assert f"already holds the final files of all {stop['stopped_at']} epochs" in log


def test_trim_history_drops_rows_of_epochs_trained_again(tmp_path):
    """The history fix on its own: rows past the checkpoint and a half-written line go."""
    from edgekit.train.runstate import trim_history

    (tmp_path / "history.csv").write_bytes(b"epoch,loss\r\n0,1.5\r\n1,1.2\r\n2,1.0\r\n3,0.9")
    trim_history(tmp_path, 2)
    assert (tmp_path / "history.csv").read_bytes() == b"epoch,loss\r\n0,1.5\r\n1,1.2\r\n"
    trim_history(tmp_path, 0)
    assert not (tmp_path / "history.csv").exists()


# --- export ---------------------------------------------------------------------------------

FINAL_SUFFIXES = (".tflite", ".onnx")


def _partials(out: Path) -> set[str]:
    try:
        return {p.name for p in out.iterdir() if p.name.startswith(".") and ".partial-" in p.name
                and not p.name.startswith("..")}
    except FileNotFoundError:
        return set()


def _check_export_folder(out: Path, expected: set[str]) -> set[str]:
    """Every visible file is a complete, loadable model with its metadata; every other file is
    a hidden partial. Returns the visible names."""
    from edgekit.runtime import Model, read_metadata

    visible = set()
    for p in out.iterdir():
        if p.name.startswith("."):
            assert ".partial-" in p.name, f"unrecognisable hidden file {p.name}"
            continue
        assert p.name in expected, f"unexpected file {p.name}"
        meta = read_metadata(p)
        assert meta is not None and meta.precision in p.name, p.name
        Model(p).predict(np.zeros((1, *Model(p).inputs[0].shape[1:]), np.float32))
        visible.add(p.name)
    return visible


def _expected_names(source: Path) -> list[str]:
    stem = source.resolve().name
    return [f"{stem}_{precision}{suffix}" for suffix in FINAL_SUFFIXES for precision in ("fp32", "int8")]


def _killed_export(source: Path, out: Path, log: Path, nth: int) -> tuple[set[str], set[str]]:
    """Export, SIGKILLed while the ``nth`` file is a partial; (visible files, hidden files)."""
    seen: set[str] = set()

    def nth_partial() -> bool:
        now = _partials(out)
        seen.update(now)
        return len(seen) >= nth and bool(now)

    proc = _start(["export", str(source), "--out", str(out), *EXPORT], log)
    assert kill_when(proc, nth_partial, log), "export finished before the kill:\n" + log.read_text()[-2000:]
    visible = _check_export_folder(out, set(_expected_names(source)))
    return visible, {p.name for p in out.iterdir() if p.name.startswith(".")}


def test_killed_export_leaves_nothing_that_looks_complete(trained, tmp_path):
    _, _, source = trained
    out, log = tmp_path / "out", tmp_path / "export.log"
    nth = random.Random(3).randint(2, 4)
    visible, hidden = _killed_export(source, out, log, nth)
    expected = _expected_names(source)
    assert visible == set(expected[:nth - 1]) and hidden, (nth, visible, hidden)
    # The rerun (--force: some files exist) removes the killed run's partial files.
    proc = _start(["export", str(source), "--out", str(out), *EXPORT, "--force"], log)
    finish(proc, log)
    assert _check_export_folder(out, set(expected)) == set(expected)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert "partial file(s) left by an interrupted export" in log.read_text()
    mask = os.umask(0)
    os.umask(mask)
    for name in expected:  # the usual permissions, not mkstemp's 0600
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~mask


# --- randomised sweeps (slow) ---------------------------------------------------------------

def _after(run: Path, epochs: int, delay: float) -> Callable[[], bool]:
    """True from ``delay`` seconds after state.json first names ``epochs`` epochs (0: start)."""
    armed: list[float] = []

    def condition() -> bool:
        if not armed and _state_epoch(run) >= epochs:
            armed.append(time.monotonic() + delay)
        return bool(armed) and time.monotonic() >= armed[0]
    return condition


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_random_kill_sweep_training(tmp_path, seed):
    """mobilenet_v2 (alpha 0.35, 32x32, 4 epochs), killed again and again at seeded random points
    (k more epochs checkpointed, then a random delay; k = 0 lands in start-up or the first epoch,
    k = all in the final writes), resumed (or, before any checkpoint, restarted) until it finishes."""
    rng = random.Random(seed)
    run, log = tmp_path / "run", tmp_path / "train.log"
    args = ["train", "mobilenet_v2", "--alpha", "0.35", "--input-size", "32", "--data", str(SAMPLE),
            "--epochs", "4", "--batch-size", "16", "--limit", "48", "--out", str(run)]
    kills = []
    for attempt in range(6):
        before = _state_epoch(run)
        if before == 0 and (run / "edgekit.json").exists():
            break  # killed while removing the checkpoints of a finished run
        proc = _start([*args, *(["--resume"] if before else [])], log)
        k = rng.randint(before, 4)
        delay = rng.uniform(0.0, 25.0 if k == 0 else 3.0)
        if attempt < 5 and kill_when(proc, _after(run, k, delay), log):
            kills.append(f"{delay:.1f} s after epoch {k} (state epoch {before} -> {_state_epoch(run)})")
            _check_killed_run(run)
            continue
        finish(proc, log)
        break
    print("kill points:", *kills, sep="\n  ")
    assert _history_epochs(run) == list(range(4))
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []
    _weights(run / "model.keras")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_random_kill_sweep_export(trained, tmp_path, seed):
    _, _, source = trained
    out, log = tmp_path / "out", tmp_path / "export.log"
    start, delay = time.monotonic(), random.Random(seed).uniform(2.0, 20.0)
    proc = _start(["export", str(source), "--out", str(out), *EXPORT], log)
    if kill_when(proc, lambda: time.monotonic() - start >= delay, log) and out.exists():
        _check_export_folder(out, set(_expected_names(source)))
    proc = _start(["export", str(source), "--out", str(out), *EXPORT, "--force"], log)
    finish(proc, log)
    assert _check_export_folder(out, set(_expected_names(source))) == set(_expected_names(source))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
