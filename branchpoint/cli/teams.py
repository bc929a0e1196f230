"""`branchpoint teams`: the teams `--team` can name, and where each comes from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from branchpoint.cli.common import app, console, user_errors


@app.command()
@user_errors
def teams(
    team: Annotated[
        str | None,
        typer.Argument(help="Show one team (any --team text: name, import path, file, autogen:)."),
    ] = None,
) -> None:
    """List the built-in and installed teams (entry points), or show one team's agents."""
    from branchpoint.agents.team_registry import list_teams, resolve_team

    if team is not None:
        spec = resolve_team(team)
        source = spec.source
        where = f"{source.kind} {source.ref}" if source is not None else "builtin"
        table = Table(title=f"team {spec.name} ({where})")
        for column in ("agent", "model", "tools", "description"):
            table.add_column(column)
        for agent in spec.agents:
            tools = [*agent.tools, *(t.name for t in agent.function_tools)]
            model = agent.model or ("own client" if agent.model_client else "--model")
            table.add_row(
                agent.name,
                model if agent.calls_model else "(tool only)",
                ", ".join(tools),
                agent.description,
            )
        console.print(table)
        routing = "selector" if spec.selector else f"first {spec.first}"
        console.print(f"routing: {routing}; step limit: {spec.max_steps or 'the run limit'}")
        return
    table = Table(title="teams")
    for column in ("team", "kind", "from", "agents"):
        table.add_column(column)
    for row in list_teams():
        table.add_row(row.name, row.kind, row.where, ", ".join(row.agents))
    console.print(table)
    console.print(
        "Also: --team pkg.module:attr, --team path/to/team.toml (or .yaml), "
        "--team autogen:path/to/team.json"
    )
