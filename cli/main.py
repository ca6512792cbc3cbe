"""``ffneuro``: the command group, logging setup, and one-line errors instead of tracebacks."""
from __future__ import annotations

import logging
import signal
import sys
import threading

import click

from ffneuro import __version__
from ffneuro.errors import FFNeuroError, UnknownNameError


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler's time limit), raised like Ctrl-C so a run is closed as interrupted."""


def _raise_terminated(signum, frame):
    raise Terminated("terminated by SIGTERM")


class _Group(click.Group):
    """Turns user-facing errors into ``Error: <message>`` with exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (FFNeuroError, UnknownNameError) as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, Terminated)
            click.echo("Terminated." if terminated else "Interrupted.", err=True)
            ctx.exit(143 if terminated else 130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
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
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


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
