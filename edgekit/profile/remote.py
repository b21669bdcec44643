"""Profile a model on another machine over SSH: copy it there, run ``edgekit profile --json``
there, bring the JSON back.

Only the OpenSSH client is used (``ssh(1)``), always as an argument list, never through a
local shell. The remote side runs every command through its login shell, so each remote
command is one string built with :func:`shlex.join` (``shlex.quote`` on every argument): file
names with spaces or quotes reach the device intact. The file is streamed over the SSH
connection into a fresh ``mktemp -d`` folder (``sh -c 'cat > "$1"'``), which behaves the same
with every scp version (legacy scp interprets remote names in a shell, SFTP-based scp does
not), and the folder is removed afterwards.

Connection settings: ``port``, ``identity`` and ``options`` (each passed as ``-o OPTION``),
then any options in the ``EDGEKIT_SSH_OPTS`` environment variable (split like a shell line),
e.g. ``EDGEKIT_SSH_OPTS="-o StrictHostKeyChecking=accept-new"``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekit.messages import stderr
ENV_OPTS = "EDGEKIT_SSH_OPTS"
_DESTINATION = re.compile(r"^(?:[^@\s/]+@)?[A-Za-z0-9._:\[\]%-]+$")


@dataclass(frozen=True)
class SshTarget:
    destination: str  # [user@]host
    port: int | None = None
    identity: str | None = None
    options: tuple[str, ...] = ()  # each passed as -o OPTION
    edgekit: str = "edgekit"  # the edgekit command on the device

    def __post_init__(self) -> None:
        if not _DESTINATION.fullmatch(self.destination) or self.destination.startswith("-"):
            raise ValueError(f"--remote got {self.destination!r}; expected USER@HOST or HOST")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"--remote-port got {self.port!r}; expected 1..65535")
        if not self.edgekit.strip():
            raise ValueError("--remote-edgekit got an empty command")

    def ssh_command(self, remote_argv: list[str]) -> list[str]:
        """The local argument list that runs ``remote_argv`` on the device."""
        args = ["ssh", "-T"]
        if self.port is not None:
            args += ["-p", str(self.port)]
        if self.identity:
            args += ["-i", self.identity]
        for option in self.options:
            args += ["-o", option]
        args += shlex.split(os.environ.get(ENV_OPTS, ""))
        return [*args, "--", self.destination, shlex.join(remote_argv)]


def _run(target: SshTarget, remote_argv: list[str], stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(target.ssh_command(remote_argv), stdin=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise ValueError("--remote needs the OpenSSH client (ssh) on this machine") from None


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _check(target: SshTarget, done: subprocess.CompletedProcess, step: str) -> None:
    if done.returncode == 0:
        return
    if done.returncode == 255:
        raise ValueError(f"ssh to {target.destination} failed while {step}: {_last_line(done.stderr)}")
    raise ValueError(f"on {target.destination}, {step} failed (exit {done.returncode}): {_last_line(done.stderr)}")


def profile_remote(path: str | os.PathLike, target: SshTarget, profile_args: list[str],
                   log: Callable[[str], None] = stderr) -> dict:
    """Run ``edgekit profile PATH *profile_args --json`` on ``target`` and return its JSON document."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist (--remote copies a .tflite, .onnx or .keras file)")
    made = _run(target, ["mktemp", "-d"])
    _check(target, made, "making a temporary folder")
    folder = made.stdout.decode().strip()
    remote_path = f"{folder}/{path.name}"
    try:
        with open(path, "rb") as f:
            _check(target, _run(target, ["sh", "-c", 'cat > "$1"', "sh", remote_path], stdin=f), "copying the model")
        done = _run(target, [target.edgekit, "profile", remote_path, *profile_args, "--json"])
    finally:
        _run(target, ["rm", "-rf", "--", folder])
    return _result(target, done, path, remote_path, log)


def _result(target: SshTarget, done: subprocess.CompletedProcess, path: Path, remote_path: str, log) -> dict:
    text = done.stderr.decode("utf-8", "replace")
    if done.returncode == 127:
        raise ValueError(f"{target.edgekit!r} was not found on {target.destination}; "
                         "install edgekit there or pass --remote-edgekit PATH")
    if done.returncode != 0:
        errors = [line for line in text.splitlines() if line.startswith("edgekit: error: ")]
        message = errors[-1][len("edgekit: error: "):] if errors else _last_line(done.stderr)
        if done.returncode == 255:
            raise ValueError(f"ssh to {target.destination} failed while profiling: {message}")
        raise ValueError(f"on {target.destination}: {message}")
    for line in text.splitlines():
        if line.strip() and not line.startswith("warning: "):  # warnings travel in the JSON
            log(f"[{target.destination}] {line}")
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ValueError(f"edgekit on {target.destination} did not print a JSON document; "
                         f"its output began {done.stdout[:80]!r}") from None
    doc["model"] = str(path)
    doc["remote"] = {"destination": target.destination, "path": remote_path}
    return doc
