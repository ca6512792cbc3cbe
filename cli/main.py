"""``ffneuro``: the command group, logging setup, and one-line errors instead of tracebacks."""
from __future__ import annotations

import logging
import os
import sys

import click

from ffneuro import __version__
from ffneuro.errors import FFNeuroError, UnknownNameError
from ffneuro.train.stop import StopRequested


class _Group(click.Group):
    """Turns user-facing errors into ``Error: <message>`` with exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (FFNeuroError, UnknownNameError) as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or a stop signal seen by a training loop (StopRequested)
            code = exc.exit_code if isinstance(exc, StopRequested) else 130
            click.echo("Terminated." if code == 143 else "Interrupted.", err=True)
            ctx.exit(code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # stdout went away (``ffneuro runs list | head``): nothing left to tell anyone
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(141)
        except Exception as exc:  # a bug, not bad input: one line unless -v asks for the traceback
            if (ctx.obj or {}).get("verbose"):
                raise
            raise click.ClickException(f"internal error: {type(exc).__name__}: {exc} (rerun with -v for the traceback)") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ffneuro")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.option("-q", "--quiet", is_flag=True, help="warnings and errors only; no progress bars")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """ffneuro: Forward-Forward CNNs as independent local-learning units."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s", force=True)
    ctx.obj = {"quiet": quiet, "verbose": verbose}


from . import cam, compare, evaluate, hw, plot, profile, runs, study, sweep, table, train  # noqa: E402

main.add_command(train.train)
main.add_command(evaluate.eval_cmd)
main.add_command(runs.runs)
main.add_command(hw.hw)
main.add_command(profile.profile)
main.add_command(compare.compare)
main.add_command(cam.cam)
main.add_command(sweep.sweep)
main.add_command(study.study)
main.add_command(plot.plot)
runs.runs.add_command(table.table)
