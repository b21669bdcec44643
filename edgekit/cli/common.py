"""Shared CLI plumbing: quiet TensorFlow, one-line errors, JSON on a clean stdout."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from typing import Any, Iterator

import click

from edgekit.messages import one_line


class CliError(click.ClickException):
    """A problem with the user's input: one line on stderr, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # one line, no usage block
        click.echo(f"edgekit: error: {self.format_message()}", err=True)


def run_options(strategies: tuple[str, ...], resume_help: str):
    """The options every command that writes a run shares (``train``, ``qat``): --strategy,
    --resume, --limit, --seed and --json, in that order."""
    options = [
        click.option("--strategy", type=click.Choice(list(strategies)), default="default", show_default=True),
        click.option("--resume", is_flag=True, help=resume_help),
        click.option("--limit", type=click.IntRange(2), default=None, help="Use only N training images."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--json", "as_json", is_flag=True, help="Print the run metadata as one JSON document."),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def target_option(help_text: str):
    """``--target NAME``: a device target of ``edgekit targets`` (default host), looked up while
    the arguments are parsed, so that an unknown name is a one-line usage error (exit 2) that
    lists the known ones before any work starts."""

    def lookup(ctx, param, value):
        from edgekit.devices import get_device

        try:
            return get_device(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return click.option("--target", "target", default="host", show_default=True, metavar="NAME",
                        callback=lookup, help=help_text)


class InternalError(CliError):
    """A failure inside edgekit or a tool it drives (a converter), not the user's input:
    one line on stderr, exit 1."""

    exit_code = 1


def quiet_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter silenced (absl writes to fd 2 before
    TF_CPP_MIN_LOG_LEVEL takes effect), so a one-line error stays one line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules or os.environ["KERAS_BACKEND"] != "tensorflow":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        except ImportError:
            pass  # the command that needs it reports the missing install itself
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_missing_glyphs() -> None:
    """Matplotlib warns for each glyph its font lacks (class names in CJK, say) when it draws
    confusion.png or an augment grid; the figure is written all the same, with a box for the
    glyph, so on stderr the warning is only noise."""
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """LiteRT writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to fd 2 when a
    model loads; silenced as quiet_tensorflow silences TensorFlow's start-up, so that an error
    stays one line. A failed load still says why, in its one-line RuntimeModelError."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send anything printed (Keras progress bars, converter logs) to stderr, at fd level too."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def run_checked(fn, *args, **kwargs):
    """Call library code; its ValueError (bad input) becomes a one-line CLI error."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise CliError(one_line(exc)) from None
    except OSError as exc:  # a path that cannot be read or written: a missing folder, a file in the way, ...
        raise CliError(_os_error(exc)) from None


def _os_error(exc: OSError) -> str:
    """``File exists: '/runs/x'`` rather than ``[Errno 17] File exists: '/runs/x'``."""
    if exc.strerror and exc.filename is not None:
        paths = " -> ".join(repr(str(p)) for p in (exc.filename, exc.filename2) if p is not None)
        return f"{exc.strerror}: {paths}"
    return one_line(exc)
