"""`semon dead-letters replay|list` against the real database, with dead letters the real ingester kept: an installer
who published before registering loses nothing, and nothing is stored twice (docs/ingest.md, "Replaying dead
letters")."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from semon.dead_letters import parse_since, replay
from tests.conftest import register_equipment, wait_until

TS = "2026-11-22T08:00:0{}+08:00"


def dead_letters(db) -> list[dict]:
    return db.execute("SELECT topic, category, replay_result, replayed_at IS NOT NULL AS replayed FROM dead_letter"
                      " ORDER BY id").fetchall()


def n(db, sql: str, *params) -> int:
    return db.execute(sql, params).fetchone()["n"]


@pytest.fixture
def published_before_registering(db, ingester, publisher) -> None:
    """EL-NEW sent three telemetry messages, a fault event and its status before it was registered; EL-NEVER is
    never registered; one message of EL-NEW was not JSON (filed as unknown equipment: the code is checked first)."""
    for seq in (1, 2, 3):
        publisher.publish("sem/v1/elevator/EL-NEW/telemetry", {"ts": TS.format(seq), "seq": seq, "floor": seq})
    publisher.publish("sem/v1/elevator/EL-NEW/event",
                      {"ts": TS.format(4), "seq": 4, "code": "entrapment", "state": "raised"})
    publisher.publish("sem/v1/elevator/EL-NEW/status", "online")
    publisher.publish("sem/v1/elevator/EL-NEVER/telemetry", {"ts": TS.format(1), "seq": 1, "floor": 1})
    publisher.publish("sem/v1/elevator/EL-NEW/telemetry", b"{not json")
    wait_until(lambda: n(db, "SELECT count(*) AS n FROM dead_letter") == 7, message="seven dead letters")


def test_after_registering_a_replay_stores_what_the_monitor_sent_before(db, config, published_before_registering):
    eid = register_equipment(db, "EL-NEW")

    summary = replay(config)

    assert (summary.replayed, summary.written.stored, summary.written.duplicates, summary.skipped_statuses) == (
        4, 4, 0, 1)
    assert dict(summary.still_invalid) == {"unknown_equipment": 1, "not_json": 1}
    floors = db.execute("SELECT seq, floor FROM telemetry_elevator WHERE equipment_id = %s ORDER BY seq",
                        (eid,)).fetchall()
    assert [(r["seq"], r["floor"]) for r in floors] == [(1, 1), (2, 2), (3, 3)]
    # The fault event went the ingester's way: stored, and an alert for the firm.
    assert n(db, "SELECT count(*) AS n FROM events WHERE equipment_id = %s AND code = 'entrapment'", eid) == 1
    assert n(db, "SELECT count(*) AS n FROM alerts WHERE equipment_id = %s AND kind = 'entrapment'"
                 " AND state = 'open'", eid) == 1
    # Kept and marked, not deleted; the status was not replayed (an old "online" would be a lie now).
    assert dead_letters(db) == [
        {"topic": "sem/v1/elevator/EL-NEW/telemetry", "category": "unknown_equipment", "replay_result": "replayed",
         "replayed": True}] * 3 + [
        {"topic": "sem/v1/elevator/EL-NEW/event", "category": "unknown_equipment", "replay_result": "replayed",
         "replayed": True},
        {"topic": "sem/v1/elevator/EL-NEW/status", "category": "unknown_equipment", "replay_result": "skipped",
         "replayed": True},
        {"topic": "sem/v1/elevator/EL-NEVER/telemetry", "category": "unknown_equipment", "replay_result": None,
         "replayed": False},
        {"topic": "sem/v1/elevator/EL-NEW/telemetry", "category": "unknown_equipment", "replay_result": None,
         "replayed": False}]
    assert n(db, "SELECT count(*) AS n FROM equipment_state WHERE equipment_id = %s AND status = 'online'",
             eid) == 1  # proof of life from the replayed telemetry, as the ingester would set it


def test_a_second_replay_stores_nothing_twice(db, config, published_before_registering):
    eid = register_equipment(db, "EL-NEW")
    replay(config)

    again = replay(config)
    assert (again.replayed, again.written.stored) == (0, 0)
    # Even with its marks lost, a replay finds every message already stored.
    db.execute("UPDATE dead_letter SET replayed_at = NULL, replay_result = NULL")
    forced = replay(config)

    assert (forced.replayed, forced.written.stored, forced.written.duplicates) == (4, 0, 4)
    assert n(db, "SELECT count(*) AS n FROM telemetry_elevator WHERE equipment_id = %s", eid) == 3
    assert n(db, "SELECT count(*) AS n FROM events WHERE equipment_id = %s", eid) == 1
    assert n(db, "SELECT count(*) AS n FROM alerts WHERE equipment_id = %s", eid) == 1


def test_replay_takes_only_the_reason_and_period_asked_for(db, config):
    register_equipment(db, "EL-1")
    rows = [("2026-11-01T10:00:00+08:00", "unknown_equipment", 1),
            ("2026-11-20T10:00:00+08:00", "unknown_equipment", 2), ("2026-11-20T10:00:00+08:00", "wrong_type", 3)]
    for received_at, category, seq in rows:
        db.execute("INSERT INTO dead_letter (received_at, topic, payload, reason, category)"
                   " VALUES (%s, %s, %s, %s, %s)",
                   (received_at, "sem/v1/elevator/EL-1/telemetry",
                    f'{{"ts": "2026-11-20T10:00:00+08:00", "seq": {seq}}}'.encode(), "as the ingester said", category))

    summary = replay(config, "unknown_equipment", parse_since("2026-11-10", config.time_zone))

    assert (summary.replayed, summary.written.stored) == (1, 1)
    assert [r["seq"] for r in db.execute("SELECT seq FROM telemetry_elevator")] == [2]


def test_since_reads_an_age_a_local_date_or_a_time():
    now = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert parse_since("12h", "Asia/Shanghai", now) == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-20", "Asia/Shanghai", now) == datetime(2026, 11, 19, 16, 0, tzinfo=UTC)
    assert parse_since("2026-11-20T08:00:00+08:00", "Asia/Shanghai", now) == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="needs its UTC offset"):
        parse_since("2026-11-20T08:00:00", "Asia/Shanghai", now)
    with pytest.raises(ValueError, match="is not an age"):
        parse_since("last week", "Asia/Shanghai", now)


def test_the_commands_list_the_dead_letters_by_reason_and_replay_them(db, db_url, published_before_registering):
    env = {**os.environ, "SEMON_DATABASE_URL": db_url}

    def semon(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "semon.cli", "dead-letters", *args], capture_output=True,
                              text=True, timeout=60, env=env)

    listed = semon("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["reason", "waiting", "replayed", "oldest", "waiting", "codes", "most", "seen"]
    assert [line.split()[:3] for line in lines[1:]] == [["unknown_equipment", "7", "0"]]
    assert lines[1].endswith("EL-NEW ×6, EL-NEVER ×1")

    register_equipment(db, "EL-NEW")
    replayed = semon("replay", "--reason", "unknown_equipment")
    assert (replayed.returncode, replayed.stderr) == (0, "")
    assert replayed.stdout == ("replayed 4 dead letter(s): 4 stored, 0 already stored; 1 status message(s) not "
                               "replayed (a status counts only when it is sent); 2 still invalid, kept "
                               "(not_json 1, unknown_equipment 1)\n")
    assert [line.split()[:3] for line in semon("list").stdout.splitlines()[1:]] == [
        ["unknown_equipment", "2", "5"]]
