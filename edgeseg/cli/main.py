"""The `edgeseg` application. This module only wires commands; each lives in its own module.

Command modules import only typer at module level, so `edgeseg --help` and `edgeseg predict`
do not pay for importing torch.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Annotated

import typer

try:  # recent typer releases carry their own copy of click; older ones depend on click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer
    from click import ClickException

from edgeseg import __version__
from edgeseg.cli import help as cli_help
from edgeseg.errors import EdgesegError

app = typer.Typer(
    name="edgeseg",
    cls=cli_help.Group,
    help="Semantic segmentation from training to the edge: train, distill, export, quantize, run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # help paragraphs reflow to the terminal, not at source line breaks
)

# Each entry is a module `edgeseg.cli.cmd_<name>` exposing `register(app)`.
COMMANDS = [
    "models",
    "distill",
    "train",
    "pretrain",
    "eval",
    "predict",
    "bench",
    "quantize",
    "export",
    "validate",
    "info",
    "pipeline",
    "serve",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeseg {__version__}")
        try:
            from edgeseg.runtime.providers import ort_build_info

            build = ort_build_info()
            typer.echo(
                f"{'+'.join(build.packages)} {build.version} ({build.device}); "
                f"providers: {', '.join(build.providers)}"
            )
        except Exception as err:  # a missing ONNX Runtime is reported, not fatal here
            typer.echo(f"ONNX Runtime: {err}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print versions (edgeseg, ONNX Runtime build) and exit.",
        ),
    ] = False,
) -> None:
    """edgeseg command-line interface."""


for _name in COMMANDS:
    importlib.import_module(f"edgeseg.cli.cmd_{_name}").register(app)
for _info in app.registered_commands:
    if _info.cls in (None, typer.core.TyperCommand):
        _info.cls = cli_help.Command


def main() -> None:
    """Entry point: runs the app and turns known errors into one line on stderr.

    Set ``EDGESEG_TRACEBACK=1`` to see the full traceback instead; the exit code stays the error's own.
    """
    try:
        rc = app(standalone_mode=False)
    except EdgesegError as err:
        if os.environ.get("EDGESEG_TRACEBACK"):
            traceback.print_exc()
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(err.exit_code)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
    except ClickException as err:  # usage errors carry their own exit code
        err.show()
        sys.exit(err.exit_code)
    code = rc if isinstance(rc, int) else 0
    if "torch.distributed" in sys.modules:  # a command that trained may run as a torchrun worker
        from edgeseg.train.distributed import exit_worker

        exit_worker(code)
    sys.exit(code)
