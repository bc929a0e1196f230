"""The `branchpoint` command (typer + rich): one module per command group, all on one `app`.

The CLI is a thin layer over the library; user errors become one line and a documented exit code
(`common.user_errors`).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from branchpoint.cli.common import app, errors

# Registration order is the order of `branchpoint --help`.
for _group in ("run", "teams", "debug", "demo", "imports", "query", "export", "view"):
    importlib.import_module(f"branchpoint.cli.{_group}")

__all__ = ["app", "main"]

# Typer vendors click (older typer used click itself): reach its error classes through a public
# one at run time; the type checker reads the vendored module they are.
if TYPE_CHECKING:
    from typer._click.exceptions import ClickException as _CLICK_ERROR
    from typer._click.exceptions import UsageError as _USAGE_ERROR
else:
    _USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    _CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main() -> None:
    """Console entry point: a bad flag or value is one line and exit code 2, like our own errors."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="branchpoint", standalone_mode=False)
    except _USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            print(exc.ctx.get_help())
            sys.exit(exc.exit_code)
        hint = f"`{exc.ctx.command_path} --help`" if exc.ctx else "`branchpoint --help`"
        message = exc.format_message().rstrip(".")
        errors.print(
            f"[red]error:[/red] {escape(message)}; see {hint}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except _CLICK_ERROR as exc:
        errors.print(
            f"[red]error:[/red] {escape(exc.format_message())}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
