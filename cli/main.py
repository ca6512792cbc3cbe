"""``ffneuro``: the command group, logging setup, and one-line errors instead of tracebacks."""
from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from ffneuro import __version__
from ffneuro.errors import FFNeuroError, UnknownNameError

#: command -> (its module in ffneuro.cli, the command's name there, its one-line summary). A command's
#: module (and the torch it loads) is imported only when that command runs or shows its own help, so
#: ``ffneuro --help`` lists them all from here; tests/test_cli.py checks each summary against its command.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "cam": ("cam", "cam", "Class activation maps of RUN_FILE's FF network on the first N images of a split."),
    "compare": ("compare", "compare", "Compare FF and BP training and both inference readouts across hardware "
                                      "targets (per sample)."),
    "eval": ("evaluate", "eval_cmd", "Evaluate RUN_FILE's stored weights on the test (or validation) split."),
    "export": ("export", "export", "Export RUN_FILE as a deployable NIR graph and print what differs from the trained network."),
    "hw": ("hw", "hw", "Hardware profiles (hw_profiles/*.toml) for `ffneuro profile` and `ffneuro compare`."),
    "plot": ("plot", "plot", "PNG figures of stored runs (needs matplotlib: pip install 'ffneuro[plot]')."),
    "profile": ("profile", "profile", "Estimate FF training, BP training and both inference readouts on "
                                      "hardware targets (--hw, repeatable)."),
    "runs": ("runs", "runs", "Inspect stored run files."),
    "simulate": ("simulate", "simulate", "Run a stored network or a NIR graph with a hardware target's numerics."),
    "study": ("study", "study", "The paper's studies: list them, run them (resumable, sharing one folder) and "
                                "tabulate them."),
    "sweep": ("sweep", "sweep", "Train every combination of the grid values × seeds into OUT_DIR, one run file "
                                "per point."),
    "train": ("train", "train", "Train an FF-CNN (or its BP twin) and store the run in one HDF5 file."),
}


class _Group(click.Group):
    """Loads each command on first use (:data:`COMMANDS`), and turns user-facing errors into
    ``Error: <message>`` with exit code 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attr, _ = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"{__package__}.{module}"), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with each summary from :data:`COMMANDS`: listing imports no command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = [(name, (click.Command(name, help=COMMANDS[name][2]) if name in COMMANDS
                        else self.get_command(ctx, name)).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (FFNeuroError, UnknownNameError) as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or a stop signal seen by a training loop (StopRequested)
            code = getattr(exc, "exit_code", 130)   # a StopRequested knows its signal's (143: SIGTERM)
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
