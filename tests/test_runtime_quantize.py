"""``Model.predict``'s int8 path: quantization in reused per-thread buffers gives the same
integers as the plain formula, arrays already in the input's dtype pass through unquantized,
and ``Model.rank`` turns one sample's scores into (index, label, probability)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from device_helpers import CLASS_NAMES, SIZE, tiny_fashion_files
from edgekit.runtime import Model, RuntimeModelError


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return tiny_fashion_files(tmp_path_factory.mktemp("quantize"), keys=("int8", "plain"))["paths"]


@pytest.fixture(scope="module")
def int8(paths):
    return Model(paths["int8"], threads=1)


def _by_hand(model: Model, x: np.ndarray) -> np.ndarray:
    q = model.inputs[0].quantization
    x = np.asarray(x, np.float32)
    return np.clip(np.rint(x / np.float32(q.scale) + np.float32(q.zero_point)), -128, 127).astype(np.int8)


def _floats(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.2, 1.2, (batch, SIZE, SIZE, 1)).astype(np.float32)


def _edge_values(model: Model) -> np.ndarray:
    """Half steps (where rint rounds to even), the clipping limits and beyond, signed zeros."""
    q = model.inputs[0].quantization
    steps = np.arange(-140, 140, dtype=np.float32) + np.float32(0.5)
    values = np.concatenate([(steps - q.zero_point) * q.scale, [0.0, -0.0, 1e9, -1e9, 3.0, -3.0]])
    flat = np.resize(values.astype(np.float32), SIZE * SIZE)
    return flat.reshape(1, SIZE, SIZE, 1)


@pytest.mark.parametrize("case", ["batch 1", "batch 3", "float64", "fortran order", "edge values"])
def test_quantized_input_matches_the_formula(int8, case):
    x = {"batch 1": _floats(1), "batch 3": _floats(3, seed=1), "float64": _floats(2).astype(np.float64),
         "fortran order": np.asfortranarray(_floats(2)), "edge values": _edge_values(int8)}[case]
    expected = _by_hand(int8, x)
    np.testing.assert_array_equal(int8._slots[0].convert(x), expected)
    np.testing.assert_array_equal(int8.predict(x), int8.predict(expected))  # the same tensor reaches the model


def test_buffers_follow_the_batch_size(int8):
    """Reused buffers are reshaped when the batch changes, and a result never changes afterwards."""
    first = int8.predict(_floats(2, seed=3))
    kept = first.copy()
    for batch in (5, 1, 2, 4):
        x = _floats(batch, seed=batch)
        np.testing.assert_array_equal(int8.predict(x), int8.predict(_by_hand(int8, x)))
    np.testing.assert_array_equal(first, kept)


def test_int8_array_passes_through_unquantized(int8):
    x = _floats(2, seed=4)
    q = _by_hand(int8, x)
    interp = int8.raw
    (i,), (o,) = interp.get_input_details(), interp.get_output_details()
    interp.resize_tensor_input(i["index"], list(q.shape))
    interp.allocate_tensors()
    interp.set_tensor(i["index"], q)
    interp.invoke()
    s_out, z_out = o["quantization"]
    raw = (interp.get_tensor(o["index"]).astype(np.float32) - z_out) * s_out
    np.testing.assert_array_equal(int8.predict(q), raw)
    shifted = np.clip(q.astype(np.int16) + 30, -128, 127).astype(np.int8)
    assert not np.array_equal(int8.predict(shifted), raw)  # the int8 values themselves are used


def test_pass_through_still_checks_shape_and_other_integers_are_refused(int8):
    with pytest.raises(RuntimeModelError, match=r"got shape \(1, 28, 27, 1\)"):
        int8.predict(np.zeros((1, SIZE, SIZE - 1, 1), np.int8))
    with pytest.raises(RuntimeModelError, match="got dtype uint8; expected floating point .* or int8 values already"):
        int8.predict(np.zeros((1, SIZE, SIZE, 1), np.uint8))


def test_threads_with_float_and_int8_inputs(int8):
    batches = [_floats(1 + i % 3, seed=i) for i in range(24)]
    inputs = [x if i % 2 else _by_hand(int8, x) for i, x in enumerate(batches)]
    serial = [int8.predict(x) for x in batches]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(int8.predict, inputs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


# -- rank ----------------------------------------------------------------------------------------


def test_rank_labels_from_metadata_or_indices(paths, int8):
    scores = int8.predict(_floats(1, seed=5))
    ranked = int8.rank(scores, top_k=3)
    order = np.argsort(-scores[0], kind="stable")[:3]
    assert [i for i, _, _ in ranked] == list(order)
    assert [label for _, label, _ in ranked] == [CLASS_NAMES[i] for i in order]
    assert int8.rank(scores[0], top_k=3) == ranked  # (classes,) as well as (1, classes)
    plain = Model(paths["plain"])
    ranked = plain.rank(plain.predict(_floats(1)), top_k=10)
    assert [label for _, label, _ in ranked] == [str(i) for i, _, _ in ranked]
    assert sum(p for _, _, p in ranked) == pytest.approx(1.0, abs=1e-5)


def test_rank_applies_softmax_to_logits(int8):
    logits = np.array([2.0, -1.0, 0.5, 0, 0, 0, 0, 0, 0, 3.0])
    ranked = int8.rank(logits, top_k=2)
    expected = np.exp(logits) / np.exp(logits).sum()
    assert ranked == [(9, CLASS_NAMES[9], pytest.approx(expected[9])), (0, CLASS_NAMES[0], pytest.approx(expected[0]))]


@pytest.mark.parametrize("scores,top_k,needle", [
    (np.zeros((2, 10)), 1, r"scores got shape \(2, 10\); expected one sample's scores"),
    (np.float32(1.0), 1, r"scores got shape \(\)"),
    (np.zeros(10), 0, "top_k got 0"),
    (np.zeros(7), 1, "the metadata lists 10 class names but the model outputs 7 scores"),
])
def test_rank_refuses(int8, scores, top_k, needle):
    with pytest.raises(RuntimeModelError, match=needle):
        int8.rank(scores, top_k=top_k)
