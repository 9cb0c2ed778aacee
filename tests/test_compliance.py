"""Compliance rules, statuses, alerts and reminders, with fixed dates against the real database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from models.compliance import (
    STATUS_SQL,
    STATUSES,
    CheckStatus,
    compliance_statuses,
    rules_from_config,
    scan_compliance,
    sync_rules,
)
from semon.config import load_config
from semon.migrate import MIGRATIONS_DIR
from semon.registry.importer import import_records_csv
from tests.conftest import register_equipment

AS_OF = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def cdb(db):
    """The test database with the default rules in compliance_rules (the db fixture empties it)."""
    sync_rules(db, rules_from_config())
    return db


def record(db, eid: int, check: str, on: str | date, result: str = "pass", rectify_by: str | None = None) -> None:
    if check == "maintenance":
        db.execute("""INSERT INTO maintenance_records (equipment_id, performed_on, result, rectify_by)
                      VALUES (%s, %s, %s, %s)""", (eid, on, result, rectify_by))
    else:
        db.execute("""INSERT INTO inspections (equipment_id, kind, performed_on, result, rectify_by)
                      VALUES (%s, %s, %s, %s, %s)""", (eid, check, on, result, rectify_by))


def status(db, eid: int, check: str, as_of: date = AS_OF) -> CheckStatus:
    [found] = [s for s in compliance_statuses(db, as_of, equipment_ids=[eid]) if s.check == check]
    return found


def update(db, eid: int, **columns) -> None:
    sets = ", ".join(f"{k} = %({k})s" for k in columns)
    db.execute(f"UPDATE equipment SET {sets} WHERE id = %(id)s", {**columns, "id": eid})


# Every row of the rule table (docs/compliance.md): the check, one record, and the due date it gives.
@pytest.mark.parametrize(("equipment_type", "check", "performed", "due"), [
    ("elevator", "periodic_inspection", "2026-03-10", "2027-03-10"),
    ("escalator", "periodic_inspection", "2026-03-10", "2027-03-10"),
    ("elevator", "maintenance", "2026-11-10", "2026-11-25"),
    ("escalator", "maintenance", "2026-11-10", "2026-11-25"),
    ("elevator", "governor_calibration", "2025-12-01", "2027-12-01"),
    ("elevator", "rescue_drill", "2026-09-01", "2027-03-01"),
    ("escalator", "rescue_drill", "2026-09-01", "2027-03-01"),
    ("boiler", "periodic_inspection", "2026-04-01", "2027-04-01"),
    ("boiler", "internal_inspection", "2025-04-01", "2027-04-01"),
    ("boiler", "water_quality_test", "2026-10-15", "2027-01-15"),
    ("pressure_vessel", "periodic_inspection", "2024-04-01", "2030-04-01"),
    ("boiler", "safety_valve_calibration", "2026-04-01", "2027-04-01"),
    ("pressure_vessel", "safety_valve_calibration", "2026-04-01", "2027-04-01"),
    ("boiler", "pressure_gauge_verification", "2026-08-01", "2027-02-01"),
    ("pressure_vessel", "pressure_gauge_verification", "2026-08-01", "2027-02-01"),
])
def test_every_row_of_the_rule_table(cdb, equipment_type, check, performed, due):
    eid = register_equipment(cdb, "EQ-1", equipment_type)
    record(cdb, eid, check, performed)
    found = status(cdb, eid, check)
    assert (found.last_on, found.due_on) == (date.fromisoformat(performed), date.fromisoformat(due))
    assert found.status in ("ok", "due_soon")


def test_each_type_owes_its_checks_and_nothing_else(cdb):
    owed = {}
    for equipment_type in ("elevator", "escalator", "boiler", "pressure_vessel"):
        eid = register_equipment(cdb, f"EQ-{equipment_type}", equipment_type)
        owed[equipment_type] = sorted(s.check for s in compliance_statuses(cdb, AS_OF, equipment_ids=[eid]))
    assert owed == {
        "elevator": ["governor_calibration", "maintenance", "periodic_inspection", "rescue_drill"],
        "escalator": ["maintenance", "periodic_inspection", "rescue_drill"],
        "boiler": ["internal_inspection", "periodic_inspection", "pressure_gauge_verification",
                   "safety_valve_calibration", "water_quality_test"],
        "pressure_vessel": ["periodic_inspection", "pressure_gauge_verification", "safety_valve_calibration"],
    }


def test_pressure_vessel_first_inspection_then_by_safety_grade(cdb):
    new = register_equipment(cdb, "PV-1", "pressure_vessel", install_date="2024-03-01")
    update(cdb, new, commissioning_date=date(2024, 5, 15), safety_grade=2)
    assert (status(cdb, new, "periodic_inspection").due_on, status(cdb, new, "periodic_inspection").status) \
        == (date(2027, 5, 15), "never_recorded")
    no_commissioning = register_equipment(cdb, "PV-2", "pressure_vessel", install_date="2023-10-01")
    assert status(cdb, no_commissioning, "periodic_inspection").due_on == date(2026, 10, 1)
    assert status(cdb, no_commissioning, "periodic_inspection").status == "overdue"
    grade3 = register_equipment(cdb, "PV-3", "pressure_vessel")
    update(cdb, grade3, safety_grade=3)
    record(cdb, new, "periodic_inspection", "2025-01-10")
    record(cdb, grade3, "periodic_inspection", "2025-01-10")
    assert status(cdb, new, "periodic_inspection").due_on == date(2031, 1, 10)
    assert status(cdb, grade3, "periodic_inspection").due_on == date(2028, 1, 10)


def test_boiler_internal_inspection_first_after_twelve_months(cdb):
    eid = register_equipment(cdb, "BO-1", "boiler", install_date="2025-12-01")
    update(cdb, eid, commissioning_date=date(2026, 2, 10))
    assert status(cdb, eid, "internal_inspection").due_on == date(2027, 2, 10)
    # The other boiler checks have no first-interval rule: one interval after commissioning.
    assert status(cdb, eid, "periodic_inspection").due_on == date(2027, 2, 10)
    record(cdb, eid, "internal_inspection", "2027-01-05")
    assert status(cdb, eid, "internal_inspection").due_on == date(2029, 1, 5)


@pytest.mark.parametrize(("install", "governor", "calibrated", "due"), [
    ("2005-01-01", None, "2025-06-01", "2026-06-01"),          # lift (and governor) 20 years old: yearly
    ("2005-01-01", "2020-03-01", "2025-06-01", "2027-06-01"),  # governor replaced in 2020: every 2 years
    ("2011-06-01", None, "2026-05-31", "2028-05-31"),          # 15 years on 2026-06-01: not yet older
    ("2011-06-01", None, "2026-06-02", "2027-06-02"),          # older than 15 years at the calibration
])
def test_governor_calibration_yearly_once_the_governor_is_older_than_15_years(cdb, install, governor, calibrated,
                                                                              due):
    eid = register_equipment(cdb, "EL-G", install_date=install)
    if governor:
        update(cdb, eid, governor_install_date=date.fromisoformat(governor))
    record(cdb, eid, "governor_calibration", calibrated)
    assert status(cdb, eid, "governor_calibration", date(2026, 6, 3)).due_on == date.fromisoformat(due)


def test_a_failed_result_opens_a_rectification_deadline(cdb):
    eid = register_equipment(cdb, "EL-F")
    record(cdb, eid, "periodic_inspection", "2026-11-01", result="fail")
    found = status(cdb, eid, "periodic_inspection")
    assert (found.due_on, found.status) == (date(2026, 12, 1), "due_soon")
    assert status(cdb, eid, "periodic_inspection", date(2026, 12, 2)).status == "overdue"
    other = register_equipment(cdb, "EL-F2")
    record(cdb, other, "periodic_inspection", "2026-11-01", result="fail", rectify_by="2026-11-15")
    assert status(cdb, other, "periodic_inspection").status == "overdue"
    record(cdb, other, "periodic_inspection", "2026-11-20", result="pass_after_rectification")
    found = status(cdb, other, "periodic_inspection")
    assert (found.due_on, found.status) == (date(2027, 11, 20), "ok")
    # A failed maintenance visit still falls due 15 days on, before its 30-day rectification deadline.
    record(cdb, eid, "maintenance", "2026-11-20", result="fail")
    assert status(cdb, eid, "maintenance").due_on == date(2026, 12, 5)


@pytest.mark.parametrize(("enrolled", "cycle", "monitor", "last_seen", "due"), [
    (True, 30, "online", NOW - timedelta(minutes=2), "2026-12-10"),   # enrolled, monitor online: the firm's cycle
    (True, 30, "offline", NOW - timedelta(hours=2), "2026-11-25"),    # monitor offline: 15 days
    (True, 30, "online", NOW - timedelta(days=3), "2026-11-25"),      # not heard from for days: 15 days
    (True, 30, None, None, "2026-11-25"),                             # no monitor at all
    (True, None, "online", NOW, "2026-11-25"),                        # no approved cycle
    (False, 30, "online", NOW, "2026-11-25"),                         # not enrolled
])
def test_on_demand_maintenance_needs_an_online_monitor(cdb, enrolled, cycle, monitor, last_seen, due):
    eid = register_equipment(cdb, "EL-OD")
    update(cdb, eid, on_demand_maintenance=enrolled, maintenance_cycle_days=cycle)
    if monitor:
        cdb.execute("INSERT INTO equipment_state (equipment_id, status, last_seen) VALUES (%s, %s, %s)",
                    (eid, monitor, last_seen))
    record(cdb, eid, "maintenance", "2026-11-10")
    assert status(cdb, eid, "maintenance").due_on == date.fromisoformat(due)


def test_suspended_and_scrapped_equipment_are_left_out(cdb):
    in_use = register_equipment(cdb, "EL-U")
    register_equipment(cdb, "EL-S", status="suspended")
    register_equipment(cdb, "EL-X", status="scrapped")
    assert {s.equipment_id for s in compliance_statuses(cdb, AS_OF)} == {in_use}


@pytest.mark.parametrize(("check", "performed", "due"), [
    ("periodic_inspection", "2024-02-29", "2025-02-28"),   # leap day + 12 months
    ("rescue_drill", "2025-08-31", "2026-02-28"),          # month end + 6 months
    ("rescue_drill", "2023-08-31", "2024-02-29"),          # into a leap February
    ("periodic_inspection", "2023-02-28", "2024-02-28"),   # not moved to the 29th
    ("maintenance", "2024-02-20", "2024-03-06"),           # days count across the 29th
    ("governor_calibration", "2026-01-31", "2028-01-31"),
])
def test_month_ends_and_leap_days(cdb, check, performed, due):
    eid = register_equipment(cdb, "EL-M", install_date="2020-01-01")
    record(cdb, eid, check, performed)
    assert status(cdb, eid, check).due_on == date.fromisoformat(due)


def test_water_quality_month_end_into_february(cdb):
    eid = register_equipment(cdb, "BO-M", "boiler")
    record(cdb, eid, "water_quality_test", "2023-11-30")
    assert status(cdb, eid, "water_quality_test").due_on == date(2024, 2, 29)


@pytest.mark.parametrize(("check", "days_to_due", "expected"), [
    ("periodic_inspection", -1, "overdue"), ("periodic_inspection", 0, "due_soon"),
    ("periodic_inspection", 30, "due_soon"), ("periodic_inspection", 31, "ok"),
    # A 15-day cycle would always be within 30 days: maintenance has its own 3-day window.
    ("maintenance", -1, "overdue"), ("maintenance", 0, "due_soon"), ("maintenance", 3, "due_soon"),
    ("maintenance", 4, "ok"),
])
def test_due_soon_boundaries(cdb, check, days_to_due, expected):
    eid = register_equipment(cdb, "EL-B")
    due = AS_OF + timedelta(days=days_to_due)
    record(cdb, eid, check, due - timedelta(days=15) if check == "maintenance" else due.replace(year=due.year - 1))
    found = status(cdb, eid, check)
    assert (found.due_on - AS_OF).days == days_to_due and found.status == expected


def test_never_recorded_and_the_window_from_config(cdb):
    eid = register_equipment(cdb, "EL-N", install_date="2026-11-01")
    statuses = {s.check: s for s in compliance_statuses(cdb, AS_OF, equipment_ids=[eid])}
    assert (statuses["maintenance"].due_on, statuses["maintenance"].status) == (date(2026, 11, 16), "overdue")
    assert statuses["periodic_inspection"].status == "never_recorded"
    assert statuses["periodic_inspection"].last_on is None
    assert {s.status for s in statuses.values()} <= set(STATUSES)
    config = load_config(environ={}).replace(compliance_due_soon_days=7, rescue_drill_months=3)
    assert sync_rules(cdb, rules_from_config(config)) is True
    assert sync_rules(cdb, rules_from_config(config)) is False
    record(cdb, eid, "periodic_inspection", "2025-12-10")   # due 2026-12-10: 18 days, outside a 7-day window
    record(cdb, eid, "rescue_drill", "2026-10-01")
    assert status(cdb, eid, "periodic_inspection").status == "ok"
    assert status(cdb, eid, "rescue_drill").due_on == date(2027, 1, 1)


def test_the_migration_seeds_the_default_rules(cdb):
    text = (MIGRATIONS_DIR / "0005_compliance.sql").read_text()
    insert = text[text.index("INSERT INTO compliance_rules"):]
    cdb.execute("DELETE FROM compliance_rules")
    cdb.execute(insert[:insert.index(";") + 1])
    assert sync_rules(cdb, rules_from_config()) is False


def test_status_sql_falls_back_to_the_defaults_while_the_rule_table_is_empty(cdb):
    register_equipment(cdb, "EL-Q")
    cdb.execute("DELETE FROM compliance_rules")
    rows = cdb.execute(STATUS_SQL + " ORDER BY 1, 6", {"as_of": AS_OF}).fetchall()
    assert [CheckStatus(**r) for r in rows] == compliance_statuses(cdb, AS_OF) and len(rows) == 4


def alerts(db):
    return db.execute("SELECT * FROM alerts ORDER BY id").fetchall()


def test_one_alert_per_overdue_check_routed_to_firm_and_use_unit_and_resolved_by_a_record(cdb):
    eid = register_equipment(cdb, "EL-AL", install_date="2020-01-01", use_unit="Xuhui Garden Property")
    suspended = register_equipment(cdb, "EL-AS", status="suspended")
    record(cdb, eid, "periodic_inspection", "2025-11-01")   # overdue since 2026-11-01
    record(cdb, eid, "maintenance", "2026-11-15")           # in date
    record(cdb, eid, "governor_calibration", "2025-06-01")  # in date
    record(cdb, eid, "rescue_drill", "2026-06-01")          # in date
    record(cdb, suspended, "periodic_inspection", "2020-01-01")
    first = scan_compliance(cdb, AS_OF, NOW)
    again = scan_compliance(cdb, AS_OF, NOW + timedelta(minutes=1))
    assert (first.overdue, first.raised, again.overdue, again.raised) == (1, 1, 1, 0)
    [alert] = alerts(cdb)
    assert (alert["equipment_id"], alert["kind"], alert["source"], alert["count"]) == \
        (eid, "overdue:periodic_inspection", "compliance", 1)
    assert alert["message"] == "periodic inspection overdue since 2026-11-01"
    sent = cdb.execute("SELECT n.event, n.recipient, f.name AS firm, u.name AS use_unit FROM notifications n"
                       " LEFT JOIN maintenance_firms f ON f.id = n.firm_id"
                       " LEFT JOIN use_units u ON u.id = n.use_unit_id"
                       " WHERE alert_id IS NOT NULL ORDER BY n.recipient").fetchall()
    assert [(n["event"], n["recipient"], n["firm"], n["use_unit"]) for n in sent] == \
        [("raised", "firm", "Shenghui Elevator Service", None), ("raised", "use_unit", None, "Xuhui Garden Property")]
    record(cdb, eid, "periodic_inspection", "2026-11-20")
    done = scan_compliance(cdb, AS_OF, NOW + timedelta(minutes=2))
    assert (done.overdue, done.resolved) == (0, 1)
    assert alerts(cdb)[0]["state"] == "resolved"
    assert cdb.execute("SELECT count(*) AS n FROM notifications WHERE event = 'resolved'").fetchone()["n"] == 2


def test_never_inspected_equipment_is_overdue_one_interval_after_installation(cdb):
    for code, installed in (("EL-A8", "2025-11-01"), ("EL-A9", "2026-01-15")):
        eid = register_equipment(cdb, code, install_date=installed)
        record(cdb, eid, "maintenance", "2026-11-15")  # it has records: only the inspection was never recorded
    scan_compliance(cdb, AS_OF, NOW, grace_days=0)
    messages = [a["message"] for a in alerts(cdb) if a["kind"] == "overdue:periodic_inspection"]
    assert messages == ["periodic inspection overdue since 2026-11-01"]


def open_kinds(db) -> list[tuple[str, str]]:
    return [(r["code"], r["kind"]) for r in db.execute(
        "SELECT e.code, a.kind FROM alerts a JOIN equipment e ON e.id = a.equipment_id"
        " WHERE a.state <> 'resolved' ORDER BY 1, 2")]


def test_a_lift_registered_without_records_gets_one_notice_not_an_alert_per_check(cdb, config, tmp_path):
    # Installed in 2020 and registered today: every check it owes is "overdue since" years ago.
    eid = register_equipment(cdb, "EL-NEW", install_date="2020-03-01", use_unit="Tower N Property")
    result = scan_compliance(cdb, AS_OF, NOW)
    assert result.overdue == 4 and result.raised == 1
    assert open_kinds(cdb) == [("EL-NEW", "no_records")]
    [notice] = alerts(cdb)
    assert (notice["severity"], notice["detail"]) == ("low", {"first_due": "2020-03-16"})
    sent = {(r["event"], r["recipient"]) for r in cdb.execute("SELECT event, recipient FROM notifications")}
    assert sent == {("raised", "firm"), ("raised", "use_unit")}
    # A later scan neither repeats nor adds anything.
    assert scan_compliance(cdb, AS_OF, NOW + timedelta(minutes=1)).raised == 0
    # Its records are imported: the notice is resolved, and what is still overdue among recorded checks alerts.
    records = tmp_path / "records.csv"
    records.write_text("code,check,date,result\nEL-NEW,periodic_inspection,2025-10-01,pass\n"
                       "EL-NEW,maintenance,2026-11-15,pass\n", encoding="utf-8")
    import_records_csv(config, records)   # the periodic inspection is overdue since 2026-10-01
    after = scan_compliance(cdb, AS_OF, NOW + timedelta(minutes=2))
    assert after.resolved == 1
    # Governor calibration and rescue drill were never recorded: within the registration grace, no alert yet.
    assert open_kinds(cdb) == [("EL-NEW", "overdue:periodic_inspection")]
    cdb.execute("UPDATE equipment SET created_at = %s WHERE id = %s", (NOW - timedelta(days=31), eid))
    scan_compliance(cdb, AS_OF, NOW + timedelta(minutes=3))
    assert open_kinds(cdb) == [("EL-NEW", "overdue:governor_calibration"), ("EL-NEW", "overdue:periodic_inspection"),
                               ("EL-NEW", "overdue:rescue_drill")]


def reminders(db) -> list[tuple[str, int]]:
    return [(r["check_name"], r["days_before"]) for r in db.execute(
        "SELECT check_name, days_before FROM compliance_reminders ORDER BY id")]


def test_due_soon_reminders_at_30_7_and_1_days_each_once(cdb):
    eid = register_equipment(cdb, "EL-R", install_date="2020-01-01", use_unit="Tower B")
    due = date(2027, 1, 31)
    record(cdb, eid, "periodic_inspection", "2026-01-31")   # due 2027-01-31
    for check in ("maintenance", "governor_calibration", "rescue_drill"):
        record(cdb, eid, check, due - timedelta(days=1))     # far from due on every day below
    sent = []
    day = due - timedelta(days=40)
    while day <= due:
        sent.append(scan_compliance(cdb, day, NOW).reminders)
        day += timedelta(days=1)
    assert reminders(cdb) == [("periodic_inspection", 30), ("periodic_inspection", 7), ("periodic_inspection", 1)]
    assert sum(sent) == 3
    assert cdb.execute("SELECT count(*) AS n FROM notifications WHERE event = 'reminder'").fetchone()["n"] == 6


def test_a_reminder_first_seen_late_sends_only_the_most_urgent(cdb):
    eid = register_equipment(cdb, "EL-R2", install_date="2020-01-01")
    record(cdb, eid, "periodic_inspection", "2026-01-31")
    for check in ("maintenance", "governor_calibration", "rescue_drill"):
        record(cdb, eid, check, "2027-01-30")
    scan_compliance(cdb, date(2027, 1, 26), NOW)   # 5 days before
    scan_compliance(cdb, date(2027, 1, 27), NOW)
    assert reminders(cdb) == [("periodic_inspection", 7)]
    record(cdb, eid, "periodic_inspection", "2027-01-27")   # a new due date starts a new series
    scan_compliance(cdb, date(2027, 1, 28), NOW)
    assert reminders(cdb) == [("periodic_inspection", 7)]


def test_the_whole_fleet_query_agrees_with_the_per_equipment_one(cdb):
    ids = []
    for n, equipment_type in enumerate(("elevator", "escalator", "boiler", "pressure_vessel") * 3):
        eid = register_equipment(cdb, f"EQ-W{n}", equipment_type, install_date=f"20{10 + n}-03-31")
        ids.append(eid)
        if n % 3:
            update(cdb, eid, commissioning_date=date(2012 + n, 1, 31), safety_grade=1 + n % 3)
        for k, check in enumerate(("periodic_inspection", "maintenance", "rescue_drill", "water_quality_test",
                                   "safety_valve_calibration", "internal_inspection")):
            if (n + k) % 4:
                record(cdb, eid, check, date(2026, 1 + (n + k) % 11, 28) - timedelta(days=n),
                       result="fail" if (n + k) % 5 == 0 else "pass")
                record(cdb, eid, check, date(2025, 6, 30))
    register_equipment(cdb, "EQ-WS", status="suspended")
    ids.append(register_equipment(cdb, "EQ-WN", install_date="2026-10-01"))
    every = compliance_statuses(cdb, AS_OF)
    assert every == compliance_statuses(cdb, AS_OF, equipment_ids=ids)
    assert {"ok", "overdue", "never_recorded"} <= {s.status for s in every} <= set(STATUSES)
    assert len(every) == 3 * (4 + 3 + 5 + 3) + 4


def test_a_bad_interval_in_config_is_one_clear_error(tmp_path):
    from semon.config import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("pressure_vessel_inspection_months: 0\n")
    with pytest.raises(ConfigError) as failure:
        load_config(path, environ={})
    assert str(failure.value) == (f"{path}: pressure_vessel_inspection_months = 0: "
                                  "must be a whole number greater than 0")


def test_rules_follow_the_settings():
    config = load_config(environ={"SEMON_GOVERNOR_CALIBRATION_OLD_MONTHS": "6", "SEMON_WATER_QUALITY_TEST_MONTHS": "1"})
    rules = {(r.equipment_type, r.check_name): r for r in rules_from_config(config)}
    assert rules[("elevator", "governor_calibration")].old_months == 6
    assert rules[("boiler", "water_quality_test")].months == 1
    assert rules[("elevator", "maintenance")].on_demand and rules[("elevator", "maintenance")].due_soon_days == 3
    assert len(rules) == 15


def test_the_python_due_date_agrees_with_the_status_query_on_every_rule(cdb):
    """models.compliance.next_due (used where there is no database) and STATUS_SQL are one rule: random records
    of every (type, check), failed or not, with and without rectify_by, old governors, grade-3 vessels, on-demand
    lifts online and offline, and checks never recorded."""
    import random

    from models.compliance import next_due, rule_index

    rng = random.Random(20261201)
    rules = rule_index()
    cases = []
    for n in range(400):
        equipment_type, check = rng.choice(sorted(rules))
        install = date(1995, 1, 1) + timedelta(days=rng.randint(0, 11000))
        fields = {"type": equipment_type, "install_date": install,
                  "commissioning_date": rng.choice([None, install + timedelta(days=rng.randint(0, 90))]),
                  "safety_grade": rng.choice([None, 1, 2, 3, 4]) if equipment_type == "pressure_vessel" else None,
                  "governor_install_date": rng.choice([None, install + timedelta(days=rng.randint(0, 5000))])
                  if equipment_type == "elevator" else None,
                  "on_demand_maintenance": rng.random() < 0.5 and equipment_type in ("elevator", "escalator"),
                  "maintenance_cycle_days": rng.choice([None, 30, 45])
                  if equipment_type in ("elevator", "escalator") else None}
        online = rng.random() < 0.5
        eid = register_equipment(cdb, f"EQ-{n}", equipment_type, install_date=install,
                                 **{k: v for k, v in fields.items() if k not in ("type", "install_date")})
        cdb.execute("INSERT INTO equipment_state (equipment_id, status, last_seen) VALUES (%s, %s, %s)",
                    (eid, "online" if online else "offline", NOW))
        performed = rectify_by = None
        result = rng.choice(["pass", "pass_after_rectification", "fail"])
        if rng.random() < 0.85:
            performed = install + timedelta(days=rng.randint(0, (AS_OF - install).days))
            if result == "fail":
                rectify_by = rng.choice([None, performed + timedelta(days=rng.randint(0, 90))])
            record(cdb, eid, check, performed, result, rectify_by)
        cases.append((eid, check, fields, performed, result, rectify_by, online))
    for eid, check, fields, performed, result, rectify_by, online in cases:
        expected = next_due(rules, check, fields, performed, result=result, rectify_by=rectify_by,
                            monitor_online=online)
        assert status(cdb, eid, check).due_on == expected, (check, fields, performed, result, rectify_by, online)
