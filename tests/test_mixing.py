"""mixup and CutMix (edgekit/train/mixing.py): what a mixed batch holds, the Beta weights,
determinism, and training runs with them (resume equals an uninterrupted run)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from edgekit.train import TrainConfig, train
from edgekit.train.mixing import MixConfig, mix_batch_tf

from run_helpers import assert_same_weights, interrupt_after_first_epoch

CLASSES = 6


def _batch(n=6, size=16):
    """Image i is filled with the value i + 1 and labelled class i: what came from where shows."""
    x = tf.reshape(tf.range(n, dtype=tf.float32) + 1, [n, 1, 1, 1]) * tf.ones([n, size, size, 1])
    return x, tf.one_hot(tf.range(n), CLASSES)


def _seed(step):
    return tf.constant([11, step], tf.int64)


def test_mixup_blends_each_image_with_its_partner_by_the_label_weight():
    x, y = _batch()
    for step in range(20):
        xm, ym = (t.numpy() for t in mix_batch_tf(x, y, MixConfig(mixup=0.4), _seed(step)))
        lam = ym[0, 0]  # image 0's own class; its partner is image 5
        np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
        for i in range(6):
            j = 5 - i
            if i != j:
                assert ym[i, i] == pytest.approx(lam, abs=1e-6) and ym[i, j] == pytest.approx(1 - lam, abs=1e-6)
            np.testing.assert_allclose(xm[i], lam * (i + 1) + (1 - lam) * (j + 1), rtol=1e-5)


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area():
    x, y = _batch()
    areas = []
    for step in range(40):
        xm, ym = (t.numpy() for t in mix_batch_tf(x, y, MixConfig(cutmix=1.0), _seed(step)))
        pasted = xm[0, ..., 0] == 6.0  # image 0's partner is image 5 (value 6)
        assert np.all(pasted | (xm[0, ..., 0] == 1.0))  # every pixel is one image's or the other's
        rows, cols = np.nonzero(pasted)
        if rows.size:  # a rectangle
            assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert ym[0, 5] == pytest.approx(pasted.mean(), abs=1e-6) and ym[0, 0] == pytest.approx(1 - pasted.mean())
        np.testing.assert_array_equal(xm[1, ..., 0] == 5.0, pasted)  # one box for the whole batch
        areas.append(pasted.mean())
    assert 0.25 < np.mean(areas) < 0.6 and max(areas) > 0.5 and min(areas) < 0.2


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_mixup_weights_follow_beta(alpha):
    """Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) (0.18 at 0.2, 1/12 at 1, 0.028 at 4)."""
    x, y = _batch(n=2, size=2)
    lams = np.array([mix_batch_tf(x, y, MixConfig(mixup=alpha), _seed(s))[1].numpy()[0, 0] for s in range(1500)])
    assert lams.mean() == pytest.approx(0.5, abs=0.03)
    assert lams.var() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.12)


def test_both_on_takes_one_of_the_two_per_batch():
    x, y = _batch()
    kinds = []
    for step in range(40):
        xm = mix_batch_tf(x, y, MixConfig(mixup=1.0, cutmix=1.0), _seed(step))[0].numpy()[0]
        values = set(np.unique(xm).round(5))
        kinds.append("cutmix" if values <= {1.0, 6.0} else "mixup")
        assert kinds[-1] == "cutmix" or len(values) == 1  # a blend is uniform in these images
    assert 10 <= kinds.count("cutmix") <= 30


def test_same_seed_same_batch_and_off_is_identity():
    x, y = _batch()
    a = mix_batch_tf(x, y, MixConfig(mixup=0.5, cutmix=0.5), _seed(3))
    b = mix_batch_tf(x, y, MixConfig(mixup=0.5, cutmix=0.5), _seed(3))
    c = mix_batch_tf(x, y, MixConfig(mixup=0.5, cutmix=0.5), _seed(4))
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    assert not np.array_equal(a[1].numpy(), c[1].numpy())
    same = mix_batch_tf(x, y, MixConfig(), _seed(3))
    np.testing.assert_array_equal(same[0].numpy(), x.numpy())


@pytest.mark.parametrize("mixup, cutmix, shown", [(-1.0, 0.0, "--mixup got -1.0"), (0.0, float("nan"), "--cutmix got nan"),
                                                  (True, 0.0, "--mixup got True")])
def test_bad_concentrations_name_the_value(mixup, cutmix, shown):
    with pytest.raises(ValueError, match=shown):
        MixConfig(mixup, cutmix)
    with pytest.raises(ValueError, match=shown):
        TrainConfig(arch="lenet5", data="d", out="o", mixup=mixup, cutmix=cutmix)


def _cfg(data, out, **kw):
    base = dict(arch="lenet5", data=data, out=str(out), epochs=3, batch_size=32, augment="crop",
                mixup=0.4, cutmix=1.0, tensorboard=False)
    return TrainConfig(**{**base, **kw})


def test_training_feed_is_mixed_and_validation_is_not(sample_npz):
    from edgekit.data import load_split
    from edgekit.runtime.spec import PreprocessSpec
    from edgekit.train.dataset import EpochData

    data = load_split(sample_npz, "train", val_fraction=0.1, seed=0)
    spec = PreprocessSpec((32, 32), 1, (127.5,), (127.5,))
    feed = EpochData(data, spec, 32, None, None, 0, MixConfig(mixup=0.4))
    x, y = next(iter(feed.batches(0, shuffle=True)))
    assert y.shape == (32, 10) and feed.mixed
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, rtol=1e-6)
    assert (y.numpy().max(axis=1) < 1.0).any()  # some rows are blends
    _, labels = next(iter(feed.once()))
    assert labels.dtype.is_integer and labels.shape == (32,)


def test_mixed_run_trains_on_probabilities_and_resume_equals_uninterrupted(sample_npz, tmp_path, monkeypatch):
    import keras

    full = train(_cfg(sample_npz, tmp_path / "full"))
    assert full["config"]["mixup"] == 0.4 and full["config"]["cutmix"] == 1.0
    model = keras.models.load_model(tmp_path / "full" / "model.keras")
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    assert np.isfinite(full["history"]["val_loss"]).all() and 0 <= full["history"]["val_accuracy"][-1] <= 1
    interrupt_after_first_epoch(monkeypatch, lambda: train(_cfg(sample_npz, tmp_path / "cut")))
    meta = train(_cfg(sample_npz, tmp_path / "cut", resume=True))
    np.testing.assert_allclose(meta["history"]["loss"], full["history"]["loss"][1:], rtol=1e-5)
    assert_same_weights(tmp_path / "full", tmp_path / "cut")
    plain = train(_cfg(sample_npz, tmp_path / "plain", mixup=0.0, cutmix=0.0))
    assert plain["history"]["loss"][0] != pytest.approx(full["history"]["loss"][0], rel=1e-3)
