"""Vetting SQL for the read-only interface: only statements that cannot change anything pass.

DuckDB's own parser decides, never a text match: `extract_statements` gives each statement's
type, `json_serialize_sql` its syntax tree, and `tokenize` the words of EXPLAIN and PRAGMA. A
SELECT passes only if its tree holds no data-modifying query node (a `WITH x AS (DELETE ...
RETURNING *)`), no function that reads files, the network or the environment, and no table
named by a path. The connections the statements run on refuse those too (`store.LOCKED_CONFIG`):
vetting gives a clear message before anything runs, the configuration holds if vetting misses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import duckdb

from branchpoint.errors import BranchpointError, ReadOnlyQueryError, first_line
from branchpoint.telemetry.store import LOCKED_CONFIG


class InvalidQueryError(BranchpointError):
    """SQL that DuckDB cannot parse or run (syntax, unknown table or column)."""


# PRAGMAs that only report; anything else (or any `PRAGMA x = y`) may change settings or data.
READ_PRAGMAS = frozenset(
    {
        "table_info",
        "show",
        "show_tables",
        "show_tables_expanded",
        "show_databases",
        "database_list",
        "database_size",
        "storage_info",
        "metadata_info",
        "version",
        "platform",
        "functions",
        "collations",
        "user_agent",
    }
)

# Query nodes a read may contain; INSERT/UPDATE/DELETE nodes (data-modifying CTEs) may not.
READ_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})

# Functions that reach outside the database (files, network, environment, extensions) or run
# SQL given as a string (which would escape this vetting).
OUTSIDE_FUNCTIONS = frozenset(
    {
        "glob",
        "sniff_csv",
        "query",
        "query_table",
        "getenv",
        "load_extension",
        "install_extension",
        "checkpoint",
        "force_checkpoint",
        "json_execute_serialized_sql",
        "from_substrait",
        "duckdb_secrets",
        "st_read",
    }
)
OUTSIDE_PREFIXES = ("read_", "parquet_", "sqlite_", "postgres_", "mysql_", "iceberg_", "delta_")
OUTSIDE_SUFFIXES = ("_scan", "_attach", "_query")

EXPLAIN_HINT = (
    "`branchpoint sql` is read-only (use SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN "
    "or a reporting PRAGMA)"
)

_PARSER_LOCK = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _refuse(text: str, why: str) -> ReadOnlyQueryError:
    snippet = " ".join(text.split())[:80]
    return ReadOnlyQueryError(f"refused {why}: {snippet!r}; {EXPLAIN_HINT}")


def _syntax_tree(query: str) -> dict[str, Any]:
    """`json_serialize_sql` of one SELECT statement, on a private in-memory connection."""
    global _parser
    with _PARSER_LOCK:
        if _parser is None:
            _parser = duckdb.connect(":memory:", config=dict(LOCKED_CONFIG))
        found = _parser.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchall()
    tree: dict[str, Any] = json.loads(found[0][0])
    return tree


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _reaches_outside(function: str) -> bool:
    name = function.lower()
    return (
        name in OUTSIDE_FUNCTIONS
        or name.startswith(OUTSIDE_PREFIXES)
        or name.endswith(OUTSIDE_SUFFIXES)
    )


def _is_path(table: str) -> bool:
    """A table name that DuckDB would read as a file (a replacement scan: `FROM 'x.csv'`)."""
    return any(c in table for c in "/\\.:~") or table.startswith(("http", "s3"))


def _check_select(text: str) -> None:
    tree = _syntax_tree(text)
    if tree.get("error"):
        raise _refuse(text, f"a statement DuckDB cannot check ({tree.get('error_message')})")
    for node in _walk(tree.get("statements", [])):
        kind = node.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE") and kind not in READ_NODES:
            raise _refuse(text, f"a data-modifying query ({kind.removesuffix('_QUERY_NODE')})")
        function = node.get("function_name")
        if isinstance(function, str) and _reaches_outside(function):
            raise _refuse(text, f"{function}(), which reads outside the trace database")
        if kind == "BASE_TABLE" and _is_path(str(node.get("table_name", ""))):
            raise _refuse(text, "reading a file as a table")


def _words(text: str) -> list[str]:
    """The tokens of `text`, as DuckDB's tokenizer splits it."""
    tokens = duckdb.tokenize(text)
    ends = [pos for pos, _ in tokens[1:]] + [len(text)]
    return [text[pos:end].strip() for (pos, _), end in zip(tokens, ends, strict=True)]


def _check_explain(text: str) -> None:
    """EXPLAIN [ (options) ] statement: ANALYZE executes the statement, so it is refused."""
    tokens = duckdb.tokenize(text)
    words = _words(text)
    start = 1
    if len(words) > 1 and words[1] == "(":
        close = words.index(")", 1) if ")" in words else len(words) - 1
        options, start = words[2:close], close + 1
    else:
        options = words[1:2]
    if any(w.lower() in ("analyze", "analyse") for w in options):
        raise _refuse(text, "EXPLAIN ANALYZE (it executes the statement)")
    if start >= len(tokens):
        raise InvalidQueryError("EXPLAIN needs a statement to explain; give EXPLAIN SELECT ...")
    for inner in _statements(text[tokens[start][0] :]):
        _check(inner)


def _check_pragma(text: str) -> None:
    words = _words(text)
    name = words[1].lower() if len(words) > 1 else ""
    if name in READ_PRAGMAS and "=" not in words:
        return
    raise _refuse(text, "a PRAGMA that is not a read-only report")


def _check(statement: duckdb.Statement) -> None:
    kind = statement.type
    text = statement.query
    if kind == duckdb.StatementType.SELECT:
        _check_select(text)
    elif kind == duckdb.StatementType.EXPLAIN:
        _check_explain(text)
    elif kind == duckdb.StatementType.PRAGMA:
        _check_pragma(text)
    else:
        raise _refuse(text, f"a {kind.name} statement")


def _statements(sql: str) -> list[duckdb.Statement]:
    try:
        return duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidQueryError(
            f"could not parse the query ({first_line(exc)}); fix the SQL"
        ) from None


def read_statements(sql: str) -> list[str]:
    """The statements of `sql` as separate strings, or ReadOnlyQueryError if any could write
    or reach outside the trace database."""
    statements = _statements(sql)
    if not statements:
        raise InvalidQueryError("empty query; give a SELECT statement")
    for statement in statements:
        _check(statement)
    return [s.query for s in statements]
