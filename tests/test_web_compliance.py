"""The compliance page and its JSON and CSV API, against the real test database with fixed dates."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from models.figures import LIST_COLUMNS, overdue_rates, record_daily_figures
from tests import test_figures
from tests.test_figures import AS_OF, CHAOYANG, FIRM_A, FIRM_B, HAIDIAN, equipment, in_date
from tests.test_web import table_rows

# The fleet of test_figures, whose figures are computed there by hand.
rules = test_figures.rules
fleet = test_figures.fleet
A = f"as_of={AS_OF.isoformat()}"


def api(client: FlaskClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def csv_rows(client: FlaskClient, url: str) -> list[list[str]]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")  # Excel then reads the Chinese names as UTF-8
    return list(csv.reader(io.StringIO(text[1:])))


def table_index(html: str, first_cell: str) -> int:
    """The index of the first table on the page with a row whose first cell is `first_cell`."""
    index = 0
    while rows := table_rows(html, index):
        if any(row[0] == first_cell for row in rows):
            return index
        index += 1
    raise AssertionError(f"no table with a row starting {first_cell!r}")


# --- the figures ---------------------------------------------------------------------------------------

def test_overdue_rate_by_district(client, fleet):
    data = api(client, f"/api/compliance/overdue-rate?group=district&{A}")

    assert data["as_of"] == AS_OF.isoformat()
    assert data["group"] == "district"
    # rate is 超期未检率: EL-A2's periodic inspection; ES-A1's overdue maintenance is in by_check only.
    assert [(i["district"], i["in_use"], i["overdue"]) for i in data["items"]] == [(CHAOYANG, 3, 1), (HAIDIAN, 4, 0)]
    assert data["items"][0]["rate"] == pytest.approx(1 / 3)
    assert data["items"][0]["by_check"]["maintenance"] == {"owing": 3, "overdue": 1, "rate": pytest.approx(1 / 3),
                                                           "never_recorded": 0}
    overall = data["overall"]
    assert {k: v for k, v in overall.items() if k != "by_check"} == {
        "in_use": 7, "overdue": 1, "rate": pytest.approx(1 / 7), "never_recorded": 1}
    assert overall["by_check"] == {
        "periodic_inspection": {"owing": 7, "overdue": 1, "rate": pytest.approx(1 / 7), "never_recorded": 1},
        "maintenance": {"owing": 5, "overdue": 1, "rate": 0.2, "never_recorded": 0},
        "governor_calibration": {"owing": 4, "overdue": 0, "rate": 0, "never_recorded": 0},
        "rescue_drill": {"owing": 5, "overdue": 0, "rate": 0, "never_recorded": 0},
        "internal_inspection": {"owing": 1, "overdue": 0, "rate": 0, "never_recorded": 0},
        "water_quality_test": {"owing": 1, "overdue": 0, "rate": 0, "never_recorded": 0},
        "safety_valve_calibration": {"owing": 2, "overdue": 0, "rate": 0, "never_recorded": 1},
        "pressure_gauge_verification": {"owing": 2, "overdue": 0, "rate": 0, "never_recorded": 1}}


def test_overdue_rate_by_type_and_overall(client, fleet):
    by_type = api(client, f"/api/compliance/overdue-rate?group=type&{A}")
    overall = api(client, f"/api/compliance/overdue-rate?group=overall&{A}")

    assert [(i["type"], i["overdue"], i["by_check"]["maintenance"]["overdue"] if "maintenance" in i["by_check"]
             else None) for i in by_type["items"]] == [
        ("elevator", 1, 0), ("escalator", 0, 1), ("boiler", 0, None), ("pressure_vessel", 0, None)]
    assert overall["items"] == [overall["overall"]]


def test_overdue_rate_history(client, db, fleet):
    record_daily_figures(db, AS_OF - timedelta(days=1))
    record_daily_figures(db, AS_OF)

    data = api(client, f"/api/compliance/overdue-rate/history?from={AS_OF - timedelta(days=6)}&to={AS_OF}")
    by_district = api(client, f"/api/compliance/overdue-rate/history?group=district&from={AS_OF}&to={AS_OF}")

    assert data["group"] == "overall"
    assert [(i["day"], i["in_use"], i["overdue"], i["by_check"]["maintenance"]["overdue"], i["any_check"])
            for i in data["items"]] == [((AS_OF - timedelta(days=1)).isoformat(), 7, 1, 1, None),
                                        (AS_OF.isoformat(), 7, 1, 1, None)]
    assert sorted((i["district"], i["overdue"]) for i in by_district["items"]) == [(CHAOYANG, 1), (HAIDIAN, 0)]


def test_coverage(client, db, fleet):
    # The API counts from the database's now; the fleet's report times are fixed in 2026, so set fresh ones.
    db.execute("UPDATE equipment_state SET last_seen = now() - interval '1 hour'")
    db.execute("UPDATE equipment_state SET last_seen = now() - interval '2 days'"
               " WHERE equipment_id = (SELECT id FROM equipment WHERE code = 'EL-A1')")

    data = api(client, "/api/compliance/coverage?group=type")

    assert data["window_hours"] == 24
    assert [(i["type"], i["in_use"], i["monitored"]) for i in data["items"]] == [
        ("elevator", 4, 2), ("escalator", 1, 1), ("boiler", 1, 1), ("pressure_vessel", 1, 0)]
    assert data["overall"] == {"in_use": 7, "monitored": 4, "share": pytest.approx(4 / 7)}


def test_old_elevators(client, fleet):
    data = api(client, f"/api/compliance/old-elevators?{A}")
    listed = api(client, f"/api/compliance/old-elevators?{A}&district={CHAOYANG}")

    assert data["years"] == 15
    assert [(i["district"], i["elevators"], i["old"]) for i in data["items"]] == [(CHAOYANG, 2, 1), (HAIDIAN, 2, 1)]
    assert (data["overall"]["old"], data["overall"]["install_date_unknown"]) == (2, 1)
    assert [(e["code"], e["install_date"]) for e in listed["elevators"]] == [("EL-A1", "2000-01-01")]


def test_old_elevators_csv(client, fleet):
    rows = csv_rows(client, f"/api/compliance/old-elevators.csv?{A}")
    in_haidian = csv_rows(client, f"/api/compliance/old-elevators.csv?{A}&district={HAIDIAN}")

    assert rows[0] == ["code", "district", "address", "use_unit", "firm", "install_date", "years_in_service"]
    assert rows[1:] == [["EL-A1", CHAOYANG, "1 Chaoyang Rd", "Tower A", FIRM_A, "2000-01-01", "26"],
                        ["EL-B1", HAIDIAN, "", "", FIRM_A, "2011-06-14", "15"]]
    assert in_haidian[1:] == rows[2:]


# --- the planning list ---------------------------------------------------------------------------------

def test_due_csv_header_and_rows_with_each_checks_own_label(client, fleet):
    rows = csv_rows(client, f"/api/compliance/due.csv?{A}&status=overdue")

    assert rows[0] == [*LIST_COLUMNS, "status_label"] == [
        "code", "type", "district", "address", "use_unit", "firm", "check", "last_done", "due", "status",
        "days_overdue", "status_label"]
    # 超期未检 is the periodic inspection's word; an overdue maintenance visit is 超期未维保.
    assert rows[1:] == [
        ["EL-A2", "elevator", CHAOYANG, "2 Chaoyang Rd", "Tower B", FIRM_A, "periodic_inspection", "2025-05-11",
         "2026-05-11", "overdue", "35", "Overdue (超期未检)"],
        ["ES-A1", "escalator", CHAOYANG, "", "", FIRM_B, "maintenance", "2026-05-26", "2026-06-10", "overdue", "5",
         "Overdue (超期未维保)"]]


def test_due_csv_labels_every_checks_overdue_status_in_its_own_words(client, db, fleet):
    db.execute("DELETE FROM inspections WHERE equipment_id = %s AND kind <> 'periodic_inspection'", (fleet["BL-B1"],))
    test_figures.record(db, fleet["BL-B1"], "water_quality_test", date(2026, 1, 2))  # due 2026-04-02
    test_figures.record(db, fleet["BL-B1"], "internal_inspection", date(2024, 1, 2))
    test_figures.record(db, fleet["BL-B1"], "safety_valve_calibration", date(2025, 1, 2))
    test_figures.record(db, fleet["BL-B1"], "pressure_gauge_verification", date(2025, 12, 2))

    rows = csv_rows(client, f"/api/compliance/due.csv?{A}&status=overdue&district={HAIDIAN}")

    assert sorted((r[6], r[11]) for r in rows[1:]) == [
        ("internal_inspection", "Overdue (内部检验超期)"), ("pressure_gauge_verification", "Overdue (压力表检定超期)"),
        ("safety_valve_calibration", "Overdue (安全阀校验超期)"), ("water_quality_test", "Overdue (水质检测超期)")]


def test_due_csv_by_default_lists_overdue_then_due_soon(client, fleet):
    rows = csv_rows(client, f"/api/compliance/due.csv?{A}")

    assert [r[9] for r in rows[1:4]] == ["overdue", "overdue", "due_soon"]
    assert rows[3][:2] == ["EL-B1", "elevator"]
    assert rows[3][8:] == ["2026-06-25", "due_soon", "", "Due soon (即将到期)"]
    assert {r[9] for r in rows[1:]} == {"overdue", "due_soon"}


def test_csv_text_cannot_run_as_a_spreadsheet_formula(client, db, fleet):
    db.execute("""UPDATE equipment SET address = '=HYPERLINK("http://evil.example")', use_unit = '+1-555'"""
               " WHERE code = 'EL-A2'")

    row = csv_rows(client, f"/api/compliance/due.csv?{A}&status=overdue")[1]
    item = api(client, f"/api/compliance/due?{A}&status=overdue")["items"][0]

    assert row[:5] == ["EL-A2", "elevator", CHAOYANG, """'=HYPERLINK("http://evil.example")""", "'+1-555"]
    assert item["address"] == """=HYPERLINK("http://evil.example")"""  # JSON is data, not a spreadsheet


def test_format_csv_is_the_same_export(client, fleet):
    assert csv_rows(client, f"/api/compliance/due?{A}&format=csv") == csv_rows(client, f"/api/compliance/due.csv?{A}")


@pytest.mark.parametrize(("query", "codes"), [
    (f"firm={FIRM_B}&status=overdue", ["ES-A1"]),
    (f"district={HAIDIAN}", ["EL-B1"]),
    (f"district={CHAOYANG}&type=elevator&status=overdue", ["EL-A2"]),
    ("status=due_soon", ["EL-B1"]),
    ("status=overdue,due_soon", ["EL-A2", "ES-A1", "EL-B1"]),
    ("status=overdue&status=due_soon", ["EL-A2", "ES-A1", "EL-B1"]),
])
def test_due_filters(client, fleet, query, codes):
    assert [r[0] for r in csv_rows(client, f"/api/compliance/due.csv?{A}&{query}")[1:]] == codes
    assert [i["code"] for i in api(client, f"/api/compliance/due?{A}&{query}")["items"]] == codes


def test_never_recorded_checks_can_be_listed(client, fleet):
    rows = csv_rows(client, f"/api/compliance/due.csv?{A}&status=never_recorded")

    assert {r[0] for r in rows[1:]} == {"PV-B1"}
    assert {r[7] for r in rows[1:]} == {""}  # never done: no date


def test_due_json_pages(client, fleet):
    data = api(client, f"/api/compliance/due?{A}&limit=1&offset=1")

    assert (data["total"], data["limit"], data["offset"]) == (3, 1, 1)
    assert data["statuses"] == ["overdue", "due_soon"]
    assert [(i["code"], i["check"], i["due"], i["days_overdue"]) for i in data["items"]] == [
        ("ES-A1", "maintenance", "2026-06-10", 5)]
    assert list(data["items"][0]) == list(LIST_COLUMNS)  # the codes only: no label in the JSON


def test_due_summary(client, fleet):
    data = api(client, f"/api/compliance/due/summary?{A}")

    assert [(r["firm"], r["overdue_checks"], r["due_soon_checks"]) for r in data["by_firm"]] == [
        (FIRM_A, 1, 1), (FIRM_B, 1, 0)]
    assert [(r["district"], r["overdue_equipment"]) for r in data["by_district"]] == [(CHAOYANG, 2), (HAIDIAN, 0)]
    assert [{k: n for k, n in r["overdue_by_check"].items() if n} for r in data["by_firm"]] == [
        {"periodic_inspection": 1}, {"maintenance": 1}]


# --- bad parameters ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "message"), [
    ("/api/compliance/overdue-rate?group=city", "group must be one of district, type, overall, not 'city'"),
    ("/api/compliance/overdue-rate?as_of=yesterday", "as_of must be a date as YYYY-MM-DD, not 'yesterday'"),
    ("/api/compliance/overdue-rate/history?to=0001-01-02",
     "to must be between 1900-01-01 and 2999-12-31, not '0001-01-02'"),
    ("/api/compliance/coverage?group=firm", "group must be one of district, type, overall, not 'firm'"),
    ("/api/compliance/old-elevators?district=Atlantis", "no district named 'Atlantis'"),
    ("/api/compliance/overdue-rate/history?from=2026-06-10&to=2026-06-01",
     "from (2026-06-10) must not be after to (2026-06-01)"),
    ("/api/compliance/overdue-rate/history?from=2000-01-01&to=2026-06-01",
     "from and to must be at most 3660 days apart"),
    ("/api/compliance/due?status=late", "status must be one of ok, due_soon, overdue, never_recorded, not 'late'"),
    ("/api/compliance/due.csv?status=overdue,late",
     "status must be one of ok, due_soon, overdue, never_recorded, not 'late'"),
    ("/api/compliance/due?format=xml", "format must be one of json, csv, not 'xml'"),
    ("/api/compliance/due.csv?firm=Nobody", "no maintenance firm named 'Nobody'"),
    ("/api/compliance/due.csv?district=Atlantis", "no district named 'Atlantis'"),
    ("/api/compliance/due?type=spaceship",
     "type must be one of elevator, escalator, boiler, pressure_vessel, not 'spaceship'"),
    ("/api/compliance/due?limit=0", "limit must be between 1 and 1000, not 0"),
    ("/api/compliance/due/summary?as_of=2026-02-30", "as_of must be a date as YYYY-MM-DD, not '2026-02-30'"),
])
def test_bad_parameters_get_the_json_error_shape(client, rules, url, message):
    assert api(client, url, 400) == {"error": {"status": 400, "message": message}}


# --- the page ------------------------------------------------------------------------------------------

def test_the_page_shows_the_figures_and_the_list(client, db, fleet):
    record_daily_figures(db, date.today())

    response = client.get(f"/compliance?{A}")

    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "Periodic inspection overdue rate (超期未检率): 14.29 %" in html  # EL-A2 of 7
    assert table_rows(html, 0) == [[CHAOYANG, "3", "1", "33.33 %", "0"], [HAIDIAN, "4", "0", "0.00 %", "1"]]
    # Every check's figure under its own name, each over the equipment owing the check.
    assert table_rows(html, table_index(html, "Maintenance overdue rate (超期未维保率)")) == [
        ["Periodic inspection overdue rate (超期未检率)", "7", "1", "14.29 %", "1"],
        ["Maintenance overdue rate (超期未维保率)", "5", "1", "20.00 %", "0"],
        ["Governor calibration overdue rate (限速器校验超期率)", "4", "0", "0.00 %", "0"],
        ["Rescue drill overdue rate (应急救援演练超期率)", "5", "0", "0.00 %", "0"],
        ["Internal inspection overdue rate (内部检验超期率)", "1", "0", "0.00 %", "0"],
        ["Water quality test overdue rate (水质检测超期率)", "1", "0", "0.00 %", "0"],
        ["Safety valve calibration overdue rate (安全阀校验超期率)", "2", "0", "0.00 %", "1"],
        ["Pressure gauge verification overdue rate (压力表检定超期率)", "2", "0", "0.00 %", "1"]]
    # The summary names each overdue check: Firm A's is an inspection, Firm B's a maintenance visit.
    by_firm = table_index(html, FIRM_A)
    assert [row[:3] for row in table_rows(html, by_firm)] == [
        [FIRM_A, "1", "超期未检 1"], [FIRM_B, "1", "超期未维保 1"]]
    assert [row[:3] for row in table_rows(html, by_firm + 1)] == [
        [CHAOYANG, "2", "超期未检 1 · 超期未维保 1"], [HAIDIAN, "0", ""]]
    assert "Elevators in service for more than 15 years (老旧电梯): 2" in html
    assert 'href="/api/compliance/due.csv?as_of=2026-06-15"' in html
    assert 'href="/api/compliance/due.csv?firm=Firm+B&amp;as_of=2026-06-15"' in html
    assert ">EL-A2</a>" in html and "2 Chaoyang Rd" in html
    assert 'class="active">Compliance (合规)</a>' in html
    # The same labels as the equipment pages: 超期未检 for the periodic inspection only, each check its own words.
    due = {row[0]: row for row in table_rows(html, -1)}
    assert due["EL-A2"][6:10] == ["Periodic inspection (定期检验)", "2025-05-11", "2026-05-11", "Overdue (超期未检)"]
    assert due["ES-A1"][6:10] == ["Maintenance (维护保养)", "2026-05-26", "2026-06-10", "Overdue (超期未维保)"]


def test_the_no_record_column_counts_the_inspections_the_list_shows_never_done(client, db, rules):
    # EL-N, installed in 2020, was never inspected: overdue, and with no inspection on record.
    in_date(db, equipment(db, "EL-1"), "elevator")
    equipment(db, "EL-N", install_date=date(2020, 1, 1))

    html = client.get(f"/compliance?{A}&status=ok,due_soon,overdue,never_recorded").get_data(as_text=True)
    rate = api(client, f"/api/compliance/overdue-rate?group=overall&{A}")["overall"]

    assert table_rows(html, 0) == [[CHAOYANG, "2", "1", "50.00 %", "1"]]  # in use, 超期未检, rate, no record
    never = [row for row in table_rows(html, -1) if row[6] == "Periodic inspection (定期检验)" and row[7] == "never"]
    assert [(row[0], row[9]) for row in never] == [("EL-N", "Overdue (超期未检)")]
    assert (rate["overdue"], rate["never_recorded"]) == (1, len(never))


def test_the_equipment_page_names_each_overdue_check_in_its_own_words(client, db, rules):
    # Inspected 10 days ago, last maintained 100 days ago, governor and rescue drill never done since 2020.
    eid = equipment(db, "EL-1", install_date=date(2020, 1, 1))
    db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) VALUES (%s, 'periodic_inspection',"
               " current_date - 10)", (eid,))
    db.execute("INSERT INTO maintenance_records (equipment_id, performed_on) VALUES (%s, current_date - 100)", (eid,))

    html = client.get("/equipment/EL-1").get_data(as_text=True)

    checks = {row[0]: row[3] for row in table_rows(html, table_index(html, "Maintenance (维护保养)"))}
    assert checks == {"Periodic inspection (定期检验)": "OK (在有效期内)",
                      "Maintenance (维护保养)": "Overdue (超期未维保)",
                      "Governor calibration (限速器校验)": "Overdue (限速器校验超期)",
                      "Rescue drill (应急救援演练)": "Overdue (应急救援演练超期)"}


def test_the_trend_shows_a_day_recorded_before_the_figures_per_check_as_what_it_kept(client, db, fleet):
    day = db.execute("SELECT current_date AS d").fetchone()["d"]
    record_daily_figures(db, day)
    db.execute("INSERT INTO compliance_daily (day, district_id, type, in_use, overdue_any_check,"
               " never_recorded_any_check, monitored) SELECT %s, id, 'elevator', 8, 2, 0, 4 FROM districts"
               " WHERE name = %s", (day - timedelta(days=1), CHAOYANG))

    html = client.get(f"/compliance?{A}").get_data(as_text=True)

    # The trend is of the days recorded up to today, whatever AS_OF; the fleet's figures today are computed live.
    today = overdue_rates(db, day).overall
    newest, older = table_rows(html, 3)
    assert newest[1:4] + newest[5:] == [str(today.in_use), str(today.overdue), f"{today.rate * 100:.2f} %", ""]
    assert older[1:] == ["8", "—", "—", "50.0 %", "2 (25.00 %)"]  # its 超期未检率 unknown; any check: 2 of 8


def test_the_page_filters_the_list(client, fleet):
    html = client.get(f"/compliance?{A}&firm={FIRM_B}&status=overdue").get_data(as_text=True)

    assert ">ES-A1</a>" in html and ">EL-A2</a>" not in html
    assert "due.csv?firm=Firm+B&amp;as_of=2026-06-15&amp;status=overdue" in html


def test_the_page_with_nothing_registered(client, rules):
    html = client.get("/compliance").get_data(as_text=True)

    assert "Periodic inspection overdue rate (超期未检率): —" in html
    assert "No daily figures recorded yet" in html


def test_the_page_reports_a_bad_parameter_as_html(client, rules):
    response = client.get("/compliance?status=late")

    assert response.status_code == 400
    assert response.mimetype == "text/html"
