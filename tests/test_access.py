"""Nobody, and no firm, sees or changes another firm's equipment (docs/access.md): every route of the app, read from
Flask's url_map so that a new route cannot be forgotten, is walked as a user of another party in each role but the
administrator's (another firm's user, an inspector of another district, another use unit's user) — with the first firm's
codes and names in every path segment and every declared parameter, reads with its session and API token, writes
with the forms' CSRF token — and as nobody. Nothing of the first firm shows in any page, API answer, CSV or figure,
and nothing of the registry, users or tokens changes."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import pytest
from flask import Flask
from werkzeug.routing import Rule

from models.compliance import rules_from_config, sync_rules
from models.figures import record_daily_figures
from semon.clock import today
from tests.conftest import add_user, anonymous, api_token, register_equipment, signed_in
from web.auth import LOGIN_ENDPOINT, OPEN_PATHS, OPEN_PREFIXES
from web.params import declared

ALPHA = {"code": "EL-A1", "address": "甲秘密路1号", "firm": "Firm Alpha", "use_unit": "Alpha Owners",
         "district": "甲区", "user": "alpha-user", "alert": "alpha-secret-alert"}
BETA = {"code": "EL-B1", "address": "乙路2号", "firm": "Firm Beta", "use_unit": "Beta Owners", "district": "乙区",
        "user": "beta-user", "alert": "beta-alert"}
MARKERS = tuple(ALPHA.values())
# What the first firm's name is in each registry list.
KIND_NAMES = {"firms": ALPHA["firm"], "districts": ALPHA["district"], "use-units": ALPHA["use_unit"]}
_SEGMENT = re.compile(r"<(?:[^<>:]+:)?([a-z_]+)>")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Tables a walk of another firm's user must leave as they were (its own tokens and sessions aside).
WATCHED = {
    "equipment": "SELECT * FROM equipment ORDER BY id",
    "maintenance_firms": "SELECT * FROM maintenance_firms ORDER BY id",
    "districts": "SELECT * FROM districts ORDER BY id",
    "use_units": "SELECT * FROM use_units ORDER BY id",
    "alerts": "SELECT * FROM alerts ORDER BY id",
    "alert_steps": "SELECT * FROM alert_steps ORDER BY id",
    "silences": "SELECT * FROM silences ORDER BY id",
    "inspections": "SELECT * FROM inspections ORDER BY id",
    "maintenance_records": "SELECT * FROM maintenance_records ORDER BY id",
    "users": "SELECT id, username, role, password_hash, disabled, session_generation FROM users"
             " WHERE username <> %(walker)s ORDER BY id",
    "alpha_tokens": "SELECT t.* FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.username = 'alpha-user'",
}


def add_party(db: psycopg.Connection, party: dict[str, str]) -> None:
    eid = register_equipment(db, party["code"], district=party["district"], firm=party["firm"],
                             use_unit=party["use_unit"], address=party["address"], install_date="2000-01-01")
    firm_id = db.execute("SELECT firm_id FROM equipment WHERE id = %s", (eid,)).fetchone()["firm_id"]
    db.execute("INSERT INTO alerts (equipment_id, kind, source, severity, firm_id, first_seen, last_seen, message)"
               " VALUES (%s, 'entrapment', 'device', 'critical', %s, now(), now(), %s)", (eid, firm_id, party["alert"]))
    db.execute("INSERT INTO silences (equipment_id, reason, ends_at)"
               " VALUES (%s, 'lift upgrade', now() + interval '1 day')", (eid,))
    db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) VALUES (%s, 'periodic_inspection',"
               " current_date - 400)", (eid,))
    db.execute("INSERT INTO maintenance_records (equipment_id, firm_id, performed_on) VALUES (%s, %s,"
               " current_date - 2)", (eid, firm_id))
    add_user(db, party["user"], "firm", firm=party["firm"])


@pytest.fixture
def two_firms(db: psycopg.Connection) -> int:
    """Two firms, each with an overdue equipment, an open alert and a user, and the daily figures; returns the id
    of the first firm's user's API token."""
    sync_rules(db, rules_from_config())
    add_party(db, ALPHA)
    add_party(db, BETA)
    record_daily_figures(db, today(db))
    api_token(db, ALPHA["user"])
    return db.execute("SELECT id FROM api_tokens").fetchone()["id"]


def segment_values(rule: Rule, token_id: int) -> Iterator[dict[str, str]]:
    """The first firm's values for the rule's path segments: one set per registry list for <kind>."""
    # The first party's alert and maintenance window are the first of each (the tables restart their ids).
    own = {"code": ALPHA["code"], "username": ALPHA["user"], "token_id": str(token_id), "filename": "style.css",
           "alert_id": "1", "silence_id": "1"}
    kinds = KIND_NAMES if "kind" in rule.arguments else {"": ""}
    for kind, name in kinds.items():
        yield {arg: own.get(arg, ALPHA["code"]) for arg in rule.arguments} | (
            {"kind": kind, "name": name} if kind else {})


def path_of(rule: Rule, values: dict[str, str]) -> str:
    return _SEGMENT.sub(lambda m: quote(values[m.group(1)], safe="/"), rule.rule)


def urls(app: Flask, rule: Rule, token_id: int) -> Iterator[str]:
    """The rule's path with the first firm's values, alone and with each declared parameter naming the first firm."""
    for values in segment_values(rule, token_id):
        path = path_of(rule, values)
        yield path
        for parameter in declared(app.view_functions[rule.endpoint]):
            for marker in (ALPHA["firm"], ALPHA["district"], ALPHA["code"], ALPHA["use_unit"]):
                yield f"{path}?{parameter}={quote(marker)}"


def methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def leaked(response: Any, url: str, sent: dict[str, Any] | None = None) -> list[str]:
    """The first firm's markers in the answer, but for what its URL (or the form it `sent`) asked for: an error, a
    redirect's next or a form may echo that back (a row of the first firm's would hold others: its address, firm,
    district)."""
    body = response.get_data(as_text=True)
    asked = unquote(url) + " ".join(str(v) for v in (sent or {}).values())
    return [m for m in MARKERS if m in body and m not in asked]


# What the alert, maintenance-window and record forms and APIs would accept for the first party.
HANDLING_FIELDS = {"comment": "taken over", "assigned_to": ALPHA["user"], "equipment": ALPHA["code"],
                   "reason": "taken over", "ends_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
                   "check": "maintenance", "date": dt.date.today().isoformat(), "result": "pass"}


def api_body(url: str) -> dict[str, Any]:
    """A body the write would accept from a user who may write: it must be refused for who is asking, not for what."""
    path = unquote(url.partition("?")[0])
    if path.startswith("/api/alerts/"):
        return {"assigned_to": ALPHA["user"]} if path.endswith("/assign") else {"comment": "taken over"}
    if path == "/api/silences":
        return {k: HANDLING_FIELDS[k] for k in ("equipment", "reason", "ends_at")}
    if path.startswith("/api/silences/"):
        return {}
    if path.endswith("/records"):
        return {k: HANDLING_FIELDS[k] for k in ("check", "date", "result")}
    if path.startswith("/api/registry/equipment/"):
        return {"address": "taken over"}
    if path == "/api/registry/equipment":
        return {"code": "EL-X9", "type": "elevator", "subtype": "traction", "district": ALPHA["district"],
                "address": "taken over", "maintenance_firm": ALPHA["firm"], "install_date": "2020-01-01"}
    if path.count("/") > 3:  # one firm, district or use unit
        return {"email": "taken@over.example"}
    return {"name": "Intruder Co"}


def snapshot(db: psycopg.Connection, walker: str = BETA["user"]) -> dict[str, list[dict[str, Any]]]:
    """The watched tables, but for the walking user's own row (signing out everywhere changes it)."""
    return {name: db.execute(query, {"walker": walker}).fetchall() for name, query in WATCHED.items()}


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


# Every role but the administrator's, each given the second party only: its firm, its district, its use unit.
OTHER_PARTY_USERS = {
    "firm": BETA["user"],
    "inspector": "beta-inspector",
    "use_unit": "beta-unit",
}


@pytest.mark.parametrize("role", sorted(OTHER_PARTY_USERS))
def test_a_user_of_another_party_sees_and_changes_nothing_of_the_first_firm_on_any_route(app, db, two_firms, role):
    add_user(db, "beta-inspector", "inspector", districts=(BETA["district"],))
    add_user(db, "beta-unit", "use_unit", use_unit=BETA["use_unit"])
    username = OTHER_PARTY_USERS[role]
    before = snapshot(db, username)
    reader = signed_in(app, username)
    walked = 0
    writes: list[tuple[str, str]] = []
    for rule in app.url_map.iter_rules():
        for method in methods(rule):
            for url in urls(app, rule, two_firms):
                if method != "GET":
                    writes.append((method, url))
                    continue
                response = reader.get(url)
                assert response.status_code < 500, f"GET {url}: {response.status_code}"
                assert leaked(response, url) == [], f"GET {url}"
                walked += 1
    # Writes last, each with a client of its own: signing out (everywhere) is among them.
    for method, url in writes:
        writer = signed_in(app, username)
        if url.startswith("/api/"):
            response = writer.open(url, method=method, json=api_body(url))
        else:
            csrf = _CSRF.search(writer.get("/tokens").get_data(as_text=True)).group(1)
            sent = {"csrf_token": csrf, "name": "beta's token", "username": "intruder", "role": "admin",
                    "password": "a long password", "firm": ALPHA["firm"]} | HANDLING_FIELDS
            response = writer.open(url, method=method, data=sent)
        assert response.status_code < 500, f"{method} {url}: {response.status_code}"
        assert leaked(response, url, sent if not url.startswith("/api/") else api_body(url)) == [], f"{method} {url}"
        walked += 1

    assert snapshot(db, username) == before
    assert walked > 150  # every route was walked, not skipped


def test_another_firms_user_counts_only_its_own_equipment_in_the_figures(app, two_firms):
    beta = signed_in(app, BETA["user"])

    assert {i["code"] for i in beta.get("/api/compliance/due").get_json()["items"]} == {BETA["code"]}
    assert [i["code"] for i in beta.get("/api/risk").get_json()["items"]] == [BETA["code"]]
    overall = beta.get("/api/compliance/overdue-rate?group=overall").get_json()["items"][0]
    assert overall["in_use"] == 1
    csv = beta.get("/api/compliance/due.csv").get_data(as_text=True)
    assert ALPHA["code"] not in csv and BETA["code"] in csv


def test_nobody_reaches_any_route_but_the_open_ones_and_the_login_page(app, db, two_firms):
    before = snapshot(db)
    walked = 0
    for rule in app.url_map.iter_rules():
        for method in methods(rule):
            for values in segment_values(rule, two_firms):
                url = path_of(rule, values)
                response = anonymous(app).open(url, method=method, json={"name": "x"})
                assert leaked(response, url) == [], f"{method} {url}"
                walked += 1
                if is_open(url) or rule.endpoint == LOGIN_ENDPOINT:
                    continue
                if url.startswith("/api/"):
                    assert response.status_code == 401, f"{method} {url}"
                    assert response.get_json()["error"]["status"] == 401, f"{method} {url}"
                else:
                    assert response.status_code == 302, f"{method} {url}"
                    assert response.headers["Location"].startswith("/login"), f"{method} {url}"

    assert snapshot(db) == before
    assert walked > 40


def test_health_metrics_static_files_and_vendor_schemas_stay_open(app, db):
    open_rules = [r.rule for r in app.url_map.iter_rules() if is_open(r.rule.split("<")[0])]

    assert anonymous(app).get("/healthz").status_code == 200
    assert anonymous(app).get("/static/style.css").status_code == 200
    assert "/healthz" in open_rules and "/static/<path:filename>" in open_rules
    if "/schemas/" in open_rules:  # another part of the app serves them (docs/api.md)
        assert anonymous(app).get("/schemas/").status_code == 200


def test_a_route_no_permission_names_is_an_administrators_alone(app, db, two_firms):
    app.add_url_rule("/api/new-thing", "new_thing", lambda: {"ok": True})

    assert signed_in(app, BETA["user"]).get("/api/new-thing").status_code == 403
    assert app.test_client().get("/api/new-thing").get_json() == {"ok": True}
