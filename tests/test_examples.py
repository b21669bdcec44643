"""examples/folder_watch.py run as a user runs it: a subprocess on a tiny int8 model and a few
shipped sample images, with TensorFlow made impossible to import (tests/device_helpers.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from device_helpers import BLOCKED_MARK, CLASS_NAMES, no_tensorflow_env, sample_images, tiny_fashion_files

SCRIPT = REPO / "examples" / "folder_watch.py"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_fashion_files(tmp_path_factory.mktemp("examples"), keys=("int8", "plain"))["paths"]


@pytest.fixture
def inbox(tmp_path):
    """A folder with three sample images, one in a sub-folder, and a file that is not an image."""
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    first, second, third = sample_images(per_class=1)[:3]
    shutil.copy(first, folder / "a.png")
    shutil.copy(second, folder / "b.png")
    shutil.copy(third, folder / "sub" / "c.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _watch(env, *args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


@pytest.mark.parametrize("recursive", [False, True])
def test_once_json_lines_without_tensorflow(model, inbox, tmp_path, recursive):
    from edgekit.runtime import Model

    env = no_tensorflow_env(tmp_path / "site")
    result = _watch(env, model["int8"], inbox, "--once", "--json-lines", "--top-k", 2,
                    *(["--recursive"] if recursive else []))
    assert result.returncode == 0, result.stderr
    assert BLOCKED_MARK not in result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    names = ["a.png", "b.png"] + (["sub/c.png"] if recursive else [])
    assert [f["image"] for f in frames] == [str(inbox / n) for n in names]
    reference = Model(model["int8"])
    for frame in frames:
        assert set(frame) == {"image", "top_k", "ms"} and frame["ms"] > 0
        expected = reference.classify(frame["image"], top_k=2)
        assert [(t["label"], t["probability"]) for t in frame["top_k"]] == [
            (label, pytest.approx(p, abs=1e-6)) for label, p in expected]
        assert all(t["label"] in CLASS_NAMES for t in frame["top_k"])


def test_once_text_lines_and_a_bad_image(model, inbox, tmp_path):
    (inbox / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    result = _watch(no_tensorflow_env(tmp_path / "site"), model["int8"], inbox, "--once")
    assert result.returncode == 1  # one image could not be read
    lines = result.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == [str(inbox / "a.png"), str(inbox / "b.png")]
    assert all(line.split("  ")[1].rsplit(" ", 1)[0] in CLASS_NAMES and line.endswith(" ms)") for line in lines)
    assert f"folder_watch: skipped {inbox / 'broken.png'}: cannot read image" in result.stderr


@pytest.mark.parametrize("case", ["no metadata", "missing model", "missing folder"])
def test_bad_model_or_folder_exits_2(model, inbox, tmp_path, case):
    args = {"no metadata": (model["plain"], inbox), "missing model": (tmp_path / "nope.tflite", inbox),
            "missing folder": (model["int8"], tmp_path / "nowhere")}[case]
    result = _watch(no_tensorflow_env(tmp_path / "site"), *args, "--once")
    assert result.returncode == 2 and result.stdout == ""
    needle = {"no metadata": "has no edgekit metadata", "missing model": "does not exist",
              "missing folder": "does not exist or is not a folder"}[case]
    assert needle in result.stderr


def test_watch_classifies_new_files_once(model, inbox, tmp_path):
    """Without --once: images already there, then one copied in later, each exactly once."""
    env = no_tensorflow_env(tmp_path / "site")
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(model["int8"]), str(inbox), "--interval", "0.1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    watchdog = threading.Timer(60, process.kill)  # a hung watcher fails the test instead of hanging it
    watchdog.start()
    try:
        lines = [process.stdout.readline() for _ in range(2)]  # a.png, b.png
        shutil.copy(sample_images(per_class=1)[5], inbox / "late.png")
        lines.append(process.stdout.readline())
        time.sleep(0.5)  # several more polls: nothing is classified twice
    finally:
        watchdog.cancel()
        process.terminate()
        out, err = process.communicate(timeout=30)
    images = [line.split("  ")[0] for line in lines + out.splitlines()]
    assert images == [str(inbox / "a.png"), str(inbox / "b.png"), str(inbox / "late.png")], err
