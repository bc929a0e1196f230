"""Commands that only read the trace database: sql and export (no Ray unless a live run holds it)."""

from __future__ import annotations

from branchpoint.cli.common import app, user_errors
from branchpoint.telemetry.commands import export as export_command
from branchpoint.telemetry.commands import sql as sql_command

app.command("sql")(user_errors(sql_command))
app.command("export")(user_errors(export_command))
