"""edgekit.run_record: the run folder's names, its edgekit.json record, loading a run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgekit.run_record import (MODEL, RECORD, RunRecord, check_run, is_run, load_run, model_file, read_record,
                                write_record)
from edgekit.runtime.spec import PreprocessSpec

# What `edgekit train` writes, key for key and in its order (values shortened).
TRAINED = {
    "edgekit_version": "0.1.0",
    "architecture": "lenet5",
    "params": 61706,
    "macs": 429128,
    "input_shape": [32, 32, 1],
    "preprocess": PreprocessSpec((32, 32), 1, (127.5,), (127.5,)).to_dict(),
    "class_names": ["T-shirt", "Trouser", "Pullover"],
    "data": {"path": "/data/fashion", "split": "train", "images": 54000, "validation_images": 6000,
             "fingerprint": "abc", "source": "IDX", "skipped": 0},
    "config": {"arch": "lenet5", "epochs": "auto", "lr": 0.003, "seed": 0},
    "transfer": {},
    "history": {"loss": [1.2, 0.8], "accuracy": [0.6, 0.7]},
    "final": {"loss": 0.8, "accuracy": 0.7},
    "epochs_run_this_invocation": 2,
    "wall_seconds_this_invocation": 12.5,
    "images_per_second_median": None,
    "replicas": 1,
    "devices": ["/job:localhost/replica:0/task:0/device:CPU:0"],
    "mixed_precision": "float32",
    "lr_find": {"lr": 0.003},
    "epochs": {"epochs": 2, "early_stopping": None},
}


def _run(folder, doc=TRAINED, model=True):
    folder.mkdir()
    if model:
        (folder / MODEL).write_bytes(b"PK")  # not loaded here: only its presence counts
    if doc is not None:
        (folder / RECORD).write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return folder


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def test_a_trained_run_reads_typed_and_writes_back_byte_for_byte(tmp_path):
    run = _run(tmp_path / "run")
    before = (run / RECORD).read_text()
    record = read_record(run)
    assert record.architecture == "lenet5" and record.params == 61706 and record.macs == 429128
    assert record.input_shape == (32, 32, 1) and record.class_names == ("T-shirt", "Trouser", "Pullover")
    assert record.preprocess == PreprocessSpec((32, 32), 1)
    assert record.data_path == "/data/fashion" and record.config["lr"] == 0.003
    assert record.extra["history"] == TRAINED["history"] and record.qat is None
    write_record(run, record)
    assert (run / RECORD).read_text() == before  # same keys, same order, same values


def test_a_record_built_in_code_round_trips(tmp_path):
    spec = PreprocessSpec((8, 8), 3, (0.5, 0.5, 0.5), (0.25,), "nearest")
    record = RunRecord(edgekit_version="x", architecture="tiny", params=3, macs=4, input_shape=(8, 8, 3),
                       preprocess=spec, class_names=("a", "b"), data={"path": "d"}, config={"seed": 1},
                       extra={"history": {"loss": [1.0]}, "note": "kept"})
    (tmp_path / "run").mkdir()
    write_record(tmp_path / "run", record)
    assert read_record(tmp_path / "run") == record


def test_extra_and_missing_keys_are_kept_as_they_were(tmp_path):
    doc = {"architecture": "tiny", "preprocess": PreprocessSpec((28, 28), 1).to_dict(),
           "data": {"path": "/d", "split": "train"}, "qat": {"ranges": {"conv": [0.0, 6.0]}},
           "someone_elses": [1, {"nested": None}]}
    run = _run(tmp_path / "run", doc)
    record = read_record(run)
    assert record.params is None and record.class_names is None and record.config is None
    assert record.extra == {"qat": doc["qat"], "someone_elses": doc["someone_elses"]}
    assert record.qat == doc["qat"]
    assert record.to_dict() == doc and list(record.to_dict()) == list(doc)


def test_a_folder_that_is_not_a_run_is_one_line_naming_it_and_what_it_lacks(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError) as exc:
        check_run(empty)
    assert repr(str(empty)) in _one_line(exc) and f"a folder without {MODEL} and {RECORD}" in str(exc.value)
    half = _run(tmp_path / "half", doc=None)
    with pytest.raises(ValueError, match=f"without {RECORD}") as exc:
        load_run(half, "RUN")
    assert _one_line(exc).startswith(f"RUN {str(half)!r}")
    with pytest.raises(ValueError, match="does not exist") as exc:
        check_run(tmp_path / "nope")
    assert repr(str(tmp_path / "nope")) in _one_line(exc)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        check_run(tmp_path / "file")
    assert not is_run(empty) and not is_run(half) and not is_run(tmp_path / "file")
    with pytest.raises(ValueError, match=f"has no {RECORD}"):
        read_record(empty)
    assert read_record(empty, required=False) is None


@pytest.mark.parametrize("text, expected", [
    (json.dumps(TRAINED, indent=2)[:200], "is not valid JSON"),  # truncated
    ("", "is not valid JSON"),
    ("[1, 2]", "got a JSON list; expected a JSON object"),
    (json.dumps({**TRAINED, "params": "61706"}), "params got '61706'; expected an integer"),
    (json.dumps({**TRAINED, "class_names": "abc"}), "class_names got 'abc'; expected a list of strings"),
    (json.dumps({**TRAINED, "data": None}), "data got None; expected a JSON object"),
    (json.dumps({**TRAINED, "preprocess": {"size": [0, 0]}}), "preprocess entry .* is invalid"),
])
def test_a_broken_record_is_one_line_naming_the_file(tmp_path, text, expected):
    run = _run(tmp_path / "run", text)
    with pytest.raises(ValueError, match=expected) as exc:
        load_run(run)
    assert repr(str(run / RECORD)) in _one_line(exc)


def test_undecodable_bytes_are_refused(tmp_path):
    run = _run(tmp_path / "run", doc=None)
    (run / RECORD).write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="cannot read the run record") as exc:
        read_record(run)
    assert repr(str(run / RECORD)) in _one_line(exc)


def test_load_run_and_model_file(tmp_path):
    run = _run(tmp_path / "run")
    loaded = load_run(run)
    assert loaded.folder == run and loaded.model == run / MODEL and loaded.record == read_record(run)
    assert model_file(run) == run / MODEL
    assert model_file(tmp_path / "bare.keras") == tmp_path / "bare.keras"  # checked by its loader
    no_model = _run(tmp_path / "no_model", model=False)
    with pytest.raises(ValueError, match=f"{str(no_model)!r} has no {MODEL}"):
        model_file(no_model)


def test_typed_keys_in_extra_are_refused():
    with pytest.raises(ValueError, match="architecture"):
        RunRecord(extra={"architecture": "x"}).to_dict()


def test_importing_it_imports_neither_tensorflow_nor_numpy():
    code = ("import sys, edgekit.run_record\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
