"""The regulator's figures on a small fleet with fixed dates, against values computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from models.compliance import compliance_statuses, rules_from_config, sync_rules
from models.figures import (
    CHECKS,
    coverage,
    due_list,
    due_summary,
    history,
    old_elevator_list,
    old_elevators,
    overdue_rates,
    record_daily_figures,
    snapshot,
)
from semon.scope import Scope
from tests.conftest import register_equipment

AS_OF = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CHAOYANG, HAIDIAN = "朝阳区", "海淀区"
FIRM_A, FIRM_B = "Firm A", "Firm B"


def checks_of(db: psycopg.Connection, equipment_type: str) -> list[str]:
    return [r["check_name"] for r in db.execute(
        "SELECT check_name FROM compliance_rules WHERE equipment_type = %s ORDER BY 1", (equipment_type,))]


def record(db: psycopg.Connection, eid: int, check: str, on: date, result: str = "pass") -> None:
    if check == "maintenance":
        db.execute("INSERT INTO maintenance_records (equipment_id, performed_on, result)"
                   " VALUES (%s, %s, %s)", (eid, on, result))
    else:
        db.execute("INSERT INTO inspections (equipment_id, kind, performed_on, result)"
                   " VALUES (%s, %s, %s, %s)", (eid, check, on, result))


def in_date(db: psycopg.Connection, eid: int, equipment_type: str, *, skip: tuple[str, ...] = ()) -> None:
    """Record every check the type owes 10 days before AS_OF (maintenance 3 days): nothing is overdue."""
    for check in checks_of(db, equipment_type):
        if check not in skip:
            record(db, eid, check, AS_OF - timedelta(days=3 if check == "maintenance" else 10))


def equipment(db: psycopg.Connection, code: str, equipment_type: str = "elevator", *, district: str = CHAOYANG,
              firm: str = FIRM_A, status: str = "in_use", install_date: date | None = date(2018, 1, 1),
              seen: datetime | None = None, address: str = "", use_unit: str = "") -> int:
    eid = register_equipment(db, code, equipment_type, district=district, firm=firm, status=status,
                             install_date=install_date, address=address, use_unit=use_unit or None)
    if seen is not None:
        db.execute("INSERT INTO equipment_state (equipment_id, status, status_changed_at, last_seen)"
                   " VALUES (%s, 'online', %s, %s)", (eid, seen, seen))
    return eid


@pytest.fixture
def rules(db: psycopg.Connection) -> None:
    # The db fixture empties every table but reference data; the rule table is written from config.
    sync_rules(db, rules_from_config())


@pytest.fixture
def fleet(db: psycopg.Connection, rules: None) -> dict[str, int]:
    """Seven in-use equipment in two districts, one suspended; see each line for what makes it count."""
    ids = {}
    # Chaoyang: 3 in use, 1 overdue for its periodic inspection (EL-A2), 1 for maintenance (ES-A1); 2 reported in
    # 24 h.
    ids["EL-A1"] = equipment(db, "EL-A1", install_date=date(2000, 1, 1), seen=NOW - timedelta(hours=1),
                             address="1 Chaoyang Rd", use_unit="Tower A")  # old, in date, monitored
    in_date(db, ids["EL-A1"], "elevator")
    # Installed exactly 15 years before AS_OF: in service 15 years, not more. Seen 25 h ago: not covered.
    ids["EL-A2"] = equipment(db, "EL-A2", install_date=date(2011, 6, 15), seen=NOW - timedelta(hours=25),
                             address="2 Chaoyang Rd", use_unit="Tower B")
    in_date(db, ids["EL-A2"], "elevator", skip=("periodic_inspection",))
    record(db, ids["EL-A2"], "periodic_inspection", date(2025, 5, 11))  # due 2026-05-11: 35 days overdue
    ids["ES-A1"] = equipment(db, "ES-A1", "escalator", firm=FIRM_B, seen=NOW - timedelta(hours=2))
    in_date(db, ids["ES-A1"], "escalator", skip=("maintenance",))
    record(db, ids["ES-A1"], "maintenance", date(2026, 5, 26))  # due 2026-06-10: 5 days overdue
    # Suspended: overdue, old and monitored, yet counted nowhere.
    ids["EL-A3"] = equipment(db, "EL-A3", status="suspended", install_date=date(1990, 1, 1), seen=NOW)
    record(db, ids["EL-A3"], "periodic_inspection", date(2020, 1, 1))
    # Haidian: 4 in use, none overdue, 1 with no record at all (PV-B1); 1 reported in 24 h.
    ids["EL-B1"] = equipment(db, "EL-B1", district=HAIDIAN, install_date=date(2011, 6, 14))  # 15 years + 1 day
    in_date(db, ids["EL-B1"], "elevator", skip=("periodic_inspection",))
    record(db, ids["EL-B1"], "periodic_inspection", date(2025, 6, 25))  # due in 10 days: due soon
    ids["BL-B1"] = equipment(db, "BL-B1", "boiler", district=HAIDIAN, firm=FIRM_B,
                             seen=NOW - timedelta(hours=23, minutes=59))
    in_date(db, ids["BL-B1"], "boiler")
    # No record and no commissioning or install date: no due date can be known, so never recorded.
    ids["PV-B1"] = equipment(db, "PV-B1", "pressure_vessel", district=HAIDIAN, install_date=None)
    # Seen exactly 24 h ago: not "in the last 24 h".
    ids["EL-B2"] = equipment(db, "EL-B2", district=HAIDIAN, install_date=None, seen=NOW - timedelta(hours=24))
    in_date(db, ids["EL-B2"], "elevator")
    return ids


def as_tuples(items: list, *fields: str) -> list[tuple]:
    return [tuple(getattr(i, f) for f in fields) for i in items]


def test_overdue_rate_by_district_type_and_overall(db, fleet):
    rates = overdue_rates(db, AS_OF)

    # 超期未检率 counts the periodic inspection only: ES-A1's overdue maintenance is not in it.
    assert as_tuples(rates.by_district, "key", "in_use", "overdue", "never_recorded") == [
        (CHAOYANG, 3, 1, 0), (HAIDIAN, 4, 0, 1)]
    assert as_tuples(rates.by_type, "key", "in_use", "overdue", "never_recorded") == [
        ("elevator", 4, 1, 0), ("escalator", 1, 0, 0), ("boiler", 1, 0, 0), ("pressure_vessel", 1, 0, 1)]
    assert (rates.overall.in_use, rates.overall.overdue, rates.overall.never_recorded) == (7, 1, 1)
    assert rates.overall.rate == pytest.approx(1 / 7)
    assert rates.by_district[0].rate == pytest.approx(1 / 3)
    assert rates.by_district[1].rate == 0


def test_each_check_has_its_own_figure(db, fleet):
    rates = overdue_rates(db, AS_OF)

    # (check, in-use equipment owing it, overdue, no record at all); PV-B1 has no record of any of its checks.
    assert [(f.check, f.owing, f.overdue, f.never_recorded) for f in rates.overall.checks] == [
        ("periodic_inspection", 7, 1, 1), ("maintenance", 5, 1, 0), ("governor_calibration", 4, 0, 0),
        ("rescue_drill", 5, 0, 0), ("internal_inspection", 1, 0, 0), ("water_quality_test", 1, 0, 0),
        ("safety_valve_calibration", 2, 0, 1), ("pressure_gauge_verification", 2, 0, 1)]
    assert rates.overall.check("maintenance").rate == pytest.approx(1 / 5)
    chaoyang, haidian = rates.by_district
    assert [(f.check, f.owing, f.overdue) for f in chaoyang.checks] == [
        ("periodic_inspection", 3, 1), ("maintenance", 3, 1), ("governor_calibration", 2, 0), ("rescue_drill", 3, 0)]
    escalators = rates.by_type[1]
    assert (escalators.key, escalators.overdue, escalators.check("maintenance").overdue) == ("escalator", 0, 1)
    # A check nobody in the group owes has no figure: no rate rather than 0 %.
    assert (haidian.check("internal_inspection").owing, chaoyang.check("internal_inspection").rate) == (1, None)


def _two_lifts(db: psycopg.Connection, overdue: str) -> None:
    """Two elevators in date but for `overdue` on EL-1: 40 days late for maintenance, 10 for the inspection."""
    for code in ("EL-1", "EL-2"):
        eid = equipment(db, code)
        in_date(db, eid, "elevator", skip=(overdue,) if code == "EL-1" else ())
        if code == "EL-1":
            record(db, eid, overdue, date(2026, 4, 21) if overdue == "maintenance" else date(2025, 6, 5))


def test_maintenance_overdue_is_not_overdue_for_inspection(db, rules):
    _two_lifts(db, "maintenance")  # EL-1's last visit 2026-04-21, due 2026-05-06

    overall = overdue_rates(db, AS_OF).overall

    assert (overall.in_use, overall.overdue, overall.rate) == (2, 0, 0)  # 超期未检率 0
    assert (overall.check("maintenance").overdue, overall.check("maintenance").rate) == (1, 0.5)  # 超期未维保
    record_daily_figures(db, AS_OF, now=NOW)
    day = history(db, AS_OF, AS_OF, "overall")[0]
    assert (day["overdue"], day["rate"], day["by_check"]["maintenance"]["overdue"]) == (0, 0, 1)


def test_inspection_overdue_is_not_overdue_for_maintenance(db, rules):
    _two_lifts(db, "periodic_inspection")  # EL-1 inspected 2025-06-05, due 2026-06-05

    overall = overdue_rates(db, AS_OF).overall

    assert (overall.in_use, overall.overdue, overall.rate) == (2, 1, 0.5)
    assert (overall.check("maintenance").overdue, overall.check("maintenance").rate) == (0, 0)
    record_daily_figures(db, AS_OF, now=NOW)
    day = history(db, AS_OF, AS_OF, "overall")[0]
    assert (day["overdue"], day["rate"], day["by_check"]["maintenance"]["overdue"]) == (1, 0.5, 0)


def test_no_record_counts_an_overdue_inspection_never_done_as_the_planning_list_shows_it(db, rules):
    # Installed in 2020 and never inspected: overdue since 2021, with nothing on record.
    equipment(db, "EL-N", install_date=date(2020, 1, 1))

    overall = overdue_rates(db, AS_OF).overall
    _, rows = due_list(db, AS_OF, statuses=("overdue",))

    assert (overall.overdue, overall.never_recorded) == (1, 1)
    never_done = [(r["code"], r["status"]) for r in rows
                  if r["check"] == "periodic_inspection" and r["last_done"] is None]
    assert never_done == [("EL-N", "overdue")]


def test_an_overdue_rescue_drill_counts_in_its_own_figure_only(db, fleet):
    db.execute("DELETE FROM inspections WHERE equipment_id = %s AND kind = 'rescue_drill'", (fleet["EL-A2"],))
    record(db, fleet["EL-A2"], "rescue_drill", date(2025, 1, 1))

    overall = overdue_rates(db, AS_OF).overall

    assert (overall.overdue, overall.check("rescue_drill").overdue) == (1, 1)


def test_the_figures_agree_with_the_per_check_statuses(db, fleet):
    statuses = compliance_statuses(db, AS_OF)
    in_use = db.execute("SELECT count(*) AS n FROM equipment WHERE status = 'in_use'").fetchone()["n"]

    rates = overdue_rates(db, AS_OF)

    assert rates.overall.in_use == in_use
    for check in CHECKS:
        figure = rates.overall.check(check)
        of_check = [s for s in statuses if s.check == check]
        expected = (len(of_check), sum(s.status == "overdue" for s in of_check),
                    sum(s.last_on is None for s in of_check))
        assert (figure.owing, figure.overdue, figure.never_recorded) == expected, check


def test_overdue_rate_of_an_empty_fleet_is_undefined(db, rules):
    rates = overdue_rates(db, AS_OF)

    assert (rates.by_district, rates.by_type) == ([], [])
    assert (rates.overall.in_use, rates.overall.rate) == (0, None)


def test_coverage_counts_monitors_that_reported_in_the_last_24_hours(db, fleet):
    cov = coverage(db, NOW)

    assert as_tuples(cov.by_district, "key", "in_use", "monitored") == [(CHAOYANG, 3, 2), (HAIDIAN, 4, 1)]
    assert as_tuples(cov.by_type, "key", "in_use", "monitored") == [
        ("elevator", 4, 1), ("escalator", 1, 1), ("boiler", 1, 1), ("pressure_vessel", 1, 0)]
    assert (cov.overall.in_use, cov.overall.monitored) == (7, 3)
    assert cov.overall.share == pytest.approx(3 / 7)


def test_coverage_ignores_reports_after_the_moment_asked_about(db, fleet):
    # 90 minutes earlier EL-A1 (seen 1 h before NOW) had not reported yet, while EL-A2 (25 h) and EL-B2 (24 h)
    # were still within their 24 hours.
    cov = coverage(db, NOW - timedelta(minutes=90))

    assert (cov.overall.monitored, [c.monitored for c in cov.by_district]) == (4, [2, 2])


def test_old_elevators_by_district(db, fleet):
    by_district, total = old_elevators(db, AS_OF)

    assert [(o.district, o.elevators, o.old, o.install_date_unknown) for o in by_district] == [
        (CHAOYANG, 2, 1, 0), (HAIDIAN, 2, 1, 1)]
    assert (total.elevators, total.old, total.install_date_unknown) == (4, 2, 1)
    assert [r["code"] for r in old_elevator_list(db, AS_OF)] == ["EL-A1", "EL-B1"]
    haidian = db.execute("SELECT id FROM districts WHERE name = %s", (HAIDIAN,)).fetchone()["id"]
    assert [r["code"] for r in old_elevator_list(db, AS_OF, district_id=haidian)] == ["EL-B1"]


@pytest.mark.parametrize(("installed", "as_of", "old"), [
    (date(2008, 2, 29), date(2023, 2, 28), False),  # the anniversary of a leap day is 28 February
    (date(2008, 2, 29), date(2023, 3, 1), True),
    (date(2009, 2, 28), date(2024, 2, 29), True),   # 15 years on 28 February, more on the leap day
    (date(2009, 3, 1), date(2024, 2, 29), False),
    (date(2010, 12, 31), date(2025, 12, 31), False),
    (date(2010, 12, 31), date(2026, 1, 1), True),
])
def test_old_elevators_on_leap_days_and_year_ends(db, rules, installed, as_of, old):
    equipment(db, "EL-1", install_date=installed)

    assert old_elevators(db, as_of)[1].old == (1 if old else 0)


def test_old_elevators_leave_out_other_types(db, rules):
    equipment(db, "ES-1", "escalator", install_date=date(1990, 1, 1))

    by_district, total = old_elevators(db, AS_OF)

    assert (by_district, total.elevators, total.old) == ([], 0, 0)


def test_due_list_puts_the_longest_overdue_first(db, fleet):
    total, rows = due_list(db, AS_OF, statuses=("overdue",))

    assert total == 2
    assert [(r["code"], r["check"], r["due"], r["days_overdue"]) for r in rows] == [
        ("EL-A2", "periodic_inspection", date(2026, 5, 11), 35),
        ("ES-A1", "maintenance", date(2026, 6, 10), 5)]
    assert rows[0]["district"] == CHAOYANG
    assert (rows[0]["address"], rows[0]["use_unit"], rows[0]["firm"]) == ("2 Chaoyang Rd", "Tower B", FIRM_A)
    assert rows[0]["last_done"] == date(2025, 5, 11)


def test_due_list_filters(db, fleet):
    haidian = db.execute("SELECT id FROM districts WHERE name = %s", (HAIDIAN,)).fetchone()["id"]
    firm_b = db.execute("SELECT id FROM maintenance_firms WHERE name = %s", (FIRM_B,)).fetchone()["id"]

    _, soon = due_list(db, AS_OF, statuses=("due_soon",))
    _, in_haidian = due_list(db, AS_OF, district_id=haidian)
    _, of_firm_b = due_list(db, AS_OF, firm_id=firm_b)
    _, escalators = due_list(db, AS_OF, equipment_type="escalator")

    assert ("EL-B1", "periodic_inspection", date(2026, 6, 25)) in {(r["code"], r["check"], r["due"]) for r in soon}
    assert all(r["status"] == "due_soon" and r["days_overdue"] is None for r in soon)
    assert {r["district"] for r in in_haidian} == {HAIDIAN}
    assert {r["code"] for r in of_firm_b} <= {"ES-A1", "BL-B1"}
    assert ("ES-A1", "overdue") in {(r["code"], r["status"]) for r in of_firm_b}
    assert {r["type"] for r in escalators} == {"escalator"}


def test_due_list_pages(db, fleet):
    total, everything = due_list(db, AS_OF)
    _, second = due_list(db, AS_OF, limit=1, offset=1)
    past_end_total, past_end = due_list(db, AS_OF, limit=2, offset=total + 5)

    assert total == len(everything) >= 3
    assert [r["status"] for r in everything[:3]] == ["overdue", "overdue", "due_soon"]
    assert second == everything[1:2]
    assert (past_end_total, past_end) == (total, [])


def test_due_list_rejects_an_unknown_status(db, rules):
    with pytest.raises(ValueError, match="unknown status 'late'"):
        due_list(db, AS_OF, statuses=("late",))


def test_due_summary_per_firm_and_district(db, fleet):
    by_firm, by_district = due_summary(db, AS_OF)

    firm = {r["firm"]: r for r in by_firm}
    district = {r["district"]: r for r in by_district}
    assert (firm[FIRM_A]["overdue_checks"], firm[FIRM_A]["overdue_equipment"]) == (1, 1)
    assert (firm[FIRM_B]["overdue_checks"], firm[FIRM_B]["overdue_equipment"]) == (1, 1)
    assert (district[CHAOYANG]["overdue_checks"], district[CHAOYANG]["overdue_equipment"]) == (2, 2)
    assert district[HAIDIAN]["overdue_checks"] == 0
    # Each overdue check under its own name: EL-A2's inspection is Firm A's, ES-A1's maintenance Firm B's.
    none = dict.fromkeys(CHECKS, 0)
    assert firm[FIRM_A]["overdue_by_check"] == none | {"periodic_inspection": 1}
    assert firm[FIRM_B]["overdue_by_check"] == none | {"maintenance": 1}
    assert district[CHAOYANG]["overdue_by_check"] == none | {"periodic_inspection": 1, "maintenance": 1}
    assert district[HAIDIAN]["overdue_by_check"] == none
    _, soon = due_list(db, AS_OF, statuses=("due_soon",))
    assert sum(r["due_soon_checks"] for r in by_district) == len(soon)


def test_daily_figures_are_recorded_per_district_type_and_firm(db, fleet):
    db.execute("UPDATE equipment SET firm_id = NULL WHERE code = 'EL-B2'")
    written = record_daily_figures(db, AS_OF, now=NOW)

    rows = db.execute("SELECT d.name AS district, h.type, COALESCE(f.name, '-') AS firm, h.in_use, h.monitored,"
                      " h.overdue_any_check, h.never_recorded_any_check"
                      " FROM compliance_daily h JOIN districts d ON d.id = h.district_id"
                      " LEFT JOIN maintenance_firms f ON f.id = h.firm_id"
                      " WHERE h.day = %s", (AS_OF,)).fetchall()
    assert written == len(rows) == 6
    # The "any check" figure is no longer kept: only days recorded before migration 0011 have it.
    assert sorted(tuple(r.values()) for r in rows) == [
        (CHAOYANG, "elevator", FIRM_A, 2, 1, None, None), (CHAOYANG, "escalator", FIRM_B, 1, 1, None, None),
        (HAIDIAN, "boiler", FIRM_B, 1, 1, None, None), (HAIDIAN, "elevator", "-", 1, 0, None, None),
        (HAIDIAN, "elevator", FIRM_A, 1, 0, None, None), (HAIDIAN, "pressure_vessel", FIRM_A, 1, 0, None, None)]
    by_check = db.execute("SELECT d.name AS district, h.type, COALESCE(f.name, '-') AS firm, k.check_name, k.owing,"
                          " k.overdue, k.never_recorded FROM compliance_daily h"
                          " JOIN compliance_daily_check k ON k.daily_id = h.id"
                          " JOIN districts d ON d.id = h.district_id LEFT JOIN maintenance_firms f ON f.id = h.firm_id"
                          " WHERE h.day = %s AND (k.overdue > 0 OR k.never_recorded > 0)", (AS_OF,)).fetchall()
    assert sorted(tuple(r.values()) for r in by_check) == [
        (CHAOYANG, "elevator", FIRM_A, "periodic_inspection", 2, 1, 0),
        (CHAOYANG, "escalator", FIRM_B, "maintenance", 1, 1, 0),
        (HAIDIAN, "pressure_vessel", FIRM_A, "periodic_inspection", 1, 0, 1),
        (HAIDIAN, "pressure_vessel", FIRM_A, "pressure_gauge_verification", 1, 0, 1),
        (HAIDIAN, "pressure_vessel", FIRM_A, "safety_valve_calibration", 1, 0, 1)]
    # One row per check owed: 4 per elevator group, 3 per escalator, 5 per boiler, 3 per pressure vessel.
    assert db.execute("SELECT count(*) AS n FROM compliance_daily_check").fetchone()["n"] == 4 * 3 + 3 + 5 + 3
    # Running the day again replaces its rows, the firm-less one too (one row per grain, "no firm" included), and
    # the rows per check with them.
    assert record_daily_figures(db, AS_OF, now=NOW) == 6
    assert db.execute("SELECT count(*) AS n FROM compliance_daily").fetchone()["n"] == 6
    assert db.execute("SELECT count(*) AS n FROM compliance_daily_check").fetchone()["n"] == 4 * 3 + 3 + 5 + 3
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO compliance_daily (day, district_id, type, in_use, monitored)"
                   " SELECT day, district_id, type, 0, 0 FROM compliance_daily WHERE firm_id IS NULL")


def test_a_day_recorded_before_the_figures_per_check_keeps_its_any_check_figure(db, fleet):
    haidian = db.execute("SELECT id FROM districts WHERE name = %s", (HAIDIAN,)).fetchone()["id"]
    record_daily_figures(db, AS_OF, now=NOW)
    # As migration 0011 left a day recorded before it: any check overdue, no rows per check.
    db.execute("INSERT INTO compliance_daily (day, district_id, type, in_use, overdue_any_check,"
               " never_recorded_any_check, monitored) VALUES (%s, %s, 'elevator', 10, 4, 1, 5)",
               (AS_OF - timedelta(days=1), haidian))

    before, after = history(db, AS_OF - timedelta(days=1), AS_OF, "overall")

    assert before == {"day": AS_OF - timedelta(days=1), "in_use": 10, "overdue": None, "rate": None,
                      "never_recorded": None, "monitored": 5, "coverage": 0.5, "by_check": {},
                      "any_check": {"overdue": 4, "rate": 0.4, "never_recorded": 1}}
    assert (after["overdue"], after["rate"], after["any_check"]) == (1, pytest.approx(1 / 7), None)


def test_history_narrowed_to_a_scope_counts_only_its_rows(db, fleet):
    ids = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM districts UNION ALL"
                                                  " SELECT id, name FROM maintenance_firms")}
    record_daily_figures(db, AS_OF, now=NOW)
    # A day recorded before migration 0010 has no firm: counted by district, not by firm.
    db.execute("INSERT INTO compliance_daily (day, district_id, type, in_use, overdue_any_check,"
               " never_recorded_any_check, monitored) VALUES (%s, %s, 'elevator', 10, 1, 0, 5)",
               (AS_OF - timedelta(days=1), ids[HAIDIAN]))

    in_haidian = history(db, AS_OF - timedelta(days=1), AS_OF, "overall", scope=Scope.of(districts=[ids[HAIDIAN]]))
    of_firm_b = history(db, AS_OF - timedelta(days=1), AS_OF, "overall", scope=Scope.of(firms=[ids[FIRM_B]]))

    assert [(d["day"], d["in_use"], d["any_check"] and d["any_check"]["overdue"]) for d in in_haidian] == [
        (AS_OF - timedelta(days=1), 10, 1), (AS_OF, 4, None)]
    # ES-A1 and BL-B1: ES-A1's maintenance is overdue, neither's periodic inspection.
    assert [(d["day"], d["in_use"], d["overdue"], d["by_check"]["maintenance"]["overdue"]) for d in of_firm_b] == [
        (AS_OF, 2, 0, 1)]


def test_recording_the_same_day_again_replaces_it(db, fleet):
    record_daily_figures(db, AS_OF, now=NOW)
    record_daily_figures(db, AS_OF, now=NOW)
    [day] = history(db, AS_OF, AS_OF, "overall")
    assert {k: v for k, v in day.items() if k != "by_check"} == {
        "day": AS_OF, "in_use": 7, "overdue": 1, "rate": pytest.approx(1 / 7), "never_recorded": 1,
        "monitored": 3, "coverage": pytest.approx(3 / 7), "any_check": None}
    # The day's figure of each check is the one computed live that day.
    assert day["by_check"] == {f.check: f.as_dict() for f in overdue_rates(db, AS_OF).overall.checks}

    # EL-B1's inspection lapses and PV-B1 is scrapped the same day: the day's row follows, with no duplicate.
    db.execute("DELETE FROM inspections WHERE equipment_id = %s AND kind = 'periodic_inspection'", (fleet["EL-B1"],))
    record(db, fleet["EL-B1"], "periodic_inspection", date(2025, 1, 1))
    db.execute("UPDATE equipment SET status = 'scrapped' WHERE id = %s", (fleet["PV-B1"],))
    record_daily_figures(db, AS_OF, now=NOW)

    count = db.execute("SELECT count(*) AS n FROM compliance_daily WHERE day = %s", (AS_OF,)).fetchone()["n"]
    assert count == 4  # Haidian's pressure vessels are gone from the day, not left over from the first run
    day = history(db, AS_OF, AS_OF, "overall")[0]
    assert (day["in_use"], day["overdue"], day["never_recorded"]) == (6, 2, 0)
    assert day["by_check"]["pressure_gauge_verification"]["owing"] == 1  # BL-B1's only


def test_history_keeps_each_day_and_groups_it(db, fleet):
    yesterday = AS_OF - timedelta(days=1)
    record_daily_figures(db, yesterday, now=NOW - timedelta(days=1))
    record_daily_figures(db, AS_OF, now=NOW)

    overall = history(db, yesterday, AS_OF, "overall")
    by_district = history(db, AS_OF, AS_OF, "district")
    by_type = history(db, yesterday, yesterday, "type")

    assert [d["day"] for d in overall] == [yesterday, AS_OF]
    assert sorted((d["district"], d["in_use"], d["overdue"], d["by_check"]["maintenance"]["overdue"])
                  for d in by_district) == [(CHAOYANG, 3, 1, 1), (HAIDIAN, 4, 0, 0)]
    assert {d["type"] for d in by_type} == {"elevator", "escalator", "boiler", "pressure_vessel"}
    assert history(db, AS_OF + timedelta(days=1), AS_OF + timedelta(days=9), "overall") == []


def test_a_snapshot_gives_the_same_figures_and_leaves_nothing_behind(db, fleet):
    every = ("overdue", "due_soon", "never_recorded", "ok")
    for _ in range(2):  # a second snapshot on the same connection finds no leftover table
        with snapshot(db, AS_OF) as statuses:
            assert statuses.overdue_rates() == overdue_rates(db, AS_OF)
            assert statuses.due_summary() == due_summary(db, AS_OF)
            assert statuses.due_list(statuses=every) == due_list(db, AS_OF, statuses=every)
            assert statuses.due_list(limit=1, offset=1) == due_list(db, AS_OF, limit=1, offset=1)
        assert db.execute("SELECT to_regclass('pg_temp.compliance_figures_snapshot') AS t").fetchone()["t"] is None


def test_a_failed_snapshot_block_rolls_its_table_back(db, fleet):
    with pytest.raises(psycopg.errors.UndefinedColumn), snapshot(db, AS_OF):
        db.execute("SELECT no_such_column FROM equipment")

    assert db.execute("SELECT to_regclass('pg_temp.compliance_figures_snapshot') AS t").fetchone()["t"] is None


def test_daily_figures_inside_the_schedulers_transaction(db, db_url, fleet):
    # run_locked gives jobs a connection inside a transaction, not in autocommit as the db fixture is.
    with psycopg.connect(db_url, row_factory=dict_row) as conn, conn.transaction():
        record_daily_figures(conn, AS_OF, now=NOW)
        record_daily_figures(conn, AS_OF, now=NOW)

    assert [(d["in_use"], d["overdue"]) for d in history(db, AS_OF, AS_OF, "overall")] == [(7, 1)]
