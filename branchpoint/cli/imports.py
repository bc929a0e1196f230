"""Importing foreign traces (Who&When logs) and scoring attribution methods on them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from branchpoint.cli.common import (
    DbOpt,
    JudgeOpt,
    MethodsOpt,
    app,
    console,
    make_judge,
    parse_methods,
    progress_bar,
    settings_from,
    user_errors,
)


@app.command("whowhen")
@user_errors
def whowhen(
    folder: Annotated[Path, typer.Argument(help="Folder of Who&When JSON logs.")],
    methods: MethodsOpt = "all_at_once,step_by_step,binary_search,dover",
    judge: JudgeOpt = "local",
    db: DbOpt = None,
) -> None:
    """Import Who&When failure logs as runs and score attribution methods on them."""
    from branchpoint.interventions.foreign import attribute_logs, import_log
    from branchpoint.interventions.whowhen import load_whowhen_dir
    from branchpoint.orchestrator.session import Session

    logs = load_whowhen_dir(folder)
    names = parse_methods(methods)
    with Session(settings_from(db)) as session:
        for log in logs:
            import_log(session.tracer, log)
        session.flush()
        with progress_bar() as bar:
            job = bar.add_task("attribution", total=len(logs) * len(names), status="")
            scores = attribute_logs(
                session.store,
                logs,
                names,
                make_judge(session, judge),
                on_done=lambda: bar.update(job, advance=1),
            )
    table = Table(title=f"attribution on {len(logs)} Who&When logs (exact step match)")
    for col in ("method", "predicted", "agent accuracy", "step accuracy", "both"):
        table.add_column(col)
    for method, score in scores.items():
        table.add_row(
            method,
            f"{score['predicted']}/{score['n']}",
            f"{score['agent_accuracy']:.2f}",
            f"{score['step_accuracy']:.2f}",
            f"{score['joint_accuracy']:.2f}",
        )
    console.print(table)
