"""Scope (semon/scope.py, docs/web.md, docs/access.md): signed in as a district's inspector, a firm's user or a use
unit's, every page and API answer shows only the equipment the user may see, as if the rest did not exist; an
equipment outside is a 404.

The check is generic: each answer to the user over the whole fleet must equal the answer to an administrator over a
database from which the equipment outside the scope (with its records, alerts, state, daily figures and the registry
entries only it refers to) has been deleted; a route the user's role may not use is a 403. Every GET route of the
app must be exercised here or be listed as returning no equipment."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from models.compliance import rules_from_config, sync_rules
from models.figures import record_daily_figures
from semon.clock import today
from semon.scope import Scope, equipment_condition
from tests.conftest import add_user, register_equipment, signed_in
from web.access import SCOPE_CONFIG, action_of, may

D1, D2 = "朝阳区", "海淀区"
FIRM_A, FIRM_B = "Firm A", "Firm B"
# code: (type, district, firm); no code is part of another, so a code in a body is that equipment.
FLEET = {
    "EL-101": ("elevator", D1, FIRM_A),
    "EL-102": ("elevator", D1, FIRM_B),
    "BL-103": ("boiler", D1, None),
    "EL-201": ("elevator", D2, FIRM_A),
    "ES-202": ("escalator", D2, FIRM_B),
}
USE_UNITS = {code: f"Owners of {code}" for code in FLEET}


@dataclass(frozen=True)
class Case:
    name: str
    user: dict[str, Any]   # the user signed in: add_user's role and parties
    visible: frozenset[str]
    # compliance_daily rows outside the scope, as SQL over h, written here rather than by semon.scope
    daily_outside: str
    # app.config[SCOPE_CONFIG] on top of the user's scope, from the ids of districts and firms by name
    narrower: Callable[[dict[str, int]], Scope] | None = None


CASES = [
    Case("district inspector", {"role": "inspector", "districts": (D1,)}, frozenset({"EL-101", "EL-102", "BL-103"}),
         f"h.district_id <> (SELECT id FROM districts WHERE name = '{D1}')"),
    Case("firm", {"role": "firm", "firm": FIRM_A}, frozenset({"EL-101", "EL-201"}),
         f"h.firm_id IS DISTINCT FROM (SELECT id FROM maintenance_firms WHERE name = '{FIRM_A}')"),
    Case("use unit", {"role": "use_unit", "use_unit": USE_UNITS["EL-102"]}, frozenset({"EL-102"}), "true"),
    Case("district and firm", {"role": "inspector", "all_districts": True}, frozenset({"EL-201", "ES-202"}),
         f"h.district_id <> (SELECT id FROM districts WHERE name = '{D2}') OR h.firm_id IS NULL",
         lambda ids: Scope.of(districts=[ids[D2]], firms=[ids[FIRM_A], ids[FIRM_B]])),
]

# Every GET route: the URLs that exercise it (with the fleet's codes and names, inside and outside any scope).
_CODES = sorted(FLEET)
_COMPLIANCE_GROUPS = ("district", "type", "overall")
URLS: dict[str, list[str]] = {
    "/": ["/"],
    "/equipment": ["/equipment", f"/equipment?district={D2}", f"/equipment?firm={FIRM_B}", "/equipment?status=overdue",
                   "/equipment?limit=1&offset=1"],
    "/equipment/<code>": [f"/equipment/{c}" for c in _CODES],
    "/api/equipment": ["/api/equipment", f"/api/equipment?district={D1}", "/api/equipment?connection=online",
                       "/api/equipment?status=overdue", "/api/equipment?type=elevator&limit=1"],
    "/api/equipment.csv": ["/api/equipment.csv", f"/api/equipment.csv?firm={FIRM_A}",
                           "/api/equipment.csv?type=elevator"],
    "/api/equipment/<code>": [f"/api/equipment/{c}" for c in _CODES],
    "/hazards": ["/hazards", f"/hazards?firm={FIRM_A}", "/hazards?severity=critical"],
    "/alerts/<int:alert_id>": [f"/alerts/{n}" for n in range(1, 2 * len(FLEET) + 1)],
    "/api/alerts/<int:alert_id>": [f"/api/alerts/{n}" for n in range(1, 2 * len(FLEET) + 1)],
    "/silences": ["/silences", "/silences?ended=yes"],
    "/api/silences": ["/api/silences", "/api/silences?ended=yes"],
    "/api/hazards": ["/api/hazards", f"/api/hazards?district={D2}", "/api/hazards?limit=2&offset=1",
                     "/api/hazards?state=resolved"],
    "/compliance": ["/compliance", f"/compliance?district={D1}", f"/compliance?firm={FIRM_B}&status=overdue",
                    "/compliance?status=never_recorded"],
    "/api/compliance/overdue-rate": [f"/api/compliance/overdue-rate?group={g}" for g in _COMPLIANCE_GROUPS],
    "/api/compliance/overdue-rate/history": [f"/api/compliance/overdue-rate/history?group={g}"
                                             for g in _COMPLIANCE_GROUPS],
    "/api/compliance/coverage": [f"/api/compliance/coverage?group={g}" for g in _COMPLIANCE_GROUPS],
    "/api/compliance/old-elevators": ["/api/compliance/old-elevators", f"/api/compliance/old-elevators?district={D1}",
                                      f"/api/compliance/old-elevators?district={D2}"],
    "/api/compliance/old-elevators.csv": ["/api/compliance/old-elevators.csv",
                                          f"/api/compliance/old-elevators.csv?district={D2}"],
    "/api/compliance/due": ["/api/compliance/due", "/api/compliance/due?status=ok,due_soon,overdue,never_recorded",
                            f"/api/compliance/due?firm={FIRM_B}", f"/api/compliance/due?district={D1}&format=csv",
                            "/api/compliance/due?limit=2&offset=1", "/api/compliance/due?check=maintenance"],
    "/api/compliance/due.csv": ["/api/compliance/due.csv", f"/api/compliance/due.csv?district={D2}",
                                f"/api/compliance/due.csv?firm={FIRM_A}&status=overdue,never_recorded"],
    "/api/compliance/due/summary": ["/api/compliance/due/summary"],
    "/risk": ["/risk", f"/risk?district={D1}", f"/risk?firm={FIRM_B}", "/risk?level=low&limit=2&offset=1"],
    "/api/risk": ["/api/risk", f"/api/risk?district={D2}", "/api/risk?type=elevator&limit=2", "/api/risk?level=high"],
    "/api/risk.csv": ["/api/risk.csv", f"/api/risk.csv?firm={FIRM_A}", "/api/risk.csv?type=elevator"],
    "/ratings": ["/ratings", f"/ratings?district={D1}", "/ratings?grade=A&limit=1"],
    "/api/ratings": ["/api/ratings", f"/api/ratings?district={D2}", "/api/ratings?limit=1&offset=1"],
    "/api/ratings.csv": ["/api/ratings.csv", f"/api/ratings.csv?district={D1}"],
    "/ratings/<path:name>": [f"/ratings/{f}" for f in (FIRM_A, FIRM_B)],
    "/api/ratings/<path:name>": [f"/api/ratings/{f}?months=2" for f in (FIRM_A, FIRM_B)],
    "/api/registry/equipment": ["/api/registry/equipment", f"/api/registry/equipment?firm={FIRM_B}",
                                "/api/registry/equipment?type=elevator&limit=1&offset=1"],
    "/api/registry/equipment/<code>": [f"/api/registry/equipment/{c}" for c in _CODES],
    "/api/registry/<kind>": ["/api/registry/firms", "/api/registry/districts", "/api/registry/use-units",
                             "/api/registry/firms?q=firm"],
    "/api/registry/<kind>/<path:name>": [f"/api/registry/firms/{f}" for f in (FIRM_A, FIRM_B)]
                                   + [f"/api/registry/districts/{d}" for d in (D1, D2)]
                                   + [f"/api/registry/use-units/{u}" for u in USE_UNITS.values()],
}
# GET routes that return no equipment, alert or figure.
NOT_EQUIPMENT = {"/healthz", "/static/<path:filename>", "/api/fault-codes", "/schemas/", "/schemas/<filename>",
                 "/login", "/tokens"}
# GET routes only administrators, who see everything, may use: not narrowed (the audit log's rows are registry rows).
ADMINS_ONLY = {"/users", "/audit", "/api/audit.csv", "/escalation", "/contacts"}


def build_fleet(db: psycopg.Connection) -> dict[str, int]:
    """The fleet, each equipment with an overdue inspection, maintenance, state, open alerts and a use unit, and
    two days of daily figures; returns the ids of the districts and firms by name."""
    sync_rules(db, rules_from_config())
    for n, (code, (kind, district, firm)) in enumerate(sorted(FLEET.items())):
        eid = register_equipment(db, code, kind, district=district, firm=firm, use_unit=USE_UNITS[code],
                                 address=f"{n + 1} Test Rd", install_date="2000-01-01")
        ids = {r["name"]: r["id"] for r in db.execute(
            "SELECT id, name FROM districts UNION ALL SELECT id, name FROM maintenance_firms")}
        # Overdue for its periodic inspection; maintained (by its firm) two days ago.
        db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) VALUES (%s, 'periodic_inspection',"
                   " current_date - 400 + %s)", (eid, n))
        db.execute("INSERT INTO maintenance_records (equipment_id, firm_id, performed_on) VALUES (%s, %s,"
                   " current_date - 2)", (eid, ids.get(firm)))
        # Online, but one in two has been silent for two days.
        db.execute("INSERT INTO equipment_state (equipment_id, status, status_changed_at, last_seen, last_values)"
                   " VALUES (%s, 'online', now() - interval '3 days', now() - %s * interval '1 day', '{}')",
                   (eid, 2 * (n % 2)))
        db.execute("INSERT INTO silences (equipment_id, reason, starts_at, ends_at) VALUES (%s, %s,"
                   " now() - interval '1 hour', now() + interval '1 day')", (eid, f"upgrade of {code}"))
        for alert_kind, severity in (("entrapment" if kind != "boiler" else "overpressure", "critical"),
                                     ("overdue:periodic_inspection", "medium")):
            db.execute("INSERT INTO alerts (equipment_id, kind, source, severity, firm_id, first_seen, last_seen)"
                       " VALUES (%s, %s, 'device', %s, %s, now() - interval '1 day', now() - %s * interval '1 min')",
                       (eid, alert_kind, severity, ids.get(firm), n + 1))
    day = today(db)
    record_daily_figures(db, day - timedelta(days=1))
    record_daily_figures(db, day)
    return ids


def keep_only(db: psycopg.Connection, visible: frozenset[str], daily_outside: str) -> None:
    """Delete the equipment outside (with every row that refers to it), the daily figures outside, and the
    districts, firms and use units no equipment refers to any more."""
    outside = [r["id"] for r in db.execute("SELECT id FROM equipment WHERE NOT code = ANY(%s)", (list(visible),))]
    children = db.execute("""SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
                               FROM pg_constraint c
                               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
                              WHERE c.contype = 'f' AND c.confrelid = 'equipment'::regclass""").fetchall()
    for child in children:
        db.execute(f"DELETE FROM {child['tbl']} WHERE {child['col']} = ANY(%s)", (outside,))
    db.execute("DELETE FROM equipment WHERE id = ANY(%s)", (outside,))
    db.execute(f"DELETE FROM compliance_daily h WHERE {daily_outside}")
    for table, column in (("use_units", "use_unit_id"), ("maintenance_firms", "firm_id"),
                          ("districts", "district_id")):
        db.execute(f"DELETE FROM {table} t WHERE NOT EXISTS (SELECT FROM equipment e WHERE e.{column} = t.id)")


def answer(client: FlaskClient, url: str) -> tuple[int, str, Any]:
    """(status, mimetype, body) of a GET, the body parsed from JSON, with the moment of the answer left out."""
    response = client.get(url)
    body: Any = response.get_data(as_text=True)
    # The site header names who is signed in, and what the role may use: not part of the answer compared; nor are
    # the forms of what the role may do (each with its session's CSRF token), marked <!-- act --> in the pages.
    body = re.sub(r'<header class="site">.*?</header>', "", body, flags=re.DOTALL)
    body = re.sub(r"<!-- act -->.*?<!-- /act -->", "", body, flags=re.DOTALL)
    if response.mimetype == "application/json":
        body = json.loads(body)
        if isinstance(body, dict):
            body.pop("at", None)  # coverage is counted at the database's now, which moves on between requests
    return response.status_code, response.mimetype, body


def every_answer(client: FlaskClient) -> dict[str, tuple[int, str, Any]]:
    return {url: answer(client, url) for urls in URLS.values() for url in urls}


def permitted(app: Flask, role: str, url: str) -> bool:
    """Whether `role` may GET `url` (web/access.py)."""
    endpoint, _ = app.url_map.bind("localhost").match(url.partition("?")[0])
    return may(role, action_of(endpoint, "GET"))


def item_codes(client: FlaskClient, url: str) -> set[str]:
    status, _, body = answer(client, url)
    assert status == 200, body
    return {i.get("code") or i.get("equipment_code") for i in body["items"]}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_user_is_answered_as_if_only_the_equipment_it_may_see_existed(app, db, case):
    ids = build_fleet(db)
    admin = app.test_client()
    everything = every_answer(admin)
    add_user(db, "someone", **case.user)
    if case.narrower is not None:
        app.config[SCOPE_CONFIG] = case.narrower(ids)
    user = signed_in(app, "someone")
    narrowed = every_answer(user)
    hidden = set(FLEET) - case.visible
    role = case.user["role"]

    def may_read(url: str) -> bool:
        return permitted(app, role, url)

    # Plain checks first, so that a failure reads simply.
    assert item_codes(user, "/api/equipment") == case.visible
    assert item_codes(user, "/api/registry/equipment") == case.visible
    assert item_codes(user, "/api/hazards") == case.visible
    assert {line.split(",")[0] for line in answer(user, "/api/equipment.csv")[2].splitlines()[1:]} == case.visible
    if may_read("/api/risk"):
        assert {r["code"] for r in answer(user, "/api/compliance/due")[2]["items"]} == case.visible
        assert item_codes(user, "/api/risk") == case.visible
        assert {line.split(",")[1] for line in answer(user, "/api/risk.csv")[2].splitlines()[1:]} == case.visible
    for code in FLEET:
        want = 200 if code in case.visible else 404
        for url in (f"/equipment/{code}", f"/api/equipment/{code}", f"/api/registry/equipment/{code}"):
            assert narrowed[url][0] == want, url
    for url, (status, _, body) in narrowed.items():
        if status != 404:  # a 404 names the code asked for
            text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
            assert not [code for code in hidden if code in text], url
        if not may_read(url):
            assert status == 403, url
    # Not vacuous: the scope hides something from each kind of answer.
    for url in ("/equipment", "/hazards", "/compliance", "/api/compliance/overdue-rate?group=overall",
                "/api/compliance/overdue-rate/history?group=overall", "/api/compliance/coverage?group=overall",
                "/api/compliance/old-elevators", "/api/compliance/due/summary", "/api/registry/use-units",
                "/risk"):
        if may_read(url):
            assert narrowed[url] != everything[url], url

    # Then everything: the same answers as a database holding only the equipment inside.
    app.config.pop(SCOPE_CONFIG, None)
    keep_only(db, case.visible, case.daily_outside)
    assert item_codes(admin, "/api/equipment") == case.visible
    expected = every_answer(admin)
    for url in expected:
        if may_read(url):
            assert narrowed[url] == expected[url], url


def test_every_get_route_is_checked_for_scope(app):
    """A new route that returns equipment must be added to URLS (and so narrowed), or to NOT_EQUIPMENT."""
    routes = {rule.rule for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())}

    unchecked = routes - set(URLS) - NOT_EQUIPMENT - ADMINS_ONLY
    assert unchecked == set(), "GET routes not checked for scope: add them to URLS"
    assert set(URLS) | NOT_EQUIPMENT | ADMINS_ONLY <= routes, "URLS names routes the app no longer has"
    for url in ADMINS_ONLY:
        assert [role for role in ("inspector", "firm", "use_unit") if permitted(app, role, url)] == [], url


def test_everything_adds_nothing_to_the_sql():
    assert equipment_condition(Scope.everything(), "e") == ("", {})
    assert Scope.everything().is_everything


def test_the_condition_narrows_on_both_lists_and_nothing_passes_an_empty_one():
    sql, values = equipment_condition(Scope.of(districts=[2, 1], firms=[5]), "c", prefix=" WHERE ")
    assert sql == " WHERE (c.district_id = ANY(%(scope_district_ids)s) AND c.firm_id = ANY(%(scope_firm_ids)s))"
    assert values == {"scope_district_ids": [1, 2], "scope_firm_ids": [5]}
    assert equipment_condition(Scope.of(firms=[]), "e")[1] == {"scope_firm_ids": []}


def test_a_scope_that_is_not_a_scope_is_refused_rather_than_widened(app, db):
    app.config[SCOPE_CONFIG] = {"district_ids": [1]}

    assert app.test_client().get("/api/equipment").status_code == 500


def test_the_condition_narrows_on_use_units_when_the_scope_names_them():
    sql, values = equipment_condition(Scope.of(firms=[5], use_units=[9, 3]), "e", prefix="")
    assert sql == "(e.firm_id = ANY(%(scope_firm_ids)s) AND e.use_unit_id = ANY(%(scope_use_unit_ids)s))"
    assert values == {"scope_firm_ids": [5], "scope_use_unit_ids": [3, 9]}


def test_two_scopes_together_let_through_only_what_both_do():
    assert Scope.everything() & Scope.of(firms=[1, 2]) == Scope.of(firms=[1, 2])
    assert Scope.of(districts=[1, 2]) & Scope.of(districts=[2, 3], firms=[7]) == Scope.of(districts=[2], firms=[7])
    assert Scope.nothing() & Scope.everything() == Scope.of(districts=[])
