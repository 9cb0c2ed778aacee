"""Registering an equipment takes effect for the ingester at once (docs/ingest.md, "Registering takes effect at
once"): the registry tables notify, the ingester's cache listens, and an unknown code is looked up on its own,
within a budget, before it is dead-lettered."""

from __future__ import annotations

from ingest.writer import DatabaseLookup
from semon.db import connect
from tests.conftest import register_equipment, wait_until

TS = "2026-11-22T08:00:00+08:00"


def test_a_monitor_registered_right_after_its_code_was_unknown_is_stored_at_once(db, ingester, publisher):
    # The first message of an unregistered code makes the cache reload; before notifications, the next reload was
    # 5 s away, and the monitor's first messages after its registration were dead-lettered meanwhile.
    publisher.publish("sem/v1/elevator/EL-NEW/telemetry", {"ts": TS, "seq": 1, "floor": 1})
    wait_until(lambda: db.execute("SELECT 1 FROM dead_letter").fetchone(), message="the first dead letter")

    eid = register_equipment(db, "EL-NEW")
    publisher.publish("sem/v1/elevator/EL-NEW/telemetry", {"ts": TS, "seq": 2, "floor": 2})

    row = wait_until(lambda: db.execute("SELECT floor FROM telemetry_elevator WHERE equipment_id = %s AND seq = 2",
                                        (eid,)).fetchone(), timeout=3, message="the message after registering")
    assert row["floor"] == 2
    assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 1


def test_a_change_of_type_in_the_registry_applies_to_the_next_message(db, ingester, publisher):
    eid = register_equipment(db, "ES-1", "elevator")
    publisher.publish("sem/v1/elevator/ES-1/telemetry", {"ts": TS, "seq": 1, "floor": 1})
    wait_until(lambda: db.execute("SELECT 1 FROM telemetry_elevator").fetchone(), message="the elevator row")

    db.execute("UPDATE equipment SET type = 'escalator', rated_speed_mps = NULL, floors = NULL WHERE id = %s", (eid,))
    publisher.publish("sem/v1/escalator/ES-1/telemetry", {"ts": TS, "seq": 2, "running": True})

    row = wait_until(lambda: db.execute("SELECT running FROM telemetry_escalator WHERE seq = 2").fetchone(),
                     timeout=3, message="the escalator row")
    assert row["running"] is True
    assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0


def test_the_lookup_finds_a_code_registered_after_it_loaded_without_waiting_for_a_reload(db, db_url):
    with connect(db_url) as conn:
        lookup = DatabaseLookup(conn, reload_interval_s=3600)
        eid = register_equipment(db, "EL-LATE")

        found = lookup.equipment("EL-LATE")

    assert found is not None
    assert (found.id, found.code, found.type) == (eid, "EL-LATE", "elevator")


def test_a_code_looked_up_in_vain_is_found_once_registered_by_the_registrys_notification(db, db_url):
    with connect(db_url) as conn:
        lookup = DatabaseLookup(conn, reload_interval_s=3600)
        assert lookup.equipment("EL-LATE") is None  # looked up on its own, and not again until the registry changes
        eid = register_equipment(db, "EL-LATE")

        found = wait_until(lambda: lookup.equipment("EL-LATE"), timeout=2, message="the registered code")

    assert (found.id, found.code, found.type) == (eid, "EL-LATE", "elevator")


def test_a_flood_of_unknown_codes_costs_the_database_at_most_the_look_up_budget(db, db_url):
    with connect(db_url) as conn:
        lookup = DatabaseLookup(conn, reload_interval_s=3600, direct_checks_per_s=5)
        looked_up: list[str] = []
        check = lookup._check
        lookup._check = lambda code: looked_up.append(code) or check(code)  # type: ignore[method-assign]

        for n in range(1000):
            assert lookup.equipment(f"FAKE-{n % 200}") is None

    # The budget holds 5 look-ups and refills at 5 a second; the loop takes well under a second. Each code is
    # looked up once until the registry changes.
    assert 5 <= len(looked_up) <= 9
    assert len(set(looked_up)) == len(looked_up)
