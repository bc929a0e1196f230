"""Finding a team from `--team` text, and finding the same team again from what a run recorded.

`--team` accepts a built-in name (`math`, `magentic`, and teams branchpoint's own modules add
with `register_team`), a name an installed package registers in the `branchpoint.teams`
entry-point group, an import path `pkg.module:attr` (a TeamSpec, a function returning one, or an
autogen team object), a team file (`.toml`, `.yaml`, `.yml`), or `autogen:PATH.json`. Every
resolved team carries a `TeamSource` that the run records, so a fork, a replay or `debug` in
another process resolves it again with no flag, and agent hosts need none of it: each step
request carries what the host needs.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from branchpoint.agents import autogen_team, team_file
from branchpoint.agents.function_tools import (
    ImportPathError,
    add_code_path,
    import_object,
    module_root,
)
from branchpoint.agents.teams import TEAMS, TeamSpec, get_team
from branchpoint.errors import BranchpointError, first_line
from branchpoint.model import Run, TeamSource

ENTRY_POINT_GROUP = "branchpoint.teams"
# branchpoint's own modules that register built-in teams when imported.
BUILTIN_MODULES: list[str] = ["branchpoint.agents.teams"]
_HOW = (
    "give a built-in name, an installed entry point, pkg.module:attr, a team file "
    "(.toml/.yaml) or autogen:PATH.json; list them with `branchpoint teams`"
)


class TeamNotFoundError(BranchpointError):
    """`--team` text that names no team."""


@dataclass(frozen=True)
class TeamListing:
    """One line of `branchpoint teams`: a name, where it comes from, and its agents."""

    name: str
    kind: str
    where: str
    agents: tuple[str, ...] = ()


def builtin_teams() -> dict[str, TeamSpec]:
    """Built-in teams by name (importing the modules that register them)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return dict(TEAMS)


def team_entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed packages' teams: the `branchpoint.teams` entry points by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve_team(text: str) -> TeamSpec:
    """The team `--team` text names, with its source set; TeamNotFoundError (exit 2) if none."""
    text = text.strip()
    builtins = builtin_teams()
    if text in builtins:
        return builtins[text]
    if text.startswith("autogen:"):
        return _autogen_file(text.removeprefix("autogen:"))
    if text.startswith("file:") or Path(text).suffix.lower() in team_file.TEAM_FILE_SUFFIXES:
        return team_file.load_team_file(text.removeprefix("file:"))
    if Path(text).suffix.lower() == ".json" and Path(text).is_file():
        return _autogen_file(text)
    entry = team_entry_points().get(text)
    if entry is not None:
        return team_from_import(entry.value, name=entry.name)
    if ":" in text:
        return team_from_import(text)
    raise TeamNotFoundError(
        f"unknown team {text!r}; built-in: {', '.join(builtins)}; or {_HOW.split('; ')[0]}"
    )


def _autogen_file(path: str) -> TeamSpec:
    """An autogen component JSON file's team; a file that is not UTF-8 is refused by name."""
    if Path(path).is_file():
        team_file.read_utf8(Path(path), "autogen team")
    return autogen_team.load_autogen_file(path)


def team_from_import(path: str, name: str | None = None, code_path: str | None = None) -> TeamSpec:
    """The team an import path names: a TeamSpec, a function returning one, or an autogen team.

    The current folder is importable (as for `python -m`), so `--team myteams:pair` works from
    the folder that holds `myteams.py`.
    """
    if code_path is None and "" not in sys.path and str(Path.cwd()) not in sys.path:
        add_code_path(str(Path.cwd()))
    try:
        target = import_object(path, code_path)
    except ImportPathError as exc:
        raise TeamNotFoundError(f"team {path!r} not found: {exc}") from None
    except SyntaxError as exc:
        raise TeamNotFoundError(
            f"team {path!r} does not import: {team_file.syntax_problem(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while it was imported
        raise TeamNotFoundError(f"team {path!r} does not import: {raised_in(exc)}") from None
    found = module_root(path.partition(":")[0])
    if callable(target) and not isinstance(target, TeamSpec) and not _is_autogen(target):
        target = _call_factory(target, path)
    if _is_autogen(target):
        target = autogen_team.from_autogen(target, name=name)
    if not isinstance(target, TeamSpec):
        raise TeamNotFoundError(
            f"{path!r} is a {type(target).__name__}, not a TeamSpec, a function returning one, "
            "or an autogen RoundRobinGroupChat / SelectorGroupChat"
        )
    source = TeamSource(kind="import", ref=path, code_path=code_path or found)
    return replace(target, name=name or target.name, source=source)


def _call_factory(factory: Any, path: str) -> Any:
    """Call a function that builds a team; it must take no arguments."""
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise TeamNotFoundError(
            f"{path!r} is a function that takes arguments; name a TeamSpec or a function with "
            "none that returns one"
        ) from None
    except ValueError:  # no signature (a builtin): let the call decide
        pass
    try:
        return factory()
    except Exception as exc:  # noqa: BLE001 - the user's function raised while building the team
        raise TeamNotFoundError(f"team {path!r} was not built: {raised_in(exc)}") from None


def raised_in(exc: BaseException) -> str:
    """What a team's own code raised, and where (its innermost frame), in one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}, line {frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {first_line(exc)}{where}; fix the team's code"


def _is_autogen(target: Any) -> bool:
    return type(target).__module__.startswith("autogen_agentchat.teams")


@lru_cache(maxsize=64)
def _from_source_json(blob: str) -> TeamSpec:
    source = TeamSource.model_validate_json(blob)
    if source.kind == "builtin":
        return get_team(source.ref)
    if source.kind == "import":
        return team_from_import(source.ref, code_path=source.code_path)
    if source.kind == "file":
        return team_file.team_from_record(source)
    return autogen_team.team_from_record(source)


def resolve_source(source: TeamSource, name: str) -> TeamSpec:
    """The team a run recorded, resolved again (once per process)."""
    return replace(_from_source_json(source.model_dump_json()), name=name)


def team_for_run(run: Run) -> TeamSpec:
    """The team of a recorded run: from its recorded source, or a built-in by name."""
    if run.team_source is not None:
        return resolve_source(run.team_source, run.team)
    builtin_teams()
    return get_team(run.team)


def list_teams() -> list[TeamListing]:
    """Every team `--team` can name without a path: built-ins, then entry points."""
    rows = [
        TeamListing(name, "builtin", "branchpoint", team.agent_names)
        for name, team in builtin_teams().items()
    ]
    for name, entry in sorted(team_entry_points().items()):
        dist = entry.dist.name if entry.dist is not None else "?"
        rows.append(TeamListing(name, "entry point", f"{entry.value} ({dist})"))
    return rows


def source_json(team: TeamSpec) -> str | None:
    """What a run records about its team (None for built-ins: the name is enough)."""
    return team.source.model_dump_json() if team.source is not None else None
