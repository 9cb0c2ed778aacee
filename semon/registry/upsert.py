"""The SQL that writes registry rows: insert or update by key, touching only the given columns and only when one
of them differs, so that re-importing a file changes nothing (docs/registry-csv.md)."""

from __future__ import annotations

import functools
from typing import Any

# The RETURNING of every upsert: whether the row was inserted (else updated; unchanged rows are not returned).
_INSERTED = "RETURNING (xmax = 0) AS inserted"


def _on_conflict(table: str, key: tuple[str, ...], columns: tuple[str, ...], stamp: bool) -> str:
    """The ON CONFLICT clause that updates the columns other than `key`, only where one differs."""
    others = [c for c in columns if c not in key]
    if not others:
        return f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    sets = [f"{c} = EXCLUDED.{c}" for c in others] + (["updated_at = now()"] if stamp else [])
    # The NULL makes a row of one column a row too.
    return (f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}"
            f" WHERE ({', '.join(f'{table}.{c}' for c in others)}, NULL)"
            f" IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in others)}, NULL)")


@functools.cache
def _upsert_sql(table: str, key: str, columns: tuple[str, ...], stamp: bool) -> str:
    # Cached: an import runs the same statement for every row, and psycopg prepares it by its text.
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(f'%({c})s' for c in columns)}) "
            f"{_on_conflict(table, (key,), columns, stamp)} {_INSERTED}")


def upsert(conn, table: str, key: str, values: dict[str, Any], stamp: bool = False) -> str:
    """Insert or update one row by `key` (a table column), touching only the given columns and only when one of
    them differs (`stamp`: then set updated_at too); returns 'new', 'updated' or 'unchanged'."""
    row = conn.execute(_upsert_sql(table, key, tuple(values), stamp), values).fetchone()
    if row is None:
        return "unchanged"
    return "new" if row["inserted"] else "updated"


def upsert_many(conn, table: str, key: str, rows: list[dict[str, Any]], stamp: bool = False) -> list[str]:
    """`upsert` for rows that all have the same columns, sent as one batch (executemany pipelines them: a
    10,000-row file would otherwise wait for 10,000 round trips)."""
    if not rows:
        return []
    outcomes = []
    with conn.cursor() as cur:
        cur.executemany(_upsert_sql(table, key, tuple(rows[0]), stamp), rows, returning=True)
        while True:
            row = cur.fetchone()
            outcomes.append("unchanged" if row is None else "new" if row["inserted"] else "updated")
            if not cur.nextset():
                break
    return outcomes


def upsert_select(conn, table: str, key: tuple[str, ...], columns: tuple[str, ...], select: str) -> tuple[int, int]:
    """Upsert every row `select` gives (its columns in the order of `columns`) by `key` in one statement, for
    more rows than a statement each could take; returns (inserted, updated)."""
    row = conn.execute(
        f"WITH upserted AS (INSERT INTO {table} ({', '.join(columns)}) {select} "
        f"{_on_conflict(table, key, columns, stamp=False)} {_INSERTED}) "
        "SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated "
        "FROM upserted").fetchone()
    return row["inserted"], row["updated"]


def update(conn, table: str, key: str, values: dict[str, Any], stamp: bool = False) -> bool:
    """Change the given columns of the row whose `key` column equals values[key], only if one differs (an
    upsert cannot do a partial update: the would-be insert must satisfy NOT NULL first). True if changed."""
    others = [c for c in values if c != key]
    if not others:
        return False
    sets = [f"{c} = %({c})s" for c in others] + (["updated_at = now()"] if stamp else [])
    cur = conn.execute(
        f"UPDATE {table} SET {', '.join(sets)} WHERE {key} = %({key})s AND ({', '.join(others)}, NULL) "
        f"IS DISTINCT FROM ({', '.join(f'%({c})s' for c in others)}, NULL)", values)
    return cur.rowcount > 0
