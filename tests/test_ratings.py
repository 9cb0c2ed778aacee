"""Firm ratings (models/ratings.py, web/ratings.py, docs/ratings.md): each figure and the grade of a fixture month
computed by hand, months in the users' zone, firms without alerts, the CSV, and who may see which firm."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from models import ratings
from models.compliance import rules_from_config, sync_rules
from models.figures import record_daily_figures
from semon.config import ConfigError
from semon.scope import Scope
from tests.conftest import add_user, anonymous, register_equipment, signed_in

SHANGHAI = ZoneInfo("Asia/Shanghai")
D1, D2 = "Xuhui District", "Minhang District"
FIRM_A, FIRM_B = "Firm A", "Firm B"
MARCH = date(2025, 3, 1)
LAST_DAY = date(2025, 3, 31)
AFTER = datetime(2025, 4, 15, tzinfo=UTC)   # every March alert long decided


def local(month: int, day: int, hour: int, minute: int) -> datetime:
    """A time in 2025 on the users' clock (Asia/Shanghai)."""
    return datetime(2025, month, day, hour, minute, tzinfo=SHANGHAI)


def settings(config: Any) -> ratings.Settings:
    return ratings.Settings.from_config(config)


def alert(db: psycopg.Connection, code: str, kind: str, first_seen: datetime, *, acknowledged: datetime | None = None,
          on_site: datetime | None = None, resolved: datetime | None = None, by: int | None = None,
          resolved_by: int | None = None, muted_by: int | None = None, source: str = "device") -> int:
    """An alert on `code` as handling leaves it: acknowledged and reached by user `by`, resolved by `resolved_by`
    (None: by semon, the condition cleared)."""
    state = "resolved" if resolved else "on_site" if on_site else "acknowledged" if acknowledged else "open"
    return db.execute(
        "INSERT INTO alerts (equipment_id, kind, source, severity, firm_id, first_seen, last_seen, state,"
        " acknowledged_at, acknowledged_by, on_site_at, on_site_by, resolved_at, resolved_by, muted_by)"
        " SELECT e.id, %s, %s, 'high', e.firm_id, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s"
        " FROM equipment e WHERE e.code = %s RETURNING id",
        (kind, source, first_seen, first_seen, state, acknowledged, by if acknowledged else None, on_site,
         by if on_site else None, resolved, resolved_by, muted_by, code)).fetchone()["id"]


def records(db: psycopg.Connection, code: str, inspected: str, maintained: str) -> None:
    """A passed periodic inspection and a maintenance visit of `code` (by its firm)."""
    db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) SELECT id, 'periodic_inspection', %s"
               " FROM equipment WHERE code = %s", (inspected, code))
    db.execute("INSERT INTO maintenance_records (equipment_id, firm_id, performed_on) SELECT id, firm_id, %s"
               " FROM equipment WHERE code = %s", (maintained, code))


def build_march(db: psycopg.Connection) -> None:
    """The fixture month, March 2025 (figures of compliance_daily on 31 March):

    Firm A: 40 in-use elevators (A01–A30 in Xuhui, A31–A40 in Minhang) and one suspended (not counted);
      periodic inspection overdue on A01–A04 (inspected 2024-01-15, due 2025-01-15): 4 of 40;
      maintenance overdue on A05–A06 (last 2025-03-01, due 03-16): 2 of 40.
    Firm B: 10 in-use elevators in Minhang; maintenance overdue on B01: 1 of 10; no inspection overdue.
    Every other equipment: inspected 2024-06-01 (due 2025-06-01), maintained 2025-03-25 (due 04-09).
    """
    sync_rules(db, rules_from_config())
    for n in range(1, 41):
        code = f"EL-A{n:02d}"
        register_equipment(db, code, district=D1 if n <= 30 else D2, firm=FIRM_A)
        inspected = "2024-01-15" if n <= 4 else "2024-06-01"
        maintained = "2025-03-01" if n in (5, 6) else "2025-03-25"
        records(db, code, inspected, maintained)
    register_equipment(db, "EL-A99", district=D1, firm=FIRM_A, status="suspended")
    for n in range(1, 11):
        code = f"EL-B{n:02d}"
        register_equipment(db, code, district=D2, firm=FIRM_B)
        records(db, code, "2024-06-01", "2025-03-01" if n == 1 else "2025-03-25")
    record_daily_figures(db, LAST_DAY, now=datetime(2025, 3, 31, 20, 0, tzinfo=SHANGHAI))

    tech = add_user(db, "a-tech", "firm", firm=FIRM_A)
    # Firm A's alerts, all on EL-A01 (Xuhui), on the users' clock:
    # 1 entrapment 03-05 10:00: acknowledged 10:02 (2 min), on site 10:25 (25 min), resolved 10:40 (40 min)
    alert(db, "EL-A01", "entrapment", local(3, 5, 10, 0), acknowledged=local(3, 5, 10, 2),
          on_site=local(3, 5, 10, 25), resolved=local(3, 5, 10, 40), by=tech, resolved_by=tech)
    # 2 entrapment 03-12 20:00: acknowledged 20:04 (4 min: late), on site 20:45 (45 min: late), resolved 21:00 (60)
    alert(db, "EL-A01", "entrapment", local(3, 12, 20, 0), acknowledged=local(3, 12, 20, 4),
          on_site=local(3, 12, 20, 45), resolved=local(3, 12, 21, 0), by=tech, resolved_by=tech)
    # 3 door_close_failure 03-31 23:30 (the month's last day, late evening: March's), acknowledged 23:31 (1 min),
    #   resolved 04-01 00:30 (60 min)
    alert(db, "EL-A01", "door_close_failure", local(3, 31, 23, 30), acknowledged=local(3, 31, 23, 31),
          resolved=local(4, 1, 0, 30), by=tech, resolved_by=tech)
    # 4 safety_circuit_open 03-01 00:10 (16:10 UTC on 28 February: still March's), acknowledged 00:13 (3 min exactly:
    #   in time), resolved by itself 00:43 (33 min)
    alert(db, "EL-A01", "safety_circuit_open", local(3, 1, 0, 10), acknowledged=local(3, 1, 0, 13), by=tech,
          resolved=local(3, 1, 0, 43))
    # 5 offline 03-10 08:00: not a fault, not counted; 6 power_failure 03-10 08:05 muted by it: not counted
    offline = alert(db, "EL-A01", "offline", local(3, 10, 8, 0), resolved=local(3, 10, 9, 0), source="presence")
    alert(db, "EL-A01", "power_failure", local(3, 10, 8, 5), resolved=local(3, 10, 9, 0), muted_by=offline)
    # 7 door_open_failure 03-15 09:00, cleared by itself at 09:02 before anyone answered: counted, needs no response
    alert(db, "EL-A01", "door_open_failure", local(3, 15, 9, 0), resolved=local(3, 15, 9, 2))
    # 8 run_timeout 03-20 14:00, never answered, cleared by itself 14:20 (20 min): needed a response, late
    alert(db, "EL-A01", "run_timeout", local(3, 20, 14, 0), resolved=local(3, 20, 14, 20))
    # 9 overdue:maintenance 03-17 (compliance): not a fault, counted in the overdue figures instead
    alert(db, "EL-A05", "overdue:maintenance", local(3, 17, 0, 1), source="compliance")
    # Firm B: 10 at 23:59 on 28 February (February's) and 11 at 00:00 on 1 April (April's): none in March
    alert(db, "EL-B02", "door_close_failure", local(2, 28, 23, 59), resolved=local(3, 1, 0, 30))
    alert(db, "EL-B02", "door_close_failure", local(4, 1, 0, 0), resolved=local(4, 1, 0, 30))


# Firm A, by hand:
#   alerts counted: 1, 2, 3, 4, 7, 8 = 6 on 40 units → 15.0 per 100
#   needing a response: 1, 2, 3, 4, 8 = 5 (7 cleared itself within 3 min); in time: 1 (2), 3 (1), 4 (3) → 3/5 = 0.6
#   entrapments: 1, 2; on site within 30 min: 1 → 1/2 = 0.5
#   mean time to respond over those answered: (2 + 4 + 1 + 3) / 4 = 2.5 min
#   mean time to resolve over the 5 needing a response: (40 + 60 + 60 + 33 + 20) / 5 = 42.6 min
#   超期未检率 4/40 = 0.1; 超期未维保率 2/40 = 0.05
#   score (weights ack 25, arrival 30, alerts 15, maintenance 20, inspection 10; alerts 0 at 50 per 100, overdue
#   rates 0 at 0.2): 25 × 0.6 + 30 × 0.5 + 15 × (1 − 15/50) + 20 × (1 − 0.05/0.2) + 10 × (1 − 0.1/0.2)
#   = 15 + 15 + 10.5 + 15 + 5 = 60.5 of 100 → C (60 ≤ 60.5 < 75)
# Firm B, by hand: no alert → 0.0 per 100, no response or arrival rate (their weights left out); 超期未维保率 1/10 =
#   0.1, 超期未检率 0/10 = 0: (15 × 1 + 20 × (1 − 0.1/0.2) + 10 × 1) / (15 + 20 + 10) × 100 = 35/45 × 100 = 77.8 → B
FIRM_A_MARCH = {
    "month": "2025-03", "rank": 2, "firm": FIRM_A, "grade": "C", "score": 60.5, "units": 40, "alerts": 6,
    "alerts_per_100": 15.0, "ack_due": 5, "ack_on_time": 3, "ack_rate": 0.6, "entrapments": 2, "arrived_on_time": 1,
    "arrival_rate": 0.5, "mean_ack_minutes": 2.5, "mean_resolve_minutes": 42.6, "inspection_owing": 40,
    "inspection_overdue": 4, "inspection_overdue_rate": 0.1, "maintenance_owing": 40, "maintenance_overdue": 2,
    "maintenance_overdue_rate": 0.05, "compliance_day": LAST_DAY}
FIRM_B_MARCH = {
    "month": "2025-03", "rank": 1, "firm": FIRM_B, "grade": "B", "score": 77.8, "units": 10, "alerts": 0,
    "alerts_per_100": 0.0, "ack_due": 0, "ack_on_time": 0, "ack_rate": None, "entrapments": 0, "arrived_on_time": 0,
    "arrival_rate": None, "mean_ack_minutes": None, "mean_resolve_minutes": None, "inspection_owing": 10,
    "inspection_overdue": 0, "inspection_overdue_rate": 0.0, "maintenance_owing": 10, "maintenance_overdue": 1,
    "maintenance_overdue_rate": 0.1, "compliance_day": LAST_DAY}


def test_a_months_figures_and_grades_are_the_hand_computed_ones(db, base_config):
    build_march(db)

    assert ratings.ratings(db, [MARCH], settings(base_config), now=AFTER) == [FIRM_B_MARCH, FIRM_A_MARCH]


def test_an_alert_belongs_to_the_users_month_it_was_first_seen_in(db, base_config):
    build_march(db)
    months = ratings.months_back(date(2025, 4, 1), 3)

    rows = ratings.ratings(db, months, settings(base_config), now=AFTER, firm_id=firm_id(db, FIRM_B))

    # 23:59 on 28 February is February's, 00:00 on 1 April April's (UTC would put both a day's hours earlier);
    # no day of February or April was recorded: no units, no grade.
    assert [(r["month"], r["alerts"], r["units"], r["grade"]) for r in rows] == [
        ("2025-04", 1, None, None), ("2025-03", 0, 10, "B"), ("2025-02", 1, None, None)]


def test_an_alert_not_yet_answered_is_not_judged_before_its_limit(db, base_config):
    build_march(db)
    tech = db.execute("SELECT id FROM users WHERE username = 'a-tech'").fetchone()["id"]
    alert(db, "EL-A02", "entrapment", local(3, 25, 9, 0))
    rated = {}
    for minutes in (2, 10, 31):
        now = local(3, 25, 9, minutes)
        [row] = [r for r in ratings.ratings(db, [MARCH], settings(base_config), now=now) if r["firm"] == FIRM_A]
        rated[minutes] = (row["ack_due"], row["ack_on_time"], row["entrapments"], row["arrived_on_time"])
    alert(db, "EL-A03", "stop_outside_door_zone", local(3, 26, 9, 0), acknowledged=local(3, 26, 9, 1), by=tech)

    # The fixture's 5 and 3, 2 and 1: at 2 minutes the new entrapment is undecided; at 10 it was not answered in
    # 3 minutes; at 31 nobody reached it in 30.
    assert rated == {2: (5, 3, 2, 1), 10: (6, 3, 2, 1), 31: (6, 3, 3, 1)}
    [row] = [r for r in ratings.ratings(db, [MARCH], settings(base_config), now=AFTER) if r["firm"] == FIRM_A]
    assert (row["alerts"], row["ack_due"], row["ack_on_time"]) == (8, 7, 4)


def test_a_reopened_alert_is_judged_on_its_latest_episode_in_the_month_it_was_first_seen(db, base_config):
    build_march(db)
    tech = db.execute("SELECT id FROM users WHERE username = 'a-tech'").fetchone()["id"]
    # First seen on 28 March, reopened on 2 April (its earlier steps cleared), answered 2 minutes after reopening.
    reopened = alert(db, "EL-A07", "door_lock_circuit_open", local(3, 28, 8, 0), acknowledged=local(4, 2, 9, 2),
                     by=tech)
    db.execute("UPDATE alerts SET reopened_at = %s, reopened_count = 1 WHERE id = %s", (local(4, 2, 9, 0), reopened))

    rows = {r["month"]: r for r in ratings.ratings(db, ratings.months_back(date(2025, 4, 1), 2), settings(base_config),
                                                     now=AFTER, firm_id=firm_id(db, FIRM_A))}

    # March's: 7 alerts, 6 needing an answer, 4 in time (the fixture's 3 and this one, 2 minutes after reopening).
    assert (rows["2025-03"]["alerts"], rows["2025-03"]["ack_due"], rows["2025-03"]["ack_on_time"]) == (7, 6, 4)
    assert rows["2025-04"]["alerts"] == 0


def test_a_district_counts_only_the_firms_equipment_and_alerts_there(db, base_config):
    build_march(db)
    xuhui = db.execute("SELECT id FROM districts WHERE name = %s", (D1,)).fetchone()["id"]

    rows = ratings.ratings(db, [MARCH], settings(base_config), now=AFTER, scope=Scope.of(districts=[xuhui]))

    # Firm B has nothing in Xuhui; Firm A's 30 lifts there carry all its alerts: 6 on 30 → 20.0 per 100.
    assert [(r["firm"], r["units"], r["alerts"], r["alerts_per_100"]) for r in rows] == [(FIRM_A, 30, 6, 20.0)]


def test_the_weights_and_grades_are_settings(db, base_config):
    build_march(db)
    strict = settings(base_config.replace(rating_weights="ack=0 arrival=100 alerts=0 maintenance=0 inspection=0",
                                          rating_grades="A=95 B=60 C=50"))

    rows = {r["firm"]: r for r in ratings.ratings(db, [MARCH], strict, now=AFTER)}

    # Only the arrival rate counts: Firm A reached 1 entrapment of 2 in time → 50.0, C's lowest score; Firm B had no
    # entrapment, so nothing it is weighed on is defined and it is not graded.
    assert (rows[FIRM_A]["score"], rows[FIRM_A]["grade"]) == (50.0, "C")
    assert (rows[FIRM_B]["score"], rows[FIRM_B]["grade"]) == (None, None)


@pytest.mark.parametrize(("changes", "message"), [
    ({"rating_weights": "ack=25 arrival=30"}, "rating_weights = 'ack=25 arrival=30': must name each of"),
    ({"rating_weights": "ack=0 arrival=0 alerts=0 maintenance=0 inspection=0"}, "at least one weight must be above 0"),
    ({"rating_grades": "A=60 B=75 C=90"}, "must be 100 >= A > B > C >= 0"),
    ({"rating_grades": "A:90"}, "expected A=<number> B=<number> C=<number>"),
])
def test_weights_or_grades_that_cannot_be_used_stop_the_app_with_one_line(base_config, changes, message):
    from web import create_app

    with pytest.raises(ConfigError) as failure:
        create_app(base_config.replace(**changes))
    assert message in str(failure.value)


def firm_id(db: psycopg.Connection, name: str) -> int:
    return db.execute("SELECT id FROM maintenance_firms WHERE name = %s", (name,)).fetchone()["id"]


# --- the pages, API and CSV ----------------------------------------------------------------------------------------

def test_the_csv_has_every_firm_of_the_month_with_every_figure(db, app, client):
    build_march(db)

    response = client.get("/api/ratings.csv?month=2025-03")

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="ratings-2025-03.csv"'
    assert response.get_data(as_text=True) == (
        "\ufeffmonth,rank,firm,grade,score,units,alerts,alerts_per_100,ack_due,ack_on_time,ack_rate,entrapments,"
        "arrived_on_time,arrival_rate,mean_ack_minutes,mean_resolve_minutes,inspection_owing,inspection_overdue,"
        "inspection_overdue_rate,maintenance_owing,maintenance_overdue,maintenance_overdue_rate,compliance_day\r\n"
        "2025-03,1,Firm B,B,77.8,10,0,0.0,0,0,,0,0,,,,10,0,0.0,10,1,0.1,2025-03-31\r\n"
        "2025-03,2,Firm A,C,60.5,40,6,15.0,5,3,0.6,2,1,0.5,2.5,42.6,40,4,0.1,40,2,0.05,2025-03-31\r\n")


def test_a_firm_without_units_that_month_is_listed_last_not_rated_and_its_name_cannot_run_as_a_formula(db, client):
    build_march(db)
    register_equipment(db, "EL-E1", district=D1, firm="=HYPERLINK(1)")  # registered after 31 March was recorded

    lines = client.get("/api/ratings.csv?month=2025-03").get_data(as_text=True).splitlines()

    assert lines[3] == "2025-03,3,'=HYPERLINK(1),,,0,0,,0,0,,0,0,,,,0,0,,0,0,,2025-03-31"


def test_the_api_and_the_pages_show_the_ranking_and_a_firms_months(db, app, client):
    build_march(db)

    body = client.get("/api/ratings?month=2025-03").get_json()
    assert (body["month"], body["total"]) == ("2025-03", 2)
    assert [(i["firm"], i["grade"], i["score"]) for i in body["items"]] == [(FIRM_B, "B", 77.8), (FIRM_A, "C", 60.5)]
    assert [i["firm"] for i in client.get("/api/ratings?month=2025-03&grade=C").get_json()["items"]] == [FIRM_A]
    firm = client.get(f"/api/ratings/{FIRM_A}?to=2025-03&months=2").get_json()
    assert [(i["month"], i["grade"], i["alerts"]) for i in firm["items"]] == [("2025-03", "C", 6), ("2025-02", None, 0)]
    page = client.get("/ratings?month=2025-03").get_data(as_text=True)
    assert page.index(FIRM_B) < page.index(FIRM_A) and "60.5" in page and "77.8" in page
    assert "/ratings/Firm%20A" in page
    firm_page = client.get(f"/ratings/{FIRM_A}?to=2025-03").get_data(as_text=True)
    assert "2025-03" in firm_page and "60.5" in firm_page and "60.0 %" in firm_page   # 3-min rate 3/5
    assert client.get("/equipment").get_data(as_text=True).count('href="/ratings"') == 1   # in the nav


@pytest.mark.parametrize(("url", "message"), [
    ("/api/ratings?month=2025-13", "month: expected a month as YYYY-MM"),
    ("/api/ratings?month=March", "month: expected a month as YYYY-MM"),
    ("/api/ratings?district=Nowhere", "no district named 'Nowhere'"),
    ("/api/ratings?grade=E", "grade must be one of A, B, C, D"),
    (f"/api/ratings/{FIRM_A}?months=37", "months must be between 1 and 36"),
])
def test_a_bad_parameter_is_a_400_naming_it(db, app, client, url, message):
    build_march(db)

    response = client.get(url)

    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]


def test_an_inspector_sees_the_firms_working_in_its_districts_counted_there(db, app):
    build_march(db)
    add_user(db, "xuhui", "inspector", districts=(D1,))
    inspector = signed_in(app, "xuhui")

    items = inspector.get("/api/ratings?month=2025-03").get_json()["items"]

    assert [(i["firm"], i["units"], i["alerts"]) for i in items] == [(FIRM_A, 30, 6)]
    assert inspector.get(f"/api/ratings/{FIRM_B}").status_code == 404
    assert inspector.get(f"/ratings/{FIRM_B}").status_code == 404
    assert inspector.get(f"/api/ratings?district={D2}").status_code == 400


def test_a_firms_user_sees_its_own_firm_only(db, app):
    build_march(db)
    firm_user = signed_in(app, "a-tech")

    items = firm_user.get("/api/ratings?month=2025-03").get_json()["items"]
    csv = firm_user.get("/api/ratings.csv?month=2025-03").get_data(as_text=True)

    assert [(i["firm"], i["grade"]) for i in items] == [(FIRM_A, "C")]
    assert FIRM_B not in csv and FIRM_A in csv
    assert firm_user.get(f"/api/ratings/{FIRM_A}?to=2025-03&months=1").get_json()["items"][0]["score"] == 60.5
    assert firm_user.get(f"/api/ratings/{FIRM_B}").status_code == 404
    assert firm_user.get(f"/ratings/{FIRM_B}").status_code == 404


def test_a_use_unit_and_nobody_are_refused(db, app):
    build_march(db)
    register_equipment(db, "EL-U1", district=D1, firm=FIRM_A, use_unit="Block 3 Owners")
    add_user(db, "block3", "use_unit", use_unit="Block 3 Owners")
    unit, nobody = signed_in(app, "block3"), anonymous(app)

    for url in ("/ratings", "/api/ratings", "/api/ratings.csv", f"/ratings/{FIRM_A}", f"/api/ratings/{FIRM_A}"):
        assert unit.get(url).status_code == 403, url
        assert nobody.get(url).status_code == (401 if url.startswith("/api/") else 302), url
