"""``edgekit profile``: latency, memory, MACs and operator mix of a model, here or over SSH."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, emit_json, quiet_tensorflow, run_checked, stdout_to_stderr


def parse_ints(text: str, option: str, ranges: bool = False) -> tuple[int, ...]:
    """'1,2,4' (and with ``ranges`` '0-3') -> (1, 2, 4); CliError naming ``option`` otherwise."""
    values: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if ranges and "-" in part[1:]:
                low, high = (int(v) for v in part.split("-", 1))
                if high < low:
                    raise ValueError
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
        if min(values) < (0 if ranges else 1):
            raise ValueError
    except ValueError:
        expected = "CPU numbers such as 0,1 or 2-3" if ranges else "comma-separated positive integers such as 1,2,4"
        raise CliError(f"{option} got {text!r}; expected {expected}") from None
    return tuple(values)


def _remote_args(threads: str, runs, min_time, warmup: int, batch: int, per_op: bool, cpus) -> list[str]:
    args = ["--threads", threads, "--warmup", str(warmup), "--batch", str(batch)]
    args += ["--runs", str(runs)] if runs is not None else []
    args += ["--min-time", repr(min_time)] if min_time is not None else []
    args += ["--per-op"] if per_op else []
    args += ["--cpus", cpus] if cpus is not None else []
    return args


@click.command("profile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--threads", default="1", show_default=True,
              help="Thread counts to measure, e.g. 1,2,4 (one record each).")
@click.option("--runs", type=click.IntRange(1), default=None, help="Time exactly N runs (instead of --min-time).")
@click.option("--min-time", type=click.FloatRange(0, min_open=True), default=None, metavar="S",
              help="Time runs for at least S seconds (and 10 runs)  [default: 2]")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True, help="Untimed runs after the first.")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True, help="Input batch size.")
@click.option("--per-op", is_flag=True, help="Time per operator (onnxruntime's profiler; an estimate for .tflite).")
@click.option("--cpus", default=None, metavar="LIST", help="Pin the process to these CPUs, e.g. 2,3 or 0-3 (Linux).")
@click.option("--remote", default=None, metavar="USER@HOST",
              help="Copy MODEL to this device over SSH and profile it there.")
@click.option("--remote-port", type=click.IntRange(1, 65535), default=None, help="SSH port of --remote.")
@click.option("--ssh-identity", default=None, metavar="KEY", help="SSH private key for --remote (ssh -i).")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="OPTION",
              help="Passed to ssh as -o OPTION (repeatable); EDGEKIT_SSH_OPTS adds more.")
@click.option("--remote-edgekit", default="edgekit", show_default=True, metavar="PATH",
              help="The edgekit command on the device.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def profile_command(model: Path, threads: str, runs, min_time, warmup: int, batch: int, per_op: bool, cpus,
                    remote, remote_port, ssh_identity, ssh_options, remote_edgekit: str, as_json: bool) -> None:
    """Measure MODEL (.tflite, .onnx, .ort, or a .keras file / run folder): latency percentiles and
    FPS at each thread count, peak memory, and the file's size, parameters, MACs and op mix.

    .tflite, .onnx and .ort files need only edgekit's runtime install (no TensorFlow), so this runs
    on the device itself; --remote does that for you over SSH.
    """
    if runs is not None and min_time is not None:
        raise CliError("--runs and --min-time are alternatives; pass one")
    thread_counts = parse_ints(threads, "--threads")
    cpu_list = parse_ints(cpus, "--cpus", ranges=True) if cpus is not None else None
    if remote is not None:
        doc = _remote(model, remote, remote_port, ssh_identity, ssh_options, remote_edgekit,
                      _remote_args(threads, runs, min_time, warmup, batch, per_op, cpus))
    else:
        doc = _local(model, thread_counts, runs, min_time, warmup, batch, per_op, cpu_list, as_json)
    for warning in doc.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json(doc)
    else:
        from .profile_view import print_profile

        print_profile(doc)


def _local(model: Path, threads, runs, min_time, warmup, batch, per_op, cpus, as_json: bool) -> dict:
    from ..profile import ProfileOptions, TimingPlan, profile_model
    from ..profile.report import model_kind

    kind = run_checked(model_kind, model)
    if kind == "keras":
        quiet_tensorflow()  # only here: a .tflite/.onnx/.ort profile must not load TensorFlow
    with stdout_to_stderr(as_json):
        options = run_checked(lambda: ProfileOptions(
            threads=threads, batch=batch, per_op=per_op, cpus=cpus,
            timing=TimingPlan(warmup=warmup, runs=runs, min_time_s=2.0 if min_time is None else min_time)))
        return run_checked(profile_model, model, options).to_dict()


def _remote(model: Path, remote: str, port, identity, options, edgekit: str, args: list[str]) -> dict:
    from ..profile.remote import SshTarget, profile_remote

    target = run_checked(SshTarget, remote, port, identity, tuple(options), edgekit)
    return run_checked(profile_remote, model, target, args)
