"""The telemetry rules running where the telemetry is stored: through the real broker, ingester and database."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from ingest.messages import Equipment, Event, Telemetry
from ingest.service import Ingester
from ingest.writer import BatchWriter, DatabaseLookup
from models.fault_events import fault_labels, fault_severities
from models.rule_expiry import expire_pending
from models.rules.engine import Detector
from models.rules.runtime import RuleRunner
from models.rules.settings import settings_from_config
from tests.conftest import register_equipment, wait_until

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
TOPIC = "sem/v1/elevator/{code}/telemetry"
# A car stopped between floors with a passenger and its door closed: an entrapment once it lasts 30 s.
TRAPPED = {"floor": 5, "direction": "stop", "speed_mps": 0.0, "door": "closed", "door_zone": False,
           "occupied": True, "mode": "normal", "safety_circuit_ok": True, "door_lock_ok": True}


def sample(seq: int, at_s: float, **changes) -> dict:
    return {"ts": (T0 + timedelta(seconds=at_s)).isoformat(), "seq": seq} | TRAPPED | changes


def entrapments(db, code: str) -> list[dict]:
    return db.execute("SELECT a.* FROM alerts a JOIN equipment e ON e.id = a.equipment_id"
                      " WHERE e.code = %s AND a.kind = 'entrapment' ORDER BY a.id", (code,)).fetchall()


def run_ingester(config) -> Ingester:
    ingester = Ingester(config)
    ingester.start()
    assert ingester.wait_connected(10), "ingester did not connect"
    return ingester


def test_an_entrapment_opens_once_its_dwell_has_passed_on_the_monitors_clock(config, db, publisher):
    register_equipment(db, "EL-RT1")
    ingester = run_ingester(config)
    try:
        for seq, at in enumerate(range(0, 29, 2)):  # 0 .. 28 s: not yet
            publisher.publish(TOPIC.format(code="EL-RT1"), sample(seq, at))
        wait_until(lambda: db.execute("SELECT count(*) AS n FROM telemetry_elevator").fetchone()["n"] == 15,
                   message="the first 28 s stored")
        assert entrapments(db, "EL-RT1") == []
        publisher.publish(TOPIC.format(code="EL-RT1"), sample(15, 30))
        [alert] = wait_until(lambda: entrapments(db, "EL-RT1"), message="the entrapment alert")
    finally:
        ingester.stop()
    assert (alert["source"], alert["sources"], alert["state"], alert["severity"]) == \
        ("rule", ["rule"], "open", "critical")
    assert alert["first_seen"] == T0 + timedelta(seconds=30)


def test_a_restart_in_the_middle_of_a_dwell_opens_the_alert_on_time(config, db, publisher):
    register_equipment(db, "EL-RT2")
    first = run_ingester(config)
    try:
        for seq, at in enumerate(range(0, 17, 2)):  # 16 s of the dwell
            publisher.publish(TOPIC.format(code="EL-RT2"), sample(seq, at))
        wait_until(lambda: db.execute("SELECT count(*) AS n FROM telemetry_elevator").fetchone()["n"] == 9,
                   message="the first half of the dwell stored")
    finally:
        first.stop()
    assert entrapments(db, "EL-RT2") == []
    second = run_ingester(config)  # a new process would start the same way: the state is in rule_state
    try:
        for seq, at in enumerate(range(18, 33, 2), start=9):
            publisher.publish(TOPIC.format(code="EL-RT2"), sample(seq, at))
        [alert] = wait_until(lambda: entrapments(db, "EL-RT2"), message="the entrapment after the restart")
    finally:
        second.stop()
    assert alert["first_seen"] == T0 + timedelta(seconds=30)


def test_two_ingesters_sharing_the_stream_judge_each_car_once(config, db, publisher):
    register_equipment(db, "EL-RT3")
    group = f"rules-{secrets.token_hex(3)}"
    ingesters = [run_ingester(config.replace(mqtt_client_id=f"semon-rt-{n}-{secrets.token_hex(2)}",
                                             mqtt_shared_group=group)) for n in (1, 2)]
    try:
        for seq, at in enumerate(range(0, 61, 2)):
            publisher.publish(TOPIC.format(code="EL-RT3"), sample(seq, at))
        wait_until(lambda: db.execute("SELECT count(*) AS n FROM telemetry_elevator").fetchone()["n"] == 31,
                   message="the whole stream stored")
        [alert] = wait_until(lambda: entrapments(db, "EL-RT3"), message="one entrapment alert")
    finally:
        for ingester in ingesters:
            ingester.stop()
    # One alert, not one per ingester. Each takes its turn on the car's rule state; a sample the other ingester
    # committed first with a later ts makes an earlier one late, so the dwell may be decided a sample later.
    assert alert["count"] == 1
    assert T0 + timedelta(seconds=30) <= alert["first_seen"] <= T0 + timedelta(seconds=34)


def detector(db, config) -> Detector:
    """The detector as the ingester builds it: settings from config, severities from the fault_codes table."""
    return Detector(settings_from_config(config), fault_severities(db), fault_labels(db))


def write(db, config, items: list) -> None:
    """Write a batch as the ingester's writer does, with the rules on."""
    with psycopg.connect(config.database_url, row_factory=dict_row) as conn:
        lookup = DatabaseLookup(conn)
        BatchWriter(conn, RuleRunner(detector(db, config), lookup.equipment_info)).write(items)


def telemetry(eid: int, code: str, seq: int, at_s: float) -> Telemetry:
    return Telemetry(Equipment(eid, code, "elevator"), T0 + timedelta(seconds=at_s), seq, dict(TRAPPED), {})


def test_the_monitors_own_report_and_the_rule_are_one_alert_with_both_sources(db, config):
    eid = register_equipment(db, "EL-RT4")
    car = Equipment(eid, "EL-RT4", "elevator")
    write(db, config, [Event(car, T0 + timedelta(seconds=20), 100, "entrapment", "raised", {"floor": 5})])
    write(db, config, [telemetry(eid, "EL-RT4", seq, at) for seq, at in enumerate(range(0, 41, 2))])
    [alert] = entrapments(db, "EL-RT4")
    assert (alert["source"], sorted(alert["sources"]), alert["state"]) == ("device", ["device", "rule"], "open")


def test_a_monitor_that_falls_silent_mid_dwell_still_reports_a_trapped_passenger(db, config):
    """Policy (docs/rules.md): a car that went silent while trapping a passenger (its monitor lost power with it)
    completes its entrapment dwell on the server's clock."""
    eid = register_equipment(db, "EL-RT5")
    write(db, config, [telemetry(eid, "EL-RT5", seq, at) for seq, at in enumerate(range(0, 11, 2))])  # 10 s held
    last_seen = db.execute("SELECT last_seen FROM equipment_state WHERE equipment_id = %s", (eid,)).fetchone()
    assert db.execute("SELECT pending FROM rule_state WHERE equipment_id = %s", (eid,)).fetchone()["pending"]
    rules = detector(db, config)
    with psycopg.connect(config.database_url, row_factory=dict_row) as conn:
        assert expire_pending(conn, last_seen["last_seen"] + timedelta(seconds=15), rules) == 0  # 25 s: not yet
        conn.commit()
        assert expire_pending(conn, last_seen["last_seen"] + timedelta(seconds=21), rules) == 1  # 31 s
        conn.commit()
    [alert] = entrapments(db, "EL-RT5")
    assert (alert["source"], alert["state"]) == ("rule", "open")



def test_a_normal_elevators_day_through_the_writer_raises_nothing(db, config):
    """A simulated day of the evaluation fleet's first elevator (trips, door cycles, idle with and without
    passengers, a maintenance visit, the field's noise and drop-outs), stored as the ingester stores it."""
    from tests.test_rules import Simulated, one_per_site_kind

    simulated = Simulated(one_per_site_kind()[0])
    equipment = simulated.simulation.devices[simulated.code].equipment
    eid = register_equipment(db, simulated.code, rated_speed_mps=equipment.rated_speed_mps, floors=equipment.floors)
    car = Equipment(eid, simulated.code, "elevator")
    samples = [s for batch in simulated.batches(simulated.first_visit_day() * 86400, 86400) for s in batch]
    assert len(samples) > 15000
    for start in range(0, len(samples), 1000):
        write(db, config, [Telemetry(car, s.ts, s.seq, dict(s.values), {}) for s in samples[start:start + 1000]])
    assert db.execute("SELECT count(*) AS n FROM telemetry_elevator").fetchone()["n"] == len(
        {(s.ts, s.seq) for s in samples})
    assert db.execute("SELECT kind, message FROM alerts").fetchall() == []
