"""The device install (issue 12): ``pip install edgekit`` with no extras must be enough for
``edgekit predict model.tflite photo.png`` and ``photo.jpg``, the first command a Pi user runs.

Tests never reach the network, so instead of building a fresh venv this runs predict in a
subprocess whose imports are limited to what the base install brings: the standard library,
the distributions in ``pyproject.toml``'s ``dependencies`` and everything they require
(resolved from the installed distributions' metadata), and edgekit itself. Any other import
(TensorFlow, onnx, onnxruntime, mediapipe, matplotlib, ...) fails as it would on the device.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib

from conftest import REPO
from device_helpers import CLASS_NAMES, SAMPLE, sample_images, tiny_fashion_files

BLOCKED_MARK = "edgekit-test: outside the base install:"


def _name(requirement: str) -> str:
    return re.split(r"[ ;<>=!~\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def base_distributions() -> set[str]:
    """The base install's distributions and, transitively, what they require (no extras)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [r for r in project["dependencies"] if "platform_system == 'Windows'" not in r]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        if "extra ==" in requirement or "sys_platform == \"win32\"" in requirement:
            continue
        name = _name(requirement)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(md.distribution(name).requires or [])
        except md.PackageNotFoundError:  # a platform-only requirement (colorama on Windows)
            continue
    return seen


def allowed_modules() -> set[str]:
    dists = base_distributions()
    return {module for module, owners in md.packages_distributions().items()
            if any(_name(o) in dists for o in owners)} | {"edgekit"}


def test_pillow_is_in_the_base_install():
    assert "pillow" in base_distributions() and "PIL" in allowed_modules()
    assert not {"tensorflow", "keras", "onnx", "onnxruntime", "mediapipe", "matplotlib"} & base_distributions()


def base_install_env(folder) -> dict[str, str]:
    """Environment of a subprocess that can import only the base install (and reports, on
    stderr, every import it refused, caught or not)."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys
        ALLOWED = {sorted(allowed_modules())!r}

        class BaseInstallOnly:
            def find_spec(self, name, path=None, target=None):
                top = name.partition(".")[0]
                if top in sys.stdlib_module_names or top in ALLOWED or top.startswith("_"):
                    return None
                print("{BLOCKED_MARK}", name, file=sys.stderr)
                raise ImportError(f"{{name}} is not part of edgekit's base install")

        sys.meta_path.insert(0, BaseInstallOnly())
        """))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def blocked_imports(stderr: str) -> set[str]:
    return {line.split(":", 2)[-1].strip().partition(".")[0] for line in stderr.splitlines()
            if line.startswith(BLOCKED_MARK)}


def test_predict_png_and_jpeg_with_the_base_install_only(tmp_path):
    from PIL import Image

    files = tiny_fashion_files(tmp_path, keys=("fp32",))
    png = sample_images(per_class=1)[8]  # a bag
    jpeg = tmp_path / "bag.jpg"
    with Image.open(png) as img:
        img.convert("RGB").save(jpeg, quality=95)
    env = base_install_env(tmp_path / "site")
    p = subprocess.run([sys.executable, "-m", "edgekit.cli", "predict", str(files["paths"]["fp32"]), str(png),
                        str(jpeg), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout)["results"]
    assert [r["image"] for r in results] == [str(png), str(jpeg)]
    assert all(r["top_k"][0]["label"] in CLASS_NAMES for r in results)
    blocked = blocked_imports(p.stderr)
    assert not {"tensorflow", "keras", "onnx", "onnxruntime"} & blocked, blocked


def test_evaluate_a_tflite_file_with_the_base_install_only(tmp_path):
    """``edgekit evaluate FILE`` on an image folder: Pillow, numpy and LiteRT are enough."""
    from click.testing import CliRunner

    from edgekit.cli.main import main

    model = tiny_fashion_files(tmp_path, keys=("fp32",))["paths"]["fp32"]
    args = ["evaluate", str(model), "--data", str(SAMPLE), "--limit", "50", "--reference", str(model), "--json"]
    p = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                       env=base_install_env(tmp_path / "site"), timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["images"] == 50 and doc["agreement"] == 1.0 and doc["class_names"] == list(CLASS_NAMES)
    assert doc == json.loads(CliRunner().invoke(main, args).stdout)
    blocked = blocked_imports(p.stderr)
    assert not {"tensorflow", "keras", "onnx", "onnxruntime", "matplotlib"} & blocked, blocked
