"""Python functions as agent tools, and autogen components, loaded where the turn runs.

A tool travels in the step request as a `FunctionToolSpec`: an import path (the folder that holds
its module is recorded with the team and put on `sys.path` first) or autogen's FunctionTool
component, which carries the function's source. The JSON schema the model sees is derived from
the function's signature and docstring by autogen's `FunctionTool`, as autogen itself does.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from autogen_core import ComponentModel
from autogen_core.models import ChatCompletionClient
from autogen_core.tools import FunctionTool

from branchpoint.errors import BranchpointError
from branchpoint.model import FunctionToolSpec


class ImportPathError(BranchpointError):
    """An import path (`pkg.module:attr`) that does not resolve."""


def add_code_path(folder: str | None) -> None:
    """Make modules in `folder` importable (a no-op when it is on sys.path or absent here)."""
    if folder and folder not in sys.path and Path(folder).is_dir():
        sys.path.insert(0, folder)


def import_object(path: str, code_path: str | None = None) -> Any:
    """The object an import path `pkg.module:attr` (or `pkg.module.attr`) names."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ImportPathError(f"{path!r} is not an import path; write it as pkg.module:name")
    add_code_path(code_path)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportPathError(
            f"cannot import {module_name!r} for {path!r}: {exc}; "
            "run from the folder that holds it or install its package"
        ) from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportPathError(
                f"module {module_name!r} has no {attr!r} (from {path!r})"
            ) from None
    return target


def function_tool(func: Any, name: str | None = None) -> FunctionTool:
    """autogen's FunctionTool for a Python function: its docstring is the description."""
    if not callable(func):
        raise ImportPathError(f"tool {name or func!r} is not a function")
    doc = (getattr(func, "__doc__", None) or "").strip()
    return FunctionTool(func, description=doc or func.__name__, name=name or func.__name__)


def module_root(module_name: str) -> str | None:
    """The folder that holds an imported module's top-level package (what sys.path needs)."""
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file:
        return None
    depth = module_name.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    return str(Path(file).resolve().parents[depth])


def tool_spec(path: str, code_path: str | None = None) -> FunctionToolSpec:
    """A FunctionToolSpec for an import path, checked (it must import and be a function); it
    records the folder of the function's package, so a host on another process finds it."""
    tool = function_tool(import_object(path, code_path))
    root = module_root(path.partition(":")[0]) if ":" in path else None
    return FunctionToolSpec(name=tool.name, import_path=path, code_path=root or code_path)


def _blob(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


@cache
def _tool_from_component(blob: str) -> FunctionTool:
    return FunctionTool.load_component(ComponentModel.model_validate(json.loads(blob)))


@cache
def _tool_from_path(path: str, code_path: str | None, name: str) -> FunctionTool:
    return function_tool(import_object(path, code_path), name)


def load_function_tool(spec: FunctionToolSpec) -> FunctionTool:
    """The tool a spec names, loaded once per process; each call gets its own shallow copy
    (the host wraps the copy's `run_json` for one turn)."""
    if spec.component is not None:
        tool = _tool_from_component(_blob(spec.component))
    elif spec.import_path is not None:
        tool = _tool_from_path(spec.import_path, spec.code_path, spec.name)
    else:
        raise BranchpointError(f"tool {spec.name} has neither an import path nor a component")
    return copy.copy(tool)


def load_client(component: Mapping[str, Any]) -> ChatCompletionClient:
    """An autogen model client from its component config."""
    return ChatCompletionClient.load_component(ComponentModel.model_validate(dict(component)))


def component_id(component: Mapping[str, Any]) -> str:
    """A short stable id of a component config."""
    return hashlib.sha256(_blob(component).encode()).hexdigest()[:16]
