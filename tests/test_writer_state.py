"""The latest-state table the UI and rules read: how one batch and successive batches merge into it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row

from ingest.messages import parse_message
from ingest.writer import BatchWriter, DatabaseLookup
from tests.conftest import register_equipment


def write(db_url: str, *messages: tuple[str, dict | str]) -> None:
    """Parse and write the messages as one batch, as the ingester does."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        lookup = DatabaseLookup(conn)
        parsed = [parse_message(topic, (body if isinstance(body, str) else json.dumps(body)).encode(), lookup)
                  for topic, body in messages]
        BatchWriter(conn).write(parsed)


def state(db, eid: int) -> dict:
    return db.execute("SELECT * FROM equipment_state WHERE equipment_id = %s", (eid,)).fetchone()


T = "sem/v1/elevator/EL-0001/telemetry"


def test_within_a_batch_each_field_keeps_its_newest_value_whatever_the_arrival_order(db, db_url):
    eid = register_equipment(db, "EL-0001")
    write(db_url,
          (T, {"ts": "2026-11-22T08:00:10+08:00", "seq": 3, "floor": 7}),          # newest, floor only
          (T, {"ts": "2026-11-22T08:00:00+08:00", "seq": 1, "floor": 1, "door": "open", "run_count": 10}),
          (T, {"ts": "2026-11-22T08:00:05+08:00", "seq": 2, "door": "closed", "speed_mps": None}))
    row = state(db, eid)
    assert row["last_values"] == {"floor": 7, "door": "closed", "run_count": 10}
    assert row["last_ts"] == datetime(2026, 11, 22, 0, 0, 10, tzinfo=UTC)
    assert row["status"] == "online"


def test_an_older_batch_arriving_late_fills_gaps_but_does_not_overwrite_newer_values(db, db_url):
    eid = register_equipment(db, "EL-0001")
    write(db_url, (T, {"ts": "2026-11-22T08:01:00+08:00", "seq": 9, "floor": 4, "load_pct": 12.5}))
    write(db_url, (T, {"ts": "2026-11-22T08:00:00+08:00", "seq": 1, "floor": 2, "motor_temp_c": 41.0}))
    row = state(db, eid)
    assert row["last_values"] == {"floor": 4, "load_pct": 12.5, "motor_temp_c": 41.0}
    assert row["last_ts"] == datetime(2026, 11, 22, 0, 1, 0, tzinfo=UTC)
    write(db_url, (T, {"ts": "2026-11-22T08:02:00+08:00", "seq": 10, "floor": 5}))
    assert state(db, eid)["last_values"] == {"floor": 5, "load_pct": 12.5, "motor_temp_c": 41.0}


def test_status_event_and_telemetry_of_one_equipment_in_one_batch_make_one_state_row(db, db_url):
    eid = register_equipment(db, "EL-0001")
    other = register_equipment(db, "EL-0002")
    write(db_url,
          ("sem/v1/elevator/EL-0001/status", "offline"),
          (T, {"ts": "2026-11-22T08:00:00+08:00", "seq": 1, "floor": 3}),
          ("sem/v1/elevator/EL-0001/event",
           {"ts": "2026-11-22T08:00:01+08:00", "seq": 2, "code": "entrapment", "state": "raised"}),
          ("sem/v1/elevator/EL-0002/event",
           {"ts": "2026-11-22T08:00:01+08:00", "seq": 1, "code": "entrapment", "state": "raised"}))
    row = state(db, eid)
    assert (row["status"], row["last_values"]) == ("offline", {"floor": 3})
    other_row = state(db, other)
    assert (other_row["status"], other_row["last_values"], other_row["last_ts"]) == ("online", {}, None)
    # A message with no contract field still proves the monitor alive and moves last_ts.
    write(db_url, (T, {"ts": "2026-11-22T08:05:00+08:00", "seq": 5, "cabin_co2_ppm": 600}))
    row = state(db, eid)
    assert (row["status"], row["last_values"]) == ("online", {"floor": 3})
    assert row["last_ts"] == datetime(2026, 11, 22, 0, 5, 0, tzinfo=UTC)
