"""The ``edgekit`` command group; each command lives in its own module."""

from __future__ import annotations

import sys

import click

from .. import __version__
from .benchmark_cmd import benchmark_command
from .common import CliError
from .export_cmd import export_command
from .filters_cmd import filters_command
from .latency_cmd import latency_command
from .models_cmd import models_command, summary_command
from .predict_cmd import predict_command
from .profile_cmd import profile_command
from .qat_cmd import qat_command
from .scale_cmd import scale_command
from .targets_cmd import targets_command
from .quickstart_cmd import quickstart_command
from .train_cmd import augment_command, evaluate_command, train_command


class EdgekitGroup(click.Group):
    """A click group whose usage errors are one line and exit 2."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            rv = super().main(args=args, prog_name=prog_name or "edgekit",
                              standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("edgekit: aborted", err=True)
            sys.exit(130)
        except click.UsageError as exc:
            hint = f" (see 'edgekit {exc.ctx.command_path.split(' ', 1)[-1]} --help')" \
                if exc.ctx and " " in exc.ctx.command_path else " (see 'edgekit --help')"
            click.echo(f"edgekit: error: {' '.join(exc.format_message().split())}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edgekit: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=EdgekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def main() -> None:
    """edgekit: build, train, quantize, export, profile and run CNNs on small devices."""


main.add_command(models_command)
main.add_command(summary_command)
main.add_command(quickstart_command)
main.add_command(targets_command)
main.add_command(export_command)
main.add_command(predict_command)
main.add_command(profile_command)
main.add_command(filters_command)
main.add_command(benchmark_command)
main.add_command(latency_command)
main.add_command(train_command)
main.add_command(qat_command)
main.add_command(scale_command)
main.add_command(augment_command)
main.add_command(evaluate_command)

__all__ = ["main", "CliError"]
