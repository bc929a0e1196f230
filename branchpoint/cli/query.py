"""`branchpoint sql`: read-only SQL over the trace database (no Ray unless a live run holds it)."""

from __future__ import annotations

from branchpoint.cli.common import app, user_errors
from branchpoint.telemetry.commands import sql as sql_command

app.command("sql")(user_errors(sql_command))
