"""The `branchpoint` command (typer + rich): one module per command group, all on one `app`.

The CLI is a thin layer over the library; user errors become one line and a documented exit code
(`common.user_errors`).
"""

from __future__ import annotations

import importlib
import sys

from branchpoint.cli.common import app

# Registration order is the order of `branchpoint --help`.
for _group in ("run", "teams", "debug", "demo", "imports", "query", "export", "view"):
    importlib.import_module(f"branchpoint.cli.{_group}")

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point."""
    sys.exit(app())
