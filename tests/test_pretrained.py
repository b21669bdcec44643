"""``--weights imagenet``: the keras.applications table, download, checksum, cache, the errors,
and a training run on the downloaded backbone. Offline: weight files made here from
keras.applications models built with ``weights=None`` are served from 127.0.0.1
(``EDGEKIT_WEIGHTS_URL``); the table is compared with the installed keras' own source."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from types import SimpleNamespace

import h5py
import keras
import numpy as np
import pytest
from click.testing import CliRunner
from keras.src.legacy.saving import legacy_h5_format

from edgekit.cli.main import main
from edgekit.models import get_spec, list_models
from edgekit.train import FreezeSpec, TrainConfig, pretrained, train


V2_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
V2_PATH = "/tensorflow/keras-applications/mobilenet_v2/" + V2_FILE


def _randomise(model: keras.Model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0, 0.1, w.shape).astype("float32")
        w.assign(np.abs(value) + 0.5 if "variance" in w.path else value)


def _legacy_h5(model: keras.Model, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.fixture(scope="module")
def v2_backbone(tmp_path_factory):
    """A keras.applications MobileNetV2 0.35 no-top weight file with random weights."""
    ref = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    _randomise(ref)
    path = tmp_path_factory.mktemp("ref") / V2_FILE
    _legacy_h5(ref, path)
    return SimpleNamespace(path=path, weights={l.name: l.get_weights() for l in ref.layers if l.weights})


class _Server:
    """Files under ``root`` on http://127.0.0.1:PORT, with the paths asked for."""

    def __init__(self, root):
        self.root, self.requests = root, []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def put(self, url_path: str, data: bytes) -> None:
        target = self.root / url_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = _Server(tmp_path / "www")
    monkeypatch.setenv(pretrained.HOST_ENV, srv.url)
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _cache_files(tmp_path) -> list[str]:
    folder = tmp_path / "cache" / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the table is keras.applications' own -------------------------------------------------

def test_every_keras_compatible_family_has_imagenet_files():
    assert set(pretrained.FAMILIES) == {n for n in list_models() if get_spec(n).keras_weights}


def test_efficientnet_md5_sums_are_keras_own():
    from keras.src.applications import efficientnet

    assert pretrained.MD5 == {f"efficientnet{b}_notop.h5": sums[1] for b, sums in efficientnet.WEIGHTS_HASHES.items()}


@pytest.mark.parametrize("arch, builder, alpha, size", [
    ("mobilenet_v2", "MobileNetV2", 0.35, 96),
    ("mobilenet_v2", "MobileNetV2", 1.4, 224),
    ("mobilenet_v1", "MobileNet", 0.25, 128),
    ("mobilenet_v1", "MobileNet", 0.75, 192),
    ("efficientnet_b0", "EfficientNetB0", None, 224),
])
def test_url_and_hash_equal_what_keras_applications_asks_for(monkeypatch, arch, builder, alpha, size):
    """Build the keras.applications model with weights='imagenet' and catch its download call."""
    from keras.src.utils import file_utils

    asked = {}

    class Caught(Exception):
        pass

    def get_file(fname=None, origin=None, file_hash=None, **kwargs):
        asked.update(fname=fname, origin=origin, file_hash=file_hash)
        raise Caught

    monkeypatch.setattr(file_utils, "get_file", get_file)
    monkeypatch.delenv(pretrained.HOST_ENV, raising=False)
    with pytest.raises(Caught):
        getattr(keras.applications, builder)(input_shape=(size, size, 3), include_top=False, weights="imagenet",
                                             **({"alpha": alpha} if alpha else {}))
    wf = pretrained.resolve(arch, alpha, size)
    assert (wf.filename, wf.url, wf.md5) == (asked["fname"], asked["origin"], asked["file_hash"])


@pytest.mark.parametrize("arch, size, trained", [("mobilenet_v2", 32, 96), ("mobilenet_v2", 150, 160),
                                                 ("mobilenet_v1", 32, 128), ("mobilenet_v1", 500, 224),
                                                 ("efficientnet_b3", 32, None)])
def test_the_file_trained_at_the_nearest_size(arch, size, trained):
    assert pretrained.resolve(arch, None, size).trained_size == trained


@pytest.mark.parametrize("arch, alpha, channels, message", [
    ("lenet5", None, None, "has no ImageNet weights for 'lenet5'; it has them for mobilenet_v1, mobilenet_v2, "
                           "efficientnet_b0"),
    ("efficientnet_lite0", None, None, "for 'efficientnet_lite0'"),
    ("mobilenet_v2", 0.6, None, "for mobilenet_v2 --alpha 0.6; it has alpha 0.35, 0.5, 0.75, 1, 1.3, 1.4"),
    ("mobilenet_v1", 0.35, None, "for mobilenet_v1 --alpha 0.35; it has alpha 0.25, 0.5, 0.75, 1"),
    ("efficientnet_b0", 0.5, None, "efficientnet_b0 has no --alpha (got 0.5)"),
    ("mobilenet_v2", 0.35, 1, "needs 3 input channels (the ImageNet weights are for RGB input); got --channels 1"),
])
def test_what_has_no_imagenet_weights_is_named(arch, alpha, channels, message):
    with pytest.raises(ValueError, match="^--weights imagenet") as info:
        pretrained.check(arch, alpha, 32, channels)
    assert message in str(info.value)


# --- download, checksum, cache -------------------------------------------------------------

def test_download_pins_sha256_and_second_use_is_the_cache(server, v2_backbone, tmp_path):
    data = v2_backbone.path.read_bytes()
    server.put(V2_PATH, data)
    wf = pretrained.resolve("mobilenet_v2", 0.35, 32)
    assert wf.md5 is None and wf.url == server.url + V2_PATH
    lines = []
    path, sha = pretrained.fetch(wf, lines.append)
    assert path.read_bytes() == data and sha == hashlib.sha256(data).hexdigest()
    assert (path.parent / (V2_FILE + ".sha256")).read_text().strip() == sha
    assert server.requests == [V2_PATH] and "downloading" in lines[-1]
    again, _ = pretrained.fetch(wf, lines.append)
    assert again == path and server.requests == [V2_PATH] and "(cached)" in lines[-1]
    assert _cache_files(tmp_path) == [V2_FILE, V2_FILE + ".sha256"]  # no temporary file left


def test_a_cached_file_that_changed_is_deleted_and_downloaded_again(server, v2_backbone):
    server.put(V2_PATH, v2_backbone.path.read_bytes())
    wf = pretrained.resolve("mobilenet_v2", 0.35, 96)
    path, sha = pretrained.fetch(wf, lambda line: None)
    path.write_bytes(path.read_bytes()[:-100])  # cut short in the cache
    lines = []
    again, sha_again = pretrained.fetch(wf, lines.append)
    assert "expected " + sha in lines[0] and "deleted it" in lines[0]
    assert sha_again == sha and len(server.requests) == 2


def test_md5_mismatch_deletes_the_download(server, tmp_path):
    server.put("/keras-applications/efficientnetb0_notop.h5", b"not the weights" * 100)
    wf = pretrained.resolve("efficientnet_b0", None, 32)
    with pytest.raises(ValueError) as info:
        pretrained.fetch(wf, lambda line: None)
    message = str(info.value)
    assert "\n" not in message and wf.url in message and "expected 50bc09e76180e00e4465e1a485ddc09d" in message
    assert "deleted the download" in message and _cache_files(tmp_path) == []


def test_md5_match_is_accepted(server, monkeypatch, tmp_path):
    ref = keras.applications.EfficientNetB0(input_shape=(32, 32, 3), include_top=False, weights=None)
    _legacy_h5(ref, tmp_path / "b0.h5")
    data = (tmp_path / "b0.h5").read_bytes()
    server.put("/keras-applications/efficientnetb0_notop.h5", data)
    monkeypatch.setitem(pretrained.MD5, "efficientnetb0_notop.h5", hashlib.md5(data).hexdigest())
    path, _ = pretrained.fetch(pretrained.resolve("efficientnet_b0", None, 32), lambda line: None)
    assert path.read_bytes() == data and _cache_files(tmp_path) == ["efficientnetb0_notop.h5"]


def test_a_file_that_is_no_hdf5_is_refused(server, tmp_path):
    server.put(V2_PATH, b"<html>a captive portal</html>")
    with pytest.raises(ValueError, match="is not an HDF5 weight file; deleted the download"):
        pretrained.fetch(pretrained.resolve("mobilenet_v2", 0.35, 96), lambda line: None)
    assert _cache_files(tmp_path) == []


def test_missing_file_and_no_network_name_the_url(server, monkeypatch, tmp_path):
    wf = pretrained.resolve("mobilenet_v2", 0.35, 96)
    with pytest.raises(ValueError, match=f"could not download {wf.url}: HTTP 404"):
        pretrained.fetch(wf, lambda line: None)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(pretrained.HOST_ENV, closed)
    wf = pretrained.resolve("mobilenet_v2", 0.35, 96)
    with pytest.raises(ValueError) as info:
        pretrained.fetch(wf, lambda line: None)
    assert str(info.value).startswith(f"--weights imagenet: could not download {closed}{V2_PATH}: ")
    assert "\n" not in str(info.value) and _cache_files(tmp_path) == []


def test_efficientnet_folds_the_imagenet_stddev_into_its_normalization(server, monkeypatch, tmp_path):
    ref = keras.applications.EfficientNetB0(input_shape=(32, 32, 3), include_top=False, weights=None)
    _randomise(ref)
    _legacy_h5(ref, tmp_path / "b0.h5")
    data = (tmp_path / "b0.h5").read_bytes()
    server.put("/keras-applications/efficientnetb0_notop.h5", data)
    monkeypatch.setitem(pretrained.MD5, "efficientnetb0_notop.h5", hashlib.md5(data).hexdigest())
    from edgekit.models import create_model

    ours = create_model("efficientnet_b0", (32, 32, 3), 10)
    info = pretrained.load_imagenet(ours, "efficientnet_b0", None, 32, lambda line: None)
    assert info["layers_new"] == ["predictions"] and info["md5"] == hashlib.md5(data).hexdigest()
    mean, variance, _ = ref.get_layer("normalization").get_weights()
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    # keras.applications with weights="imagenet": Normalization, then Rescaling(1/sqrt(stddev)).
    expected = (x / 255 - mean) / np.sqrt(variance) / np.sqrt(pretrained.IMAGENET_STDDEV_RGB)
    probe = keras.Model(ours.input, ours.get_layer("normalization").output)
    np.testing.assert_allclose(np.asarray(probe(x)), expected, rtol=1e-4, atol=1e-4)


# --- training on it ------------------------------------------------------------------------

def test_train_weights_imagenet_freezes_a_downloaded_backbone(server, v2_backbone, sample_npz, tmp_path):
    server.put(V2_PATH, v2_backbone.path.read_bytes())
    meta = train(TrainConfig(arch="mobilenet_v2", alpha=0.35, input_size=32, data=sample_npz, out=str(tmp_path / "run"),
                             epochs=1, batch_size=64, weights="imagenet", freeze=FreezeSpec.parse("all-but-head"),
                             augment="none", tensorboard=False))
    transfer = meta["transfer"]
    assert transfer["url"] == server.url + V2_PATH and transfer["trained_size"] == 96
    assert transfer["layers_new"] == ["predictions"] and transfer["layers_loaded"] == len(v2_backbone.weights)
    assert meta["input_shape"] == [32, 32, 3]  # grayscale images, repeated to RGB
    model = keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
    for name, weights in v2_backbone.weights.items():
        if "BN" not in name and "bn" not in name:  # precise BN recomputes the statistics
            for ours, theirs in zip(model.get_layer(name).get_weights(), weights):
                np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("args, message", [
    (["lenet5"], "keras.applications has no ImageNet weights for 'lenet5'"),
    (["mobilenet_v2", "--alpha", "0.6"], "it has alpha 0.35, 0.5, 0.75, 1, 1.3, 1.4"),
    (["mobilenet_v2", "--channels", "1"], "needs 3 input channels"),
])
def test_cli_weights_imagenet_bad_input_is_one_line_exit_2(sample_npz, tmp_path, args, message):
    result = CliRunner().invoke(main, ["train", *args, "--data", sample_npz, "--out", str(tmp_path / "run"),
                                       "--weights", "imagenet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
