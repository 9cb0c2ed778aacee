"""The audit log: every change people make to the registry, users, tokens, alerts, maintenance windows, escalation
chains and contacts, with who made it, when, and the row before and after (docs/access.md). Written in the change's
own transaction, so that a change and its entry are kept or lost together."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# The audit log's CSV and page columns, in order.
COLUMNS = ("at", "actor", "action", "target", "before", "after", "remote_addr")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a user (id and name), or the command line (no id; the name says whose shell)."""

    user_id: int | None
    name: str
    remote_addr: str = ""


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"cannot keep a {type(value).__name__} in the audit log")


def _json(row: dict[str, Any] | None) -> Jsonb | None:
    return None if row is None else Jsonb(row, dumps=lambda v: json.dumps(v, default=_plain, ensure_ascii=False))


def record(conn: psycopg.Connection, actor: Actor, action: str, target: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Append one entry: `actor` did `action` (such as registry.update) to `target` (such as equipment EL-1)."""
    conn.execute("INSERT INTO audit_log (user_id, actor, action, target, before, after, remote_addr)"
                 " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (actor.user_id, actor.name, action, target, _json(before), _json(after), actor.remote_addr))
