"""The web UI and JSON API against the real test database: what an inspector or a firm sees."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import socket
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from flask.testing import FlaskClient

from models.compliance import compliance_statuses
from tests.conftest import register_equipment
from web import create_app
from web.equipment import LIST_FIELDS


def unreachable_database_url() -> str:
    """A database URL on a port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://semon:pw@127.0.0.1:{port}/x"


# --- test data -------------------------------------------------------------------------------------

def add_equipment(db: psycopg.Connection, code: str, *, type: str = "elevator", district: str = "朝阳区",
                  firm: str | None = "Firm A", **fields: Any) -> int:
    """conftest.register_equipment with this file's defaults: 朝阳区, Firm A, and no dates or ratings unless given."""
    defaults = {"install_date": None, "rated_speed_mps": None, "floors": None}
    return register_equipment(db, code, type, district=district, firm=firm, **(defaults | fields))


def add_inspection(db: psycopg.Connection, equipment_id: int, next_due_in_days: int, *,
                   kind: str = "periodic_inspection", performed_days_ago: int | None = None,
                   result: str = "pass", report_no: str = "", rectify_by: dt.date | None = None) -> None:
    """An inspection; unless performed_days_ago is given, performed one elevator interval (12 months, the
    compliance rules' default) before the due date, so that the rules put the next one next_due_in_days from today."""
    db.execute("INSERT INTO inspections (equipment_id, kind, performed_on, result, report_no, rectify_by)"
               " VALUES (%(id)s, %(kind)s, COALESCE(current_date - %(ago)s::int,"
               " (current_date + %(due)s - interval '12 months')::date), %(result)s,"
               " %(report_no)s, %(rectify_by)s)",
               {"id": equipment_id, "kind": kind, "ago": performed_days_ago, "due": next_due_in_days,
                "result": result, "report_no": report_no, "rectify_by": rectify_by})


def set_state(db: psycopg.Connection, equipment_id: int, *, status: str | None = "online",
              seen_ago_s: float = 10, changed_ago_s: float | None = None,
              values: str = '{"floor": 7}') -> dict[str, Any]:
    changed = seen_ago_s if changed_ago_s is None else changed_ago_s
    return db.execute(
        "INSERT INTO equipment_state (equipment_id, status, status_changed_at, last_seen, last_values)"
        " VALUES (%s, %s, now() - make_interval(secs => %s), now() - make_interval(secs => %s), %s)"
        " RETURNING *", (equipment_id, status, changed, seen_ago_s, values)).fetchone()


def add_alert(db: psycopg.Connection, equipment_id: int, kind: str, severity: str, *, state: str = "open",
              seen_ago_s: float = 60, count: int = 1, message: str = "") -> int:
    return db.execute(
        "INSERT INTO alerts (equipment_id, kind, source, severity, state, count, message, first_seen,"
        " last_seen, resolved_at) VALUES (%s, %s, 'device', %s, %s, %s, %s, now() - interval '1 day',"
        " now() - make_interval(secs => %s), CASE WHEN %s = 'resolved' THEN now() END) RETURNING id",
        (equipment_id, kind, severity, state, count, message, seen_ago_s, state)).fetchone()["id"]


SHANGHAI = ZoneInfo("Asia/Shanghai")


def clock(ts: dt.datetime) -> str:
    """How the pages show a time: in the users' zone (Asia/Shanghai), HH:MM today, with the date before that,
    and the zone."""
    local = ts.astimezone(SHANGHAI)
    if local.date() == dt.datetime.now(SHANGHAI).date():
        return f"{local:%H:%M} UTC+8"
    return f"{local:%Y-%m-%d %H:%M} UTC+8"


def db_date(db: psycopg.Connection, days_from_today: int) -> dt.date:
    """A date relative to the database's today, which is what the app compares against."""
    return db.execute("SELECT current_date + %s AS d", (days_from_today,)).fetchone()["d"]


# --- reading pages ---------------------------------------------------------------------------------

class _Tables(HTMLParser):
    """Collects the body rows of every table as lists of cell text, with each cell's class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str]]]] = []
        self._row: list[tuple[str, str]] | None = None
        self._cell: list[str] | None = None
        self._cell_class = ""
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
            self.tables.append([])
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
            self._cell_class = dict(attrs).get("class") or ""
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append((" ".join("".join(self._cell).split()), self._cell_class))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str, index: int = 0) -> list[list[str]]:
    """The text of each body row of the index-th table on the page."""
    parser = _Tables()
    parser.feed(html)
    return [[text for text, _ in row] for row in parser.tables[index]] if len(parser.tables) > index else []


def cell_classes(html: str, index: int = 0) -> list[list[str]]:
    """The class of each body cell of the index-th table on the page."""
    parser = _Tables()
    parser.feed(html)
    return [[cls for _, cls in row] for row in parser.tables[index]]


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def api(client: FlaskClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


# --- equipment list --------------------------------------------------------------------------------

def test_equipment_list_shows_registry_fields_sorted_by_code(client, db):
    add_equipment(db, "EL-002", address="1 Chang'an Ave", district="东城区", firm="Firm B")
    add_equipment(db, "BL-001", type="boiler", address="Heating plant", firm=None)
    add_equipment(db, "EL-001", address="5 Wangfujing")

    rows = table_rows(page(client, "/equipment"))

    assert [r[0] for r in rows] == ["BL-001", "EL-001", "EL-002"]
    assert rows[2][:5] == ["EL-002", "Elevator (电梯)", "东城区", "1 Chang'an Ave", "Firm B"]
    assert rows[0][1] == "Boiler (锅炉)"
    assert rows[0][4] == "—"


def test_root_is_the_equipment_list(client, db):
    add_equipment(db, "EL-001")

    html = page(client, "/")

    assert "<h1>Equipment" in html
    assert table_rows(html)[0][0] == "EL-001"


def test_it_shows_overdue_inspection(client, db):
    eid = add_equipment(db, "EL-001")
    add_inspection(db, eid, next_due_in_days=-3)

    html = page(client, "/equipment")

    assert "Overdue (超期未检)" in table_rows(html)[0][5]
    assert "inspection-overdue" in cell_classes(html)[0][5]
    assert api(client, "/api/equipment")["items"][0]["inspection_status"] == "overdue"


def test_it_shows_inspection_due_within_30_days_as_due_soon(client, db):
    soon = add_equipment(db, "EL-001")
    add_inspection(db, soon, next_due_in_days=30)
    later = add_equipment(db, "EL-002")
    add_inspection(db, later, next_due_in_days=31)

    html = page(client, "/equipment")

    assert [r[5].split(" next due")[0] for r in table_rows(html)] == ["Due soon (即将到期)", "OK (在有效期内)"]
    assert "inspection-due_soon" in cell_classes(html)[0][5]


def test_it_judges_inspection_by_the_latest_periodic_inspection(client, db):
    eid = add_equipment(db, "EL-001")
    add_inspection(db, eid, next_due_in_days=-370, performed_days_ago=730)
    add_inspection(db, eid, next_due_in_days=200)
    # A load test falling due does not make the periodic inspection overdue.
    add_inspection(db, eid, next_due_in_days=-10, kind="load_test", performed_days_ago=400)

    item = api(client, "/api/equipment")["items"][0]

    assert item["inspection_status"] == "ok"
    # Performed 12 months before that, and due 12 months after it (one day early if today + 200 is 29 February).
    due = db.execute("SELECT ((current_date + 200 - interval '12 months')::date + interval '12 months')::date AS d"
                     ).fetchone()["d"]
    assert item["next_inspection_due"] == due.isoformat()


def test_it_shows_never_recorded_inspection(client, db):
    add_equipment(db, "EL-001")

    assert "Never recorded" in table_rows(page(client, "/equipment"))[0][5]
    assert api(client, "/api/equipment")["items"][0]["inspection_status"] == "no_record"


def test_never_inspected_equipment_falls_due_one_interval_after_installation(client, db):
    add_equipment(db, "EL-001", install_date=db_date(db, -400))  # 12-month interval by default
    add_equipment(db, "EL-002", install_date=db_date(db, -30))

    html = page(client, "/equipment")
    items = api(client, "/api/equipment")["items"]

    # Not yet due, and nothing on record: compliance's never_recorded.
    assert [i["inspection_status"] for i in items] == ["overdue", "no_record"]
    assert [i["inspection_on_record"] for i in items] == [False, False]
    assert "Overdue (超期未检)" in table_rows(html)[0][5]
    assert "no inspection on record" in table_rows(html)[0][5]


def test_equipment_pages_agree_with_the_compliance_status(client, db):
    # Never inspected, commissioned 13 months ago: the first inspection is due 36 months from commissioning
    # (not 12 from installation, as the equipment page once said).
    vessel = add_equipment(db, "PV-001", type="pressure_vessel", install_date=db_date(db, -400),
                           commissioning_date=db_date(db, -395), safety_grade=2)
    # Failed 10 days ago with a rectification deadline yesterday: overdue since the deadline, not in a year.
    failed = add_equipment(db, "EL-001")
    add_inspection(db, failed, next_due_in_days=355, performed_days_ago=10, result="fail",
                   rectify_by=db_date(db, -1))
    # Failed with the deadline 20 days away: due soon.
    soon = add_equipment(db, "EL-002")
    add_inspection(db, soon, next_due_in_days=355, performed_days_ago=10, result="fail",
                   rectify_by=db_date(db, 20))
    today = db_date(db, 0)
    expected = {s.code: s for s in compliance_statuses(db, today, equipment_ids=[vessel, failed, soon])
                if s.check == "periodic_inspection"}
    assert (expected["PV-001"].status, expected["PV-001"].due_on) == ("never_recorded", db.execute(
        "SELECT (%s::date + interval '36 months')::date AS d", (db_date(db, -395),)).fetchone()["d"])
    assert (expected["EL-001"].status, expected["EL-001"].due_on) == ("overdue", db_date(db, -1))
    assert (expected["EL-002"].status, expected["EL-002"].due_on) == ("due_soon", db_date(db, 20))

    items = {i["code"]: i for i in api(client, "/api/equipment")["items"]}
    html_rows = {r[0]: r[5] for r in table_rows(page(client, "/equipment"))}

    for code, status in expected.items():
        want = "no_record" if status.status == "never_recorded" else status.status
        assert items[code]["inspection_status"] == want, code
        assert items[code]["next_inspection_due"] == status.due_on.isoformat(), code
        assert items[code]["inspection_on_record"] == (status.last_on is not None), code
        assert f"next due {status.due_on.isoformat()}" in html_rows[code], code
        assert [i["code"] for i in api(client, f"/api/equipment?status={want}")["items"]].count(code) == 1
        detail = api(client, f"/api/equipment/{code}")
        assert detail["inspection_status"] == want
        assert detail["checks"] == [
            {"check": s.check, "last_on": s.last_on and s.last_on.isoformat(),
             "due_on": s.due_on and s.due_on.isoformat(), "status": s.status}
            for s in compliance_statuses(db, today, equipment_ids=[status.equipment_id])]
    assert "Overdue (超期未检)" in html_rows["EL-001"]
    assert "Never recorded" in html_rows["PV-001"]
    parser = _Tables()
    parser.feed(page(client, "/equipment/EL-001"))
    # The first table naming the check is the checks table (the inspection records follow it).
    checks: dict[str, list[str]] = {}
    for row in (row for table in parser.tables for row in table):
        checks.setdefault(row[0][0], [text for text, _ in row])
    assert checks["Periodic inspection (定期检验)"] == [
        "Periodic inspection (定期检验)", db_date(db, -10).isoformat(), db_date(db, -1).isoformat(),
        "Overdue (超期未检)"]
    # Any other check never recorded is 无记录: 无检验记录 is the periodic inspection's word.
    assert checks["Maintenance (维护保养)"][3] == "Never recorded (无记录)"


def test_equipment_not_in_use_owes_no_inspection(client, db):
    scrapped = add_equipment(db, "EL-001", status="scrapped")
    add_inspection(db, scrapped, next_due_in_days=-100)

    assert "Not in use" in table_rows(page(client, "/equipment"))[0][5]
    assert api(client, "/api/equipment?status=overdue")["items"] == []


def test_offline_after_missed_heartbeats(client, db):
    fresh = add_equipment(db, "EL-001")
    set_state(db, fresh, seen_ago_s=170)  # under 3 missed 60 s heartbeats
    silent = add_equipment(db, "EL-002")
    state = set_state(db, silent, seen_ago_s=190, changed_ago_s=3600)

    html = page(client, "/equipment")
    items = api(client, "/api/equipment")["items"]

    rows = table_rows(html)
    assert rows[0][6] == "Online (在线)"
    assert rows[1][6] == f"Offline since {clock(state['last_seen'])} (离线)"
    assert [i["connection"] for i in items] == ["online", "offline"]
    assert items[0]["offline_since"] is None
    assert dt.datetime.fromisoformat(items[1]["offline_since"]) == state["last_seen"]


def test_it_is_offline_when_the_monitor_says_so(client, db):
    eid = add_equipment(db, "EL-001")
    # The last will arrives at once, so last_seen is recent; the status change is what counts.
    state = set_state(db, eid, status="offline", seen_ago_s=5, changed_ago_s=5)

    assert table_rows(page(client, "/equipment"))[0][6] == f"Offline since {clock(state['status_changed_at'])} (离线)"


def test_it_shows_no_data_for_equipment_never_seen(client, db):
    add_equipment(db, "EL-001")

    assert table_rows(page(client, "/equipment"))[0][6] == "No data (无数据)"
    assert api(client, "/api/equipment")["items"][0]["connection"] == "no_data"


def test_it_counts_open_alerts_only(client, db):
    eid = add_equipment(db, "EL-001")
    add_alert(db, eid, "entrapment", "critical")
    add_alert(db, eid, "door_open_too_long", "low", state="acknowledged")
    add_alert(db, eid, "overspeed", "critical", state="resolved")
    add_equipment(db, "EL-002")

    rows = table_rows(page(client, "/equipment"))

    assert [r[7] for r in rows] == ["2", "0"]
    assert [i["open_alerts"] for i in api(client, "/api/equipment")["items"]] == [2, 0]


def test_filters_by_district(client, db):
    add_equipment(db, "EL-001", district="朝阳区")
    add_equipment(db, "EL-002", district="海淀区")

    rows = table_rows(page(client, "/equipment?district=海淀区"))
    data = api(client, "/api/equipment?district=海淀区")

    assert [r[0] for r in rows] == ["EL-002"]
    assert data["total"] == 1
    assert [i["code"] for i in data["items"]] == ["EL-002"]


def test_filters_by_type_and_firm(client, db):
    add_equipment(db, "BL-001", type="boiler", firm="Firm A")
    add_equipment(db, "EL-001", firm="Firm A")
    add_equipment(db, "EL-002", firm="Firm B")

    by_type = api(client, "/api/equipment?type=elevator")
    by_both = api(client, "/api/equipment?type=elevator&firm=Firm+B")

    assert [i["code"] for i in by_type["items"]] == ["EL-001", "EL-002"]
    assert [i["code"] for i in by_both["items"]] == ["EL-002"]


def test_filters_overdue_equipment(client, db):
    overdue = add_equipment(db, "EL-001")
    add_inspection(db, overdue, next_due_in_days=-1)
    fine = add_equipment(db, "EL-002")
    add_inspection(db, fine, next_due_in_days=100)
    add_equipment(db, "EL-003")

    assert [r[0] for r in table_rows(page(client, "/equipment?status=overdue"))] == ["EL-001"]


def test_filters_by_each_inspection_status(client, db):
    add_inspection(db, add_equipment(db, "EL-001"), next_due_in_days=-1)
    add_inspection(db, add_equipment(db, "EL-002"), next_due_in_days=10)
    add_inspection(db, add_equipment(db, "EL-003"), next_due_in_days=100)
    add_equipment(db, "EL-004")
    add_equipment(db, "EL-005", status="suspended")

    found = {status: [i["code"] for i in api(client, f"/api/equipment?status={status}")["items"]]
             for status in ("overdue", "due_soon", "ok", "no_record", "not_required")}

    assert found == {"overdue": ["EL-001"], "due_soon": ["EL-002"], "ok": ["EL-003"], "no_record": ["EL-004"],
                     "not_required": ["EL-005"]}
    assert api(client, "/api/equipment?status=overdue")["total"] == 1


def test_filters_by_connection(client, db):
    set_state(db, add_equipment(db, "EL-001"), seen_ago_s=5)
    set_state(db, add_equipment(db, "EL-002"), seen_ago_s=600)
    add_equipment(db, "EL-003")

    assert [i["code"] for i in api(client, "/api/equipment?connection=offline")["items"]] == ["EL-002"]


def test_filters_by_code_or_address_substring(client, db):
    add_equipment(db, "EL-001", address="12 Jianguo Road")
    add_equipment(db, "EL-002", address="3 Guanghua Road")
    add_equipment(db, "ESC_9", type="escalator", address="100% Mall")

    assert [i["code"] for i in api(client, "/api/equipment?q=jianguo")["items"]] == ["EL-001"]
    assert [i["code"] for i in api(client, "/api/equipment?q=el-00")["items"]] == ["EL-001", "EL-002"]
    # % and _ are matched literally, not as wildcards.
    assert [i["code"] for i in api(client, "/api/equipment?q=0%25")["items"]] == ["ESC_9"]
    assert [i["code"] for i in api(client, "/api/equipment?q=C_")["items"]] == ["ESC_9"]


def test_empty_form_fields_do_not_filter(client, db):
    add_equipment(db, "EL-001")

    rows = table_rows(page(client, "/equipment?district=&type=&firm=&status=&connection=&q="))

    assert [r[0] for r in rows] == ["EL-001"]


def test_it_paginates_with_limit_and_offset(client, db):
    for n in range(5):
        add_equipment(db, f"EL-00{n}")

    data = api(client, "/api/equipment?limit=2&offset=2")
    html = page(client, "/equipment?limit=2&offset=2")

    assert data["total"] == 5
    assert [i["code"] for i in data["items"]] == ["EL-002", "EL-003"]
    assert [r[0] for r in table_rows(html)] == ["EL-002", "EL-003"]
    assert "3–4 of 5" in html
    assert 'href="/equipment?offset=4&amp;limit=2"' in html
    assert 'href="/equipment?limit=2"' in html


def test_the_list_shows_100_by_default(client, db):
    db.execute("INSERT INTO districts (name) VALUES ('朝阳区')")
    db.execute("INSERT INTO equipment (code, type, district_id)"
               " SELECT 'EL-' || lpad(n::text, 3, '0'), 'elevator', 1 FROM generate_series(1, 120) n")

    data = api(client, "/api/equipment")

    assert data["total"] == 120
    assert len(data["items"]) == 100
    assert data["limit"] == 100


def csv_of(client: FlaskClient, url: str, filename: str) -> list[list[str]]:
    """The rows of a CSV download, header first, checking it is the download Excel reads as UTF-8."""
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def as_cell(value: Any) -> str:
    """A JSON value as the CSV writes it."""
    return "" if value is None else ("true" if value else "false") if isinstance(value, bool) else str(value)


def test_the_equipment_list_exports_as_csv_what_it_shows_with_the_same_filters(client, db):
    first = add_equipment(db, "EL-001", address='=HYPERLINK("http://evil.example")', district="朝阳区")
    add_inspection(db, first, next_due_in_days=-3)
    state = set_state(db, first, seen_ago_s=600)
    add_alert(db, first, "entrapment", "critical")
    add_equipment(db, "BL-001", type="boiler", district="朝阳区", firm=None, address="Heating plant")
    add_equipment(db, "EL-002", district="海淀区")
    today = db_date(db, 0)

    rows = csv_of(client, "/api/equipment.csv?district=朝阳区", f"equipment-{today.isoformat()}.csv")
    items = api(client, "/api/equipment?district=朝阳区")["items"]

    assert rows[0] == list(LIST_FIELDS)
    assert [r[0] for r in rows[1:]] == [i["code"] for i in items] == ["BL-001", "EL-001"]
    assert rows[1] == [as_cell(items[0][f]) for f in LIST_FIELDS]
    # A time is in the users' zone with its offset, as in JSON; free text cannot run as a formula.
    el = dict(zip(rows[0], rows[2], strict=True))
    assert el["last_seen"] == items[1]["last_seen"]
    assert el["last_seen"].endswith("+08:00")
    assert dt.datetime.fromisoformat(el["offline_since"]) == state["last_seen"]
    assert el["address"] == """'=HYPERLINK("http://evil.example")"""
    assert (el["inspection_status"], el["next_inspection_due"], el["inspection_on_record"], el["open_alerts"]) == (
        "overdue", db_date(db, -3).isoformat(), "true", "1")


def test_the_equipment_csv_has_every_matching_row_and_the_page_links_to_it(client, db):
    db.execute("INSERT INTO districts (name) VALUES ('朝阳区')")
    db.execute("INSERT INTO equipment (code, type, district_id)"
               " SELECT 'EL-' || lpad(n::text, 3, '0'), 'elevator', 1 FROM generate_series(1, 120) n")

    rows = csv_of(client, "/api/equipment.csv?type=elevator", f"equipment-{db_date(db, 0).isoformat()}.csv")
    html = page(client, "/equipment?type=elevator&limit=10&offset=20")

    assert len(rows) == 1 + 120  # not a page of them
    assert 'href="/api/equipment.csv?type=elevator">Download CSV (all 120)</a>' in html
    assert api(client, "/api/equipment.csv?limit=10", status=400)["error"]["message"] == (
        "unknown parameter 'limit' (/api/equipment.csv takes district, type, firm, status, connection, q)")


# --- bad requests and errors -----------------------------------------------------------------------

@pytest.mark.parametrize(("query", "message"), [
    ("type=spaceship", "type must be one of elevator, escalator, boiler, pressure_vessel, not 'spaceship'"),
    ("limit=ten", "limit must be a whole number, not 'ten'"),
    ("limit=0", "limit must be between 1 and 1000, not 0"),
    ("offset=-1", "offset must be at least 0, not -1"),
    ("status=late", "status must be one of ok, due_soon, overdue, no_record, not_required, not 'late'"),
])
def test_api_rejects_bad_filter_values(client, db, query, message):
    body = api(client, f"/api/equipment?{query}", status=400)

    assert body == {"error": {"status": 400, "message": message}}


BIG = "99999999999999999999"
EQUIPMENT_PARAMETERS = "district, type, firm, status, connection, q, limit, offset"


@pytest.mark.parametrize(("url", "message"), [
    *[(f"{url}?offset={BIG}", f"offset must be at most 9223372036854775807, not {BIG}")
      for url in ("/api/equipment", "/api/hazards", "/api/registry/equipment", "/api/registry/firms",
                  "/api/compliance/due")],
    ("/api/equipment?limit=1e3", "limit must be a whole number, not '1e3'"),
    ("/api/equipment?offset=１２", "offset must be a whole number, not '１２'"),
    ("/api/equipment?page=-1", f"unknown parameter 'page' (/api/equipment takes {EQUIPMENT_PARAMETERS})"),
    ("/api/equipment?inspection_status=overdue&page=2",
     f"unknown parameters 'inspection_status', 'page' (/api/equipment takes {EQUIPMENT_PARAMETERS})"),
    ("/api/equipment/EL-001?verbose=1", "unknown parameter 'verbose' (/api/equipment/EL-001 takes no parameters)"),
    ("/api/equipment?limit=1&limit=2", "parameter limit is given more than once"),
    ("/api/equipment?q=a%00b", "parameter q contains a NUL character"),
    ("/api/equipment/EL%00-1", "path segment code contains a NUL character"),
    ("/api/equipment?q=" + "x" * 100_000, "parameter q is longer than 200 characters (100000)"),
    ("/api/equipment?q=%ZZ", "parameter 'q' is not percent-encoded UTF-8"),
    ("/api/equipment?q=%C3%28", "parameter 'q' is not percent-encoded UTF-8"),
    ("/api/equipment/%C3%28", "the path is not percent-encoded UTF-8"),
    ("/api/fault-codes?type=lift", "type must be one of elevator, escalator, boiler, pressure_vessel, not 'lift'"),
])
def test_api_refuses_a_bad_request_with_a_400_saying_what_is_wrong(client, db, url, message):
    add_equipment(db, "EL-001")

    assert api(client, url, status=400) == {"error": {"status": 400, "message": message}}


@pytest.mark.parametrize("url", ["/api/equipment", "/api/equipment.csv", "/api/hazards", "/api/registry/equipment",
                                 "/api/compliance/due", "/api/compliance/due.csv", "/equipment", "/hazards",
                                 "/compliance"])
def test_an_unknown_district_or_firm_is_a_400_naming_it_on_every_list(client, db, url):
    add_equipment(db, "EL-001", district="朝阳区", firm="Firm A")

    for query, message in (("district=Atlantis", "no district named 'Atlantis'"),
                           ("firm=Nobody", "no maintenance firm named 'Nobody'")):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400, url
        if url.startswith("/api/"):
            assert response.get_json() == {"error": {"status": 400, "message": message}}
        else:
            assert message.replace("'", "&#39;") in response.get_data(as_text=True)
    assert client.get(f"{url}?district=朝阳区&firm=Firm+A").status_code == 200


def test_an_unknown_district_of_the_old_elevators_is_the_same_400(client, db):
    assert api(client, "/api/compliance/old-elevators?district=Atlantis", status=400) == {
        "error": {"status": 400, "message": "no district named 'Atlantis'"}}


def test_page_shows_bad_filter_value_as_html_error(client, db):
    html = page(client, "/equipment?type=spaceship", status=400)

    assert "400 Bad Request" in html
    assert "type must be one of" in html


def test_api_returns_json_error_for_unknown_equipment(client, db):
    body = api(client, "/api/equipment/NOPE-1", status=404)

    assert body == {"error": {"status": 404, "message": "no equipment with code 'NOPE-1'"}}


def test_api_returns_json_error_for_unknown_route_and_method(client, db):
    assert api(client, "/api/nothing-here", status=404)["error"]["status"] == 404
    response = client.post("/api/equipment")
    assert response.status_code == 405
    assert response.get_json()["error"]["status"] == 405


def test_unknown_equipment_page_is_an_html_404(client, db):
    html = page(client, "/equipment/NOPE-1", status=404)

    assert "404 Not Found" in html
    assert "no equipment with code &#39;NOPE-1&#39;" in html


def test_server_errors_keep_the_error_shape_and_hide_details(app, db):
    def boom() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/api/boom", view_func=boom)
    app.add_url_rule("/boom", view_func=boom)
    client = app.test_client()

    api_response = client.get("/api/boom")
    page_response = client.get("/boom")

    assert api_response.status_code == 500
    assert api_response.get_json()["error"]["status"] == 500
    assert "secret" not in api_response.get_data(as_text=True)
    assert page_response.status_code == 500
    assert "500 Internal Server Error" in page_response.get_data(as_text=True)
    assert "secret" not in page_response.get_data(as_text=True)


# --- hazards ---------------------------------------------------------------------------------------

def test_hazards_lists_open_alerts_most_severe_first(client, db):
    a = add_equipment(db, "EL-001", district="朝阳区", firm="Firm A")
    b = add_equipment(db, "BL-001", type="boiler", district="海淀区", firm="Firm B")
    add_alert(db, a, "door_open_too_long", "low", seen_ago_s=10)
    add_alert(db, a, "entrapment", "critical", seen_ago_s=300, count=3, message="passenger trapped 45 s")
    add_alert(db, b, "overpressure", "critical", seen_ago_s=30, state="acknowledged")
    add_alert(db, b, "water_quality", "medium", seen_ago_s=5)
    add_alert(db, a, "overspeed", "critical", state="resolved", seen_ago_s=1)

    html = page(client, "/hazards")
    rows = table_rows(html)

    assert [(r[0], r[4].split()[0], r[5]) for r in rows] == [
        ("BL-001", "overpressure", "Critical"),
        ("EL-001", "entrapment", "Critical"),
        ("BL-001", "water_quality", "Medium"),
        ("EL-001", "door_open_too_long", "Low"),
    ]
    assert rows[1][1:4] == ["Elevator (电梯)", "朝阳区", "Firm A"]
    assert rows[1][6] == "Open (未处理)"
    assert rows[0][6] == "Acknowledged (已确认)"
    assert rows[1][7] == "3"
    assert rows[1][10] == "passenger trapped 45 s"
    assert 'href="/equipment/EL-001"' in html
    assert 'class="badge severity-critical"' in html


def test_api_hazards_gives_fields_with_iso_timestamps(client, db):
    eid = add_equipment(db, "EL-001", district="朝阳区", firm="Firm A")
    alert_id = add_alert(db, eid, "entrapment", "critical", message="trapped")
    stored = db.execute("SELECT first_seen, last_seen FROM alerts WHERE id = %s", (alert_id,)).fetchone()

    items = api(client, "/api/hazards")["items"]

    assert len(items) == 1
    item = items[0]
    assert {k: item[k] for k in ("id", "equipment_code", "equipment_type", "district", "firm", "kind",
                                 "severity", "state", "count", "message")} == {
        "id": alert_id, "equipment_code": "EL-001", "equipment_type": "elevator", "district": "朝阳区",
        "firm": "Firm A", "kind": "entrapment", "severity": "critical", "state": "open", "count": 1,
        "message": "trapped"}
    assert dt.datetime.fromisoformat(item["first_seen"]) == stored["first_seen"]
    assert dt.datetime.fromisoformat(item["last_seen"]) == stored["last_seen"]
    assert (item["kind_description"], item["kind_name_zh"]) == ("passenger trapped", "困人")


def test_hazards_filter_by_district_and_severity(client, db):
    a = add_equipment(db, "EL-001", district="朝阳区")
    b = add_equipment(db, "EL-002", district="海淀区")
    add_alert(db, a, "entrapment", "critical")
    add_alert(db, b, "entrapment", "critical")
    add_alert(db, b, "door_open_too_long", "low")

    items = api(client, "/api/hazards?district=海淀区&severity=critical")["items"]

    assert [(i["equipment_code"], i["kind"]) for i in items] == [("EL-002", "entrapment")]
    assert api(client, "/api/hazards?severity=apocalyptic", status=400)["error"]["status"] == 400


def test_hazards_name_compliance_and_presence_alerts_with_the_check_labels(client, db):
    eid = add_equipment(db, "EL-001")
    add_alert(db, eid, "overdue:periodic_inspection", "medium")
    add_alert(db, eid, "overdue:maintenance", "medium")
    add_alert(db, eid, "offline", "medium")
    add_alert(db, eid, "no_records", "low")
    add_alert(db, eid, "entrapment", "critical")

    kinds = {r[4].split()[0]: r[4] for r in table_rows(page(client, "/hazards"))}
    detail = {r[0].split()[0]: r[0] for r in table_rows(page(client, "/equipment/EL-001"), 0)}

    assert kinds == {
        "overdue:periodic_inspection":
            "overdue:periodic_inspection Periodic inspection (定期检验) — Overdue (超期未检)",
        "overdue:maintenance": "overdue:maintenance Maintenance (维护保养) — Overdue (超期未维保)",
        "offline": "offline Offline (离线)",
        "no_records": "no_records No records (无检验维保记录)",
        "entrapment": "entrapment Passenger trapped (困人)",  # a fault code: its description and Chinese name
    }
    assert detail == kinds


def test_hazards_list_resolved_alerts_on_request(app, client, db):
    eid = add_equipment(db, "EL-001")
    add_alert(db, eid, "entrapment", "critical")
    add_alert(db, eid, "door_open_too_long", "low", state="resolved", seen_ago_s=5)
    resolved = add_alert(db, eid, "overspeed", "critical", state="resolved", seen_ago_s=10)
    resolved_at = db.execute("SELECT resolved_at FROM alerts WHERE id = %s", (resolved,)).fetchone()["resolved_at"]

    items = api(client, "/api/hazards?state=resolved")["items"]
    rows = table_rows(page(client, "/hazards?state=resolved"))

    assert [(i["kind"], i["state"]) for i in items] == [("overspeed", "resolved"), ("door_open_too_long", "resolved")]
    assert dt.datetime.fromisoformat(items[0]["resolved_at"]) == resolved_at
    assert [i["kind"] for i in api(client, "/api/hazards")["items"]] == ["entrapment"]  # open ones by default
    assert [r[4].split()[0] for r in rows] == ["overspeed", "door_open_too_long"]
    local = resolved_at.astimezone(ZoneInfo(app.config["SEMON"].time_zone))
    assert rows[0][6] == "Resolved (已解决)"
    assert rows[0][10] == f"{local:%Y-%m-%d %H:%M} UTC+8"


def test_fault_codes_list_each_code_with_its_number_severity_types_and_meaning(client, db):
    data = api(client, "/api/fault-codes")
    boiler_critical = api(client, "/api/fault-codes?type=boiler&severity=critical")

    assert data["total"] == len(data["items"]) == db.execute("SELECT count(*) AS n FROM fault_codes").fetchone()["n"]
    assert data["items"][0] == {"name": "safety_circuit_open", "gbt_code": 1, "severity": "high",
                                "equipment_types": ["elevator", "escalator"], "description": "safety circuit open",
                                "name_zh": "安全回路断路"}
    numbered = [i["gbt_code"] for i in data["items"] if i["gbt_code"] is not None]
    assert numbered == sorted(numbered) and data["items"][len(numbered)]["gbt_code"] is None
    assert [i["name"] for i in boiler_critical["items"]] == ["low_water_level", "overpressure"]


# --- the planning list's check filter ------------------------------------------------------------

def test_the_planning_list_filters_by_check(client, db):
    eid = add_equipment(db, "EL-001", install_date=db_date(db, -800))
    add_inspection(db, eid, next_due_in_days=-3)
    every = "status=ok,due_soon,overdue,never_recorded"
    owed = compliance_statuses(db, db_date(db, 0), equipment_ids=[eid])

    for check, label in (("periodic_inspection", "Periodic inspection (定期检验)"),
                         ("maintenance", "Maintenance (维护保养)")):
        want = [("EL-001", s.check, s.status) for s in owed if s.check == check]
        assert len(want) == 1
        items = api(client, f"/api/compliance/due?{every}&check={check}")["items"]
        rows = csv_of(client, f"/api/compliance/due.csv?{every}&check={check}",
                      f"compliance-due-{db_date(db, 0).isoformat()}.csv")
        html = page(client, f"/compliance?{every}&check={check}")
        assert [(i["code"], i["check"], i["status"]) for i in items] == want
        assert [(r[0], r[6], r[9]) for r in rows[1:]] == want
        assert [(r[0], r[6]) for r in table_rows(html, -1)] == [("EL-001", label)]
        assert f'<option value="{check}" selected>{label}</option>' in html
        assert f"due.csv?check={check}&amp;status=" in html  # the download keeps the filter
    assert len(api(client, f"/api/compliance/due?{every}")["items"]) == len(owed)
    assert api(client, "/api/compliance/due?check=lunch", status=400)["error"]["message"] == (
        "check must be one of periodic_inspection, maintenance, governor_calibration, rescue_drill,"
        " internal_inspection, water_quality_test, safety_valve_calibration, pressure_gauge_verification,"
        " not 'lunch'")


# --- one equipment ---------------------------------------------------------------------------------

def test_equipment_page_shows_registry_state_inspections_and_alerts(client, db):
    eid = add_equipment(db, "EL-001", address="5 Wangfujing", use_unit="Wangfujing Mall", floors=12,
                        rated_speed_mps=1.75)
    add_inspection(db, eid, next_due_in_days=100, report_no="TS-2024-0042")
    set_state(db, eid, seen_ago_s=5, values='{"floor": 7, "door": "closed"}')
    add_alert(db, eid, "entrapment", "critical", message="passenger trapped")
    add_alert(db, eid, "overspeed", "critical", state="resolved", message="old overspeed")

    html = page(client, "/equipment/EL-001")

    for text in ("Wangfujing Mall", "5 Wangfujing", "Firm A", "1.75 m/s", "Online (在线)",
                 "TS-2024-0042", "passenger trapped", "old overspeed", "Resolved (已解决)"):
        assert text in html
    assert re.search(r"<th>floor</th><td>7</td>", html)
    assert re.search(r"<th>door</th><td>closed</td>", html)


def test_equipment_page_shows_offline_since_instead_of_values(client, db):
    eid = add_equipment(db, "EL-001")
    state = set_state(db, eid, seen_ago_s=3 * 86400, values='{"floor": 7}')

    html = page(client, "/equipment/EL-001")

    # Not today, so the date is given too.
    assert f"Offline since {clock(state['last_seen'])}" in html
    # The stale reading is only behind a "stale" disclosure, never presented as the current state.
    assert "Last reported values (stale" in html
    assert html.index("<th>floor</th>") > html.index("<details>")


def test_api_equipment_detail(client, db):
    eid = add_equipment(db, "EL-001", floors=12)
    add_inspection(db, eid, next_due_in_days=-5)
    set_state(db, eid, seen_ago_s=5, values='{"floor": 3}')
    add_alert(db, eid, "entrapment", "critical")

    body = api(client, "/api/equipment/EL-001")

    assert body["code"] == "EL-001"
    assert body["floors"] == 12
    assert body["inspection_status"] == "overdue"
    assert body["state"]["connection"] == "online"
    assert body["state"]["last_values"] == {"floor": 3}
    assert body["open_alerts"] == 1
    assert [a["kind"] for a in body["alerts"]["open"]] == ["entrapment"]
    # Records are facts; when the next one falls due is the compliance rules' answer, in checks.
    assert "next_due" not in body["inspections"][0]
    periodic = next(c for c in body["checks"] if c["check"] == "periodic_inspection")
    assert (periodic["due_on"], periodic["status"]) == (db_date(db, -5).isoformat(), "overdue")


# --- health and wiring -----------------------------------------------------------------------------

def test_healthz_reports_database(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_unreachable_database(base_config):
    app = create_app(base_config.replace(database_url=unreachable_database_url()))

    response = app.test_client().get("/healthz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert "cannot connect to the database" in body["database"]
    assert "pw" not in body["database"]


def test_creating_the_app_opens_no_connection_and_pages_say_the_database_is_down(base_config):
    # Would raise at creation if the factory connected; nothing listens on this port.
    app = create_app(base_config.replace(database_url=unreachable_database_url()))
    client = app.test_client()

    assert client.get("/api/equipment").get_json()["error"]["status"] == 503
    response = client.get("/equipment")
    assert response.status_code == 503
    assert "database is unavailable" in response.get_data(as_text=True)


def test_pages_use_no_external_resources(client, db):
    eid = add_equipment(db, "EL-001")
    add_alert(db, eid, "entrapment", "critical")

    for url in ("/equipment", "/hazards", "/equipment/EL-001", "/equipment/NOPE"):
        html = client.get(url).get_data(as_text=True)
        assert not re.search(r"(src|href)=\"(https?:)?//", html), url
        assert "<script" not in html
    css = client.get("/static/style.css")
    assert css.status_code == 200
    assert "url(" not in css.get_data(as_text=True)


def test_an_alert_raised_by_the_monitor_and_by_a_rule_shows_both_sources(client, db):
    eid = add_equipment(db, "EL-001")
    alert = add_alert(db, eid, "entrapment", "critical")
    db.execute("UPDATE alerts SET sources = '{device,rule}' WHERE id = %s", (alert,))

    [row] = table_rows(page(client, "/hazards"))
    [item] = api(client, "/api/hazards")["items"]

    assert row[4] == ("entrapment Passenger trapped (困人) "
                      "Reported by the monitor (设备上报) + Derived from telemetry (遥测推断)")
    assert (item["source"], item["sources"]) == ("device", ["device", "rule"])
