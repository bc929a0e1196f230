"""Vetting SQL for the read-only interface: only statements that cannot change anything pass.

Pure: DuckDB's own parser (`duckdb.extract_statements`) classifies each statement, so a write
hidden after a `;` or behind `EXPLAIN ANALYZE` is caught without executing anything.
"""

from __future__ import annotations

import re

import duckdb

from branchpoint.errors import BranchpointError, ReadOnlyQueryError


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

_PRAGMA = re.compile(r"^\s*pragma\s+(\w+)\s*(=)?", re.IGNORECASE)
_EXPLAIN = re.compile(r"^\s*explain\s+(analy[sz]e\s+)?(.*)$", re.IGNORECASE | re.DOTALL)


def _refuse(text: str, why: str) -> ReadOnlyQueryError:
    snippet = " ".join(text.split())[:80]
    return ReadOnlyQueryError(
        f"refused {why}: {snippet!r}; `branchpoint sql` is read-only "
        "(use SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN or a reporting PRAGMA)"
    )


def _check(statement: duckdb.Statement) -> None:
    kind = statement.type
    text = statement.query
    if kind == duckdb.StatementType.SELECT:
        return
    if kind == duckdb.StatementType.EXPLAIN:
        match = _EXPLAIN.match(text)
        if match is None or match.group(1):
            raise _refuse(text, "EXPLAIN ANALYZE (it executes the statement)")
        for inner in duckdb.extract_statements(match.group(2)):
            _check(inner)
        return
    if kind == duckdb.StatementType.PRAGMA:
        match = _PRAGMA.match(text)
        if match and not match.group(2) and match.group(1).lower() in READ_PRAGMAS:
            return
        raise _refuse(text, "a PRAGMA that is not a read-only report")
    raise _refuse(text, f"a {kind.name} statement")


def read_statements(sql: str) -> list[str]:
    """The statements of `sql` as separate strings, or ReadOnlyQueryError if any could write."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidQueryError(f"could not parse the query ({exc}); fix the SQL") from exc
    if not statements:
        raise InvalidQueryError("empty query; give a SELECT statement")
    for statement in statements:
        _check(statement)
    return [s.query for s in statements]
