"""Device-reported faults: each raised event opens (or repeats) an alert, each cleared event resolves it.

The ingester applies the events it has just stored, in the same transaction (ingest/writer.py): a fault the
monitor reports is an alert as soon as its message is committed, and a redelivered event, not stored twice, is
not counted twice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerts.store import raise_alert, resolve_alert
from semon.vocabulary import fault_label

SOURCE = "device"


def apply_device_events(conn: psycopg.Connection, events: Iterable[Mapping[str, Any]]) -> int:
    """Turn newly stored events (equipment_id, code, state, ts, seq, detail) into alert changes, in ts order;
    returns how many were applied."""
    ordered = sorted(events, key=lambda e: (e["ts"], e["seq"]))
    if not ordered:
        return 0
    with conn.cursor(row_factory=dict_row) as cur:
        codes = {r["name"]: r for r in cur.execute(
            "SELECT name, severity, description, name_zh FROM fault_codes WHERE name = ANY(%s)",
            (sorted({e["code"] for e in ordered}),))}
        # Delivered out of order, a clear can be stored before its raise: the latest clear of each fault.
        cleared: dict[tuple[int, str], datetime] = {(r["equipment_id"], r["code"]): r["ts"] for r in cur.execute(
            "SELECT equipment_id, code, max(ts) AS ts FROM events WHERE state = 'cleared'"
            " AND equipment_id = ANY(%s) AND code = ANY(%s) GROUP BY equipment_id, code",
            (sorted({e["equipment_id"] for e in ordered}), sorted(codes)))}
    for event in ordered:
        key = (event["equipment_id"], event["code"])
        if event["state"] == "raised":
            fault = codes[event["code"]]
            label = fault_label(fault["description"], fault["name_zh"])
            raise_alert(conn, equipment_id=event["equipment_id"], kind=event["code"], source=SOURCE,
                        severity=fault["severity"], message=f"{label} (reported by the monitor)",
                        seen_at=event["ts"], detail=event["detail"] or {})
            if key in cleared and cleared[key] > event["ts"]:
                # The clear came first: the fault is already over.
                resolve_alert(conn, equipment_id=event["equipment_id"], kind=event["code"], resolved_at=event["ts"])
        else:
            resolve_alert(conn, equipment_id=event["equipment_id"], kind=event["code"], resolved_at=event["ts"])
    return len(ordered)



def fault_severities(conn: psycopg.Connection) -> dict[str, str]:
    """Each fault code's default severity (the fault_codes table), as the telemetry rules raise them."""
    with conn.cursor(row_factory=dict_row) as cur:
        return {r["name"]: r["severity"] for r in cur.execute("SELECT name, severity FROM fault_codes")}


def fault_labels(conn: psycopg.Connection) -> dict[str, str]:
    """How each fault code reads in messages (semon.vocabulary.fault_label of the fault_codes table)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return {r["name"]: fault_label(r["description"], r["name_zh"])
                for r in cur.execute("SELECT name, description, name_zh FROM fault_codes")}
