"""The ingester against a real Mosquitto and a real TimescaleDB."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.service import Ingester
from tests.conftest import register_equipment, wait_until

TS = "2026-11-22T08:00:00+08:00"


def count(db, sql: str, *params) -> int:
    return db.execute(sql, params).fetchone()["n"]


def test_it_stores_telemetry_with_typed_columns_and_extra_fields(db, ingester, publisher):
    eid = register_equipment(db, "EL-0001")
    publisher.publish("sem/v1/elevator/EL-0001/telemetry",
                      {"ts": TS, "seq": 1, "floor": 5, "door": "closed", "occupied": True, "speed_mps": 0,
                       "run_count": 1200, "cabin_co2_ppm": 612})
    row = wait_until(lambda: db.execute("SELECT * FROM telemetry_elevator WHERE equipment_id = %s",
                                        (eid,)).fetchone(), message="the telemetry row")
    assert (row["floor"], row["door"], row["occupied"], row["run_count"]) == (5, "closed", True, 1200)
    assert row["extra"] == {"cabin_co2_ppm": 612}
    state = db.execute("SELECT * FROM equipment_state WHERE equipment_id = %s", (eid,)).fetchone()
    assert state["status"] == "online" and state["last_values"]["floor"] == 5


def test_it_stores_a_redelivered_message_once(db, ingester, publisher):
    eid = register_equipment(db, "EL-0002")
    message = {"ts": TS, "seq": 9, "floor": 1}
    for _ in range(3):
        publisher.publish("sem/v1/elevator/EL-0002/telemetry", message)
    publisher.publish("sem/v1/elevator/EL-0002/telemetry", {"ts": TS, "seq": 10, "floor": 2})
    wait_until(lambda: count(db, "SELECT count(*) AS n FROM telemetry_elevator WHERE seq = 10") == 1,
               message="the last message")
    wait_until(lambda: ingester.totals.duplicates == 2, message="duplicates counted")
    assert count(db, "SELECT count(*) AS n FROM telemetry_elevator WHERE equipment_id = %s", eid) == 2


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("sem/v1/elevator/EL-0003/telemetry", b"\x00not json at all", "payload is not JSON"),
    ("sem/v1/elevator/EL-0003/telemetry", {"ts": TS, "seq": 1, "floor": "third"}, "field floor must be an integer"),
    ("sem/v1/elevator/EL-9999/telemetry", {"ts": TS, "seq": 1, "floor": 3}, "unknown equipment 'EL-9999'"),
    ("sem/v1/elevator/EL-0003/telemetry", {"ts": TS, "seq": 1, "floor": 2.5, "occupied": "yes"},
     'field floor must be an integer, got 2.5; field occupied must be true or false, got "yes"'),
    ("sem/v1/elevator/EL-0003/telemetry", {"ts": 1795341600, "seq": 1, "floor": 3},
     "ts 1795341600 is epoch seconds (as milliseconds it falls in 1970): send epoch milliseconds or RFC 3339"),
])
def test_it_dead_letters_bad_messages_and_keeps_running(db, ingester, publisher, topic, payload, reason):
    register_equipment(db, "EL-0003")
    publisher.publish(topic, payload)
    dead = wait_until(lambda: db.execute("SELECT topic, payload, reason FROM dead_letter WHERE topic = %s",
                                         (topic,)).fetchone(),
                      message="the dead letter")
    assert dead["topic"] == topic and reason in dead["reason"]
    if isinstance(payload, bytes):
        assert bytes(dead["payload"]) == payload
    publisher.publish("sem/v1/elevator/EL-0003/telemetry", {"ts": TS, "seq": 2, "floor": 4})
    wait_until(lambda: count(db, "SELECT count(*) AS n FROM telemetry_elevator WHERE seq = 2") == 1,
               message="a good message after the bad one")


def test_an_impossible_value_is_refused_alone_and_a_misspelt_field_reported_both_where_the_vendor_sees_them(
        db, ingester, publisher):
    eid = register_equipment(db, "EL-0007")
    topic = "sem/v1/elevator/EL-0007/telemetry"
    message = {"ts": TS, "seq": 5, "floor": 7, "load_pct": -12.5, "speed_ms": 1.6, "door": "closed"}
    publisher.publish(topic, message)
    publisher.publish(topic, message)  # a QoS 1 redelivery reports its fields once
    publisher.publish(topic, {"ts": TS, "seq": 6, "floor": 8})
    wait_until(lambda: count(db, "SELECT count(*) AS n FROM telemetry_elevator WHERE seq = 6") == 1,
               message="the message after the redelivery")
    row = db.execute("SELECT floor, door, load_pct, extra FROM telemetry_elevator WHERE seq = 5").fetchone()
    assert row == {"floor": 7, "door": "closed", "load_pct": None, "extra": {"speed_ms": 1.6}}
    reported = db.execute("SELECT ts, equipment_id, topic, seq, field, value, reason, stored FROM rejected_fields "
                          "ORDER BY field").fetchall()
    ts = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert reported == [
        {"ts": ts, "equipment_id": eid, "topic": topic, "seq": 5, "field": "load_pct", "value": -12.5,
         "reason": "field load_pct must be between 0 and 300, got -12.5 (a load is never negative, and a car's "
                   "floor area keeps it far below 3 times its rated load)", "stored": False},
        {"ts": ts, "equipment_id": eid, "topic": topic, "seq": 5, "field": "speed_ms", "value": 1.6,
         "reason": "unknown field; did you mean speed_mps?", "stored": True},
    ]
    assert count(db, "SELECT count(*) AS n FROM dead_letter") == 0
    # Neither the refused value nor the misspelt field reaches the equipment's latest state.
    state = db.execute("SELECT last_values FROM equipment_state WHERE equipment_id = %s", (eid,)).fetchone()
    assert state["last_values"] == {"floor": 8, "door": "closed"}
    wait_until(lambda: (ingester.totals.fields_refused, ingester.totals.fields_misspelt) == (1, 1),
               message="the refused and misspelt fields counted once")
    samples = {s.name: s.value for m in ingester.metrics.registry.collect() for s in m.samples}
    assert (samples["semon_ingest_fields_refused_total"], samples["semon_ingest_fields_misspelt_total"]) == (1, 1)


def test_it_stores_events_and_status(db, ingester, publisher):
    eid = register_equipment(db, "EL-0004")
    publisher.publish("sem/v1/elevator/EL-0004/event",
                      {"ts": TS, "seq": 3, "code": 90, "state": "raised", "detail": {"floor": 2}})
    event = wait_until(lambda: db.execute("SELECT * FROM events").fetchone(), message="the event")
    assert (event["code"], event["state"], event["detail"]) == ("alarm_button", "raised", {"floor": 2})
    publisher.publish("sem/v1/elevator/EL-0004/status", "offline", retain=True)
    wait_until(lambda: db.execute("SELECT status FROM equipment_state WHERE equipment_id = %s AND "
                                  "status = 'offline'", (eid,)).fetchone(), message="offline status")
    publisher.publish("sem/v1/elevator/EL-0004/status", b"", retain=True)  # clear the retained status


def test_it_redelivers_what_was_not_committed_after_a_restart(db, config, publisher):
    """Messages published while the ingester is down wait in its persistent session."""
    register_equipment(db, "EL-0005")
    first = Ingester(config)
    first.start()
    assert first.wait_connected(10)
    first.stop()
    for seq in range(50):
        publisher.publish("sem/v1/elevator/EL-0005/telemetry", {"ts": TS, "seq": seq, "floor": seq % 10})
    second = Ingester(config)
    second.start()
    try:
        wait_until(lambda: count(db, "SELECT count(*) AS n FROM telemetry_elevator") == 50, timeout=15,
                   message="all 50 queued messages")
    finally:
        second.stop()


def test_a_value_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_stored(db, config, publisher):
    """The parser accepts a NUL character in a string, PostgreSQL's jsonb does not: the writer falls back to one
    message at a time, so the batch's other messages are stored and the refused one is kept with the reason."""
    register_equipment(db, "EL-0006")
    first = Ingester(config)
    first.start()
    assert first.wait_connected(10)
    first.stop()
    topic = "sem/v1/elevator/EL-0006/telemetry"
    for seq in range(20):  # queued in the session while no ingester runs: they arrive as one batch
        extra = {"note": "door\u0000sensor"} if seq == 7 else {"load_pct": -1} if seq == 3 else {}
        publisher.publish(topic, {"ts": TS, "seq": seq, "floor": seq % 10} | extra)
    second = Ingester(config)
    second.start()
    try:
        dead = wait_until(lambda: db.execute("SELECT payload, reason FROM dead_letter").fetchone(), timeout=15,
                          message="the refused message kept as a dead letter")
        wait_until(lambda: count(db, "SELECT count(*) AS n FROM telemetry_elevator") == 19, timeout=15,
                   message="the other 19 messages of the batch")
    finally:
        second.stop()
    assert dead["reason"].startswith("database refused the values")
    assert b'"seq":7' in bytes(dead["payload"]).replace(b" ", b"")
    assert count(db, "SELECT count(*) AS n FROM telemetry_elevator WHERE seq = 7") == 0
    # The refused field of another message of the batch is kept once: its first write was rolled back with the batch.
    assert db.execute("SELECT seq, field, value FROM rejected_fields").fetchall() == [
        {"seq": 3, "field": "load_pct", "value": -1}]
