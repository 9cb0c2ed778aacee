"""Risk ranking (models/risk.py, web/risk.py, docs/risk.md): exact scores, levels and reasons of a small fleet, the
filters, the CSV against the API, scope, the level thresholds and the page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from flask import Flask

from models.risk import Thresholds, equipment_risk
from semon.config import Config, ConfigError
from semon.scope import Scope
from tests.conftest import register_equipment
from web import create_app
from web.access import SCOPE_CONFIG
from web.db import FROZEN_NOW, close_pool

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 6, 15)
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=SHANGHAI)
D1, D2 = "朝阳区", "海淀区"
FIRM_A, FIRM_B = "Firm A", "Firm B"
# Records that leave every check of a type in date on TODAY (docs/compliance.md's intervals).
IN_DATE = {
    "elevator": {"periodic_inspection": "2025-09-01", "maintenance": "2026-06-12", "governor_calibration": "2026-01-10",
                 "rescue_drill": "2026-03-01"},
    "boiler": {"periodic_inspection": "2025-09-01", "internal_inspection": "2025-09-01",
               "water_quality_test": "2026-04-01", "safety_valve_calibration": "2025-09-01",
               "pressure_gauge_verification": "2026-03-01"},
}


def at(text: str) -> datetime:
    """A time in Shanghai, "YYYY-MM-DD HH:MM"."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def equipment(db: psycopg.Connection, code: str, equipment_type: str = "elevator", *, district: str, firm: str | None,
              install_date: str, records: dict[str, str] | None = None, status: str = "in_use") -> int:
    """An equipment with every check in date but those `records` changes (check: date of its latest record)."""
    eid = register_equipment(db, code, equipment_type, district=district, firm=firm, install_date=install_date,
                             use_unit=f"Owners of {code}", address=f"{code} Road", status=status)
    for check, performed_on in (IN_DATE[equipment_type] | (records or {})).items():
        if check == "maintenance":
            db.execute("INSERT INTO maintenance_records (equipment_id, performed_on) VALUES (%s, %s)",
                       (eid, performed_on))
        else:
            db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) VALUES (%s, %s, %s)",
                       (eid, check, performed_on))
    return eid


def alert(db: psycopg.Connection, eid: int, kind: str, severity: str, last_seen: datetime, *,
          state: str = "resolved", source: str = "device") -> None:
    db.execute("INSERT INTO alerts (equipment_id, kind, source, sources, severity, state, first_seen, last_seen,"
               " resolved_at) VALUES (%s, %s, %s, ARRAY[%s], %s, %s, %s, %s, %s)",
               (eid, kind, source, source, severity, state, last_seen, last_seen,
                last_seen if state == "resolved" else None))


@pytest.fixture
def fleet(db: psycopg.Connection) -> dict[str, int]:
    """The fleet of the tests, by code; the expected scores are in EXPECTED."""
    ids = {}
    # Installed 2004 (22 years), its periodic inspection due 2026-05-01 (45 days overdue), two entrapments in the
    # window and one before it.
    ids["EL-OLD"] = equipment(db, "EL-OLD", district=D1, firm=FIRM_A, install_date="2004-03-01",
                              records={"periodic_inspection": "2025-05-01"})
    for seen in ("2026-03-01 09:00", "2026-05-10 08:00", "2026-06-01 18:30"):
        alert(db, ids["EL-OLD"], "entrapment", "critical", at(seen))
    ids["EL-NEW"] = equipment(db, "EL-NEW", district=D1, firm=FIRM_A, install_date="2024-01-10")
    # Firm B: five elevators, two of them with maintenance due 2026-06-10 (5 days overdue): 40 % of its equipment.
    for n in range(1, 6):
        code = f"EL-B{n}"
        ids[code] = equipment(db, code, district=D2, firm=FIRM_B, install_date="2020-01-01",
                              records={"maintenance": "2026-05-26"} if n <= 2 else None)
    # Faults of the window by severity; the window starts at 00:00 on 2026-03-18 in Shanghai (today − 89 days).
    alert(db, ids["EL-B4"], "overspeed", "critical", at("2026-06-01 12:00"))
    alert(db, ids["EL-B4"], "power_failure", "high", at("2026-05-02 12:00"))
    alert(db, ids["EL-B4"], "power_failure", "high", at("2026-04-02 12:00"))
    alert(db, ids["EL-B4"], "door_open_too_long", "low", at("2026-03-18 00:00"))
    alert(db, ids["EL-B4"], "door_open_too_long", "low", at("2026-03-17 23:59"))  # before the window
    alert(db, ids["EL-B4"], "offline", "medium", at("2026-06-10 12:00"), state="open", source="presence")
    alert(db, ids["EL-B4"], "overdue:rescue_drill", "medium", at("2026-06-10 12:00"), source="compliance")
    alert(db, ids["EL-B5"], "wear:brake", "medium", at("2026-06-14 12:00"), state="open", source="anomaly")
    alert(db, ids["EL-B5"], "wear:door_operator", "medium", at("2026-06-01 12:00"), source="anomaly")  # resolved
    # A boiler without a firm, 16 years old, its water quality test due 2026-06-01 (14 days overdue).
    ids["BL-1"] = equipment(db, "BL-1", "boiler", district=D1, firm=None, install_date="2010-01-01",
                            records={"water_quality_test": "2026-03-01"})
    # Suspended equipment owes nothing and is not ranked, however old.
    ids["EL-OFF"] = equipment(db, "EL-OFF", district=D1, firm=FIRM_A, install_date="1990-01-01", status="suspended")
    return ids


FIRM_B_RECORD = {"factor": "firm_maintenance", "points": 15,
                 "fact": "Firm: 40 % of its elevators and escalators overdue for maintenance, 2 of 5 "
                         "(维保单位超期未维保率40 %)"}
MAINTENANCE_OVERDUE = {"factor": "overdue:maintenance", "points": 15,
                       "fact": "Maintenance overdue 5 days (超期未维保5天)"}
# code: (score, level, reasons), most risk first.
EXPECTED = {
    "EL-OLD": (85, "high", [
        {"factor": "entrapments", "points": 40, "fact": "2 entrapments in the last 90 days (近90天困人2次)"},
        {"factor": "overdue:periodic_inspection", "points": 25,
         "fact": "Periodic inspection overdue 45 days (超期未检45天)"},
        {"factor": "age", "points": 20, "fact": "Installed 2004-03-01: 22 years old (已使用22年)"}]),
    "EL-B1": (30, "medium", [MAINTENANCE_OVERDUE, FIRM_B_RECORD]),
    "EL-B2": (30, "medium", [MAINTENANCE_OVERDUE, FIRM_B_RECORD]),
    "EL-B4": (27, "medium", [
        FIRM_B_RECORD,
        {"factor": "faults", "points": 12,
         "fact": "4 faults in the last 90 days: 1 critical, 2 high, 1 low (近90天故障4次)"}]),
    "EL-B5": (23, "low", [
        FIRM_B_RECORD, {"factor": "wear", "points": 8, "fact": "1 open wear alert: Brake (制动器) (磨损预警1项)"}]),
    "BL-1": (20, "low", [
        {"factor": "age", "points": 12, "fact": "Installed 2010-01-01: 16 years old (已使用16年)"},
        {"factor": "overdue:water_quality_test", "points": 8,
         "fact": "Water quality test overdue 14 days (水质检测超期14天)"}]),
    "EL-B3": (15, "low", [FIRM_B_RECORD]),
    "EL-NEW": (0, "low", []),
}


@pytest.fixture
def frozen(app: Flask) -> Flask:
    app.config[FROZEN_NOW] = NOW
    return app


def api(app: Flask, query: str = "") -> dict:
    response = app.test_client().get("/api/risk" + query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def ranked(body: dict) -> list[tuple[int, str, int, str, list]]:
    return [(i["rank"], i["code"], i["score"], i["level"], i["reasons"]) for i in body["items"]]


def expected(*codes: str) -> list[tuple[int, str, int, str, list]]:
    return [(n, code, *EXPECTED[code]) for n, code in enumerate(codes, 1)]


def test_the_rule_gives_every_in_use_equipment_its_score_level_and_reasons_as_data(db, fleet):
    rows = equipment_risk(db, TODAY, Thresholds(high=50, medium=25))

    assert [(r["code"], r["score"], r["level"]) for r in rows] == [
        (code, score, level) for code, (score, level, _) in EXPECTED.items()]
    old = rows[0]
    assert old["reasons"] == [
        {"factor": "entrapments", "points": 40, "count": 2},
        {"factor": "overdue:periodic_inspection", "points": 25, "check": "periodic_inspection", "days": 45,
         "due_on": "2026-05-01"},
        {"factor": "age", "points": 20, "install_date": "2004-03-01", "years": 22}]


def test_an_old_elevator_overdue_with_two_entrapments_ranks_first_and_high_with_those_reasons(frozen, fleet):
    body = api(frozen)

    assert body["as_of"] == "2026-06-15"
    assert body["total"] == 8
    first = body["items"][0]
    assert {k: first[k] for k in ("rank", "code", "type", "district", "address", "use_unit", "firm", "level",
                                  "score")} == {
        "rank": 1, "code": "EL-OLD", "type": "elevator", "district": D1, "address": "EL-OLD Road",
        "use_unit": "Owners of EL-OLD", "firm": FIRM_A, "level": "high", "score": 85}
    assert first["reasons"] == EXPECTED["EL-OLD"][2]


def test_every_in_use_equipment_is_ranked_by_score_then_code_and_a_new_one_in_date_is_low_without_reasons(
        frozen, fleet):
    assert ranked(api(frozen)) == expected(*EXPECTED)
    assert ranked(api(frozen))[-1] == (8, "EL-NEW", 0, "low", [])


def test_a_firm_with_a_bad_maintenance_record_raises_the_score_of_each_of_its_equipment(frozen, fleet):
    scores = {i["code"]: i["score"] for i in api(frozen)["items"]}

    # EL-B3 and EL-NEW are both in date and not old; EL-B3's firm has 40 % of its elevators overdue for maintenance.
    assert (scores["EL-B3"], scores["EL-NEW"]) == (15, 0)


def test_the_firm_record_needs_five_of_its_equipment_in_use(frozen, db, fleet):
    # Firm A has three then: one in two overdue for maintenance is not a record yet.
    equipment(db, "EL-A3", district=D1, firm=FIRM_A, install_date="2024-01-10", records={"maintenance": "2026-05-26"})

    items = {i["code"]: i for i in api(frozen)["items"]}
    assert (items["EL-A3"]["score"], items["EL-A3"]["reasons"]) == (15, [MAINTENANCE_OVERDUE])
    assert items["EL-NEW"]["score"] == 0


def test_the_firm_fault_rate_counts_every_fault_of_its_equipment_in_the_window(frozen, db, fleet):
    # One more fault on EL-B1: Firm B's five elevators then had 5 faults in the window, 1 per equipment.
    alert(db, fleet["EL-B1"], "entrapment", "critical", at("2026-06-02 10:00"))

    items = {i["code"]: i for i in api(frozen)["items"]}
    firm_faults = {"factor": "firm_faults", "points": 5,
                   "fact": "Firm: 1 fault per equipment in the last 90 days, 5 on 5 (维保单位近90天台均故障1次)"}
    assert items["EL-B3"]["reasons"] == [FIRM_B_RECORD, firm_faults]
    assert (items["EL-B3"]["score"], items["EL-B1"]["score"]) == (20, 55)
    assert items["EL-B1"]["level"] == "high"


@pytest.mark.parametrize(("query", "codes"), [
    (f"?district={D2}", ("EL-B1", "EL-B2", "EL-B4", "EL-B5", "EL-B3")),
    (f"?firm={FIRM_A}", ("EL-OLD", "EL-NEW")),
    ("?level=medium", ("EL-B1", "EL-B2", "EL-B4")),
    ("?level=high", ("EL-OLD",)),
    ("?type=boiler", ("BL-1",)),
    (f"?district={D1}&level=low", ("BL-1", "EL-NEW")),
])
def test_the_filters_select_equipment_and_rank_within_what_they_select(frozen, fleet, query, codes):
    body = api(frozen, query)

    assert ranked(body) == expected(*codes)
    assert body["total"] == len(codes)


def test_a_page_further_down_keeps_the_ranks_of_the_whole_list(frozen, fleet):
    body = api(frozen, "?limit=2&offset=2")

    assert ranked(body) == expected(*EXPECTED)[2:4]
    assert (body["total"], body["limit"], body["offset"]) == (8, 2, 2)


def test_an_unknown_district_or_level_is_a_400_naming_it(frozen, fleet):
    client = frozen.test_client()

    assert client.get("/api/risk?district=Nowhere").get_json()["error"]["message"] == "no district named 'Nowhere'"
    assert client.get("/api/risk?level=severe").get_json()["error"]["message"] == (
        "level must be one of high, medium, low, not 'severe'")


def csv_rows(app: Flask, query: str = "") -> list[dict[str, str]]:
    response = app.test_client().get("/api/risk.csv" + query)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="risk-2026-06-15.csv"'
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


@pytest.mark.parametrize("query", ["", f"?district={D2}", "?level=low"])
def test_the_csv_has_the_rows_of_the_api_with_the_reasons_in_one_cell(frozen, fleet, query):
    rows = csv_rows(frozen, query)
    items = api(frozen, query)["items"]

    assert [(r["rank"], r["code"], r["type"], r["district"], r["address"], r["use_unit"], r["firm"], r["level"],
             r["score"], r["reasons"]) for r in rows] == [
        (str(i["rank"]), i["code"], i["type"], i["district"], i["address"], i["use_unit"], i["firm"] or "", i["level"],
         str(i["score"]), "; ".join(f"{r['fact']} +{r['points']}" for r in i["reasons"])) for i in items]


def test_the_csv_words_the_level_and_lists_the_reasons_with_their_points(frozen, fleet):
    first = csv_rows(frozen)[0]

    assert first["level_label"] == "High risk (高风险)"
    assert first["reasons"] == ("2 entrapments in the last 90 days (近90天困人2次) +40; "
                                "Periodic inspection overdue 45 days (超期未检45天) +25; "
                                "Installed 2004-03-01: 22 years old (已使用22年) +20")


def test_a_firm_scoped_app_ranks_only_its_equipment(frozen, db, fleet):
    firm_b = db.execute("SELECT id FROM maintenance_firms WHERE name = %s", (FIRM_B,)).fetchone()["id"]
    frozen.config[SCOPE_CONFIG] = Scope.of(firms=[firm_b])

    assert ranked(api(frozen)) == expected("EL-B1", "EL-B2", "EL-B4", "EL-B5", "EL-B3")
    assert [r["code"] for r in csv_rows(frozen)] == ["EL-B1", "EL-B2", "EL-B4", "EL-B5", "EL-B3"]
    assert frozen.test_client().get(f"/api/risk?firm={FIRM_A}").status_code == 400


def test_a_district_scoped_app_counts_the_firm_record_over_the_district_only(frozen, db, fleet):
    # A sixth Firm B elevator, in D1: across both districts Firm B has 2 of 6 overdue (33.3 %); within D1 it has one
    # elevator, too few for a record.
    equipment(db, "EL-B6", district=D1, firm=FIRM_B, install_date="2020-01-01")
    d1 = db.execute("SELECT id FROM districts WHERE name = %s", (D1,)).fetchone()["id"]

    everywhere = {i["code"]: i for i in api(frozen)["items"]}
    frozen.config[SCOPE_CONFIG] = Scope.of(districts=[d1])
    in_d1 = {i["code"]: i for i in api(frozen)["items"]}

    assert everywhere["EL-B6"]["reasons"] == [{
        "factor": "firm_maintenance", "points": 15, "fact": "Firm: 33.3 % of its elevators and escalators overdue for "
                                                            "maintenance, 2 of 6 (维保单位超期未维保率33.3 %)"}]
    assert (in_d1["EL-B6"]["score"], in_d1["EL-B6"]["reasons"]) == (0, [])
    assert set(in_d1) == {"EL-OLD", "EL-NEW", "BL-1", "EL-B6"}


@pytest.fixture
def strict_app(base_config: Config, db_url: str, db: psycopg.Connection) -> Iterator[Flask]:
    """The app with high risk from 90 points and medium from 20."""
    app = create_app(base_config.replace(database_url=db_url, risk_high_score=90, risk_medium_score=20))
    app.config[FROZEN_NOW] = NOW
    yield app
    close_pool(app)


def test_the_level_thresholds_are_the_settings(strict_app, fleet):
    levels = {i["code"]: i["level"] for i in api(strict_app)["items"]}

    assert levels == {"EL-OLD": "medium", "EL-B1": "medium", "EL-B2": "medium", "EL-B4": "medium",
                      "EL-B5": "medium", "BL-1": "medium", "EL-B3": "low", "EL-NEW": "low"}


def test_a_medium_threshold_not_below_the_high_one_stops_the_app_being_built(base_config, db_url):
    with pytest.raises(ConfigError) as failure:
        create_app(base_config.replace(database_url=db_url, risk_high_score=40, risk_medium_score=40))
    assert str(failure.value) == "risk_medium_score (40) must be below risk_high_score (40)"


def test_the_page_lists_the_ranked_equipment_with_levels_scores_and_reasons(frozen, fleet):
    response = frozen.test_client().get(f"/risk?district={D1}")
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    assert [row.split('href="/equipment/')[1].split('"')[0] for row in rows] == ["EL-OLD", "BL-1", "EL-NEW"]
    assert "High risk (高风险)" in rows[0] and ">85<" in rows[0]
    assert "2 entrapments in the last 90 days (近90天困人2次)" in rows[0] and "+40" in rows[0]
    assert "Water quality test overdue 14 days (水质检测超期14天)" in rows[1]
    assert "Low risk (低风险)" in rows[2] and ">0<" in rows[2]
    assert 'href="/api/risk.csv?district=%E6%9C%9D%E9%98%B3%E5%8C%BA"' in page
    assert '<a href="/risk" class="active">Risk (风险分级)</a>' in page
