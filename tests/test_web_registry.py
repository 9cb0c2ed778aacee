"""The registry's JSON API against the real test database: lists with filters, items, create and update, and
validation errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

API = "/api/registry"


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def error(response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


@pytest.fixture
def fleet(client: FlaskClient) -> None:
    """Two districts, two firms, two use units and four equipment, all created through the API."""
    for district in ({"name": "徐汇区", "admin_code": "310104", "authority": "徐汇区市场监管局"},
                     {"name": "闵行区"}):
        ok(client.post(f"{API}/districts", json=district), 201)
    ok(client.post(f"{API}/firms", json={"name": "Shenghui Lifts", "duty_phone": "021-5555 1234",
                                         "contact_person": "Wang Lei", "email": "duty@shenghui.example"}), 201)
    ok(client.post(f"{API}/firms", json={"name": "Heat Safe Co"}), 201)
    ok(client.post(f"{API}/use-units", json={"name": "Block 3 Owners", "contact_person": "Li Na",
                                             "contact_phone": "13800138000", "email": "safety@block3.example"}),
       201)
    ok(client.post(f"{API}/use-units", json={"name": "Dye Works"}), 201)
    for item in (
        {"code": "EL-1", "type": "elevator", "subtype": "traction", "district": "徐汇区", "address": "1 Tianyao Rd",
         "use_unit": "Block 3 Owners", "maintenance_firm": "Shenghui Lifts", "floors": 18, "rated_speed_mps": 1.75,
         "manufacturer": "Otis", "model": "GeN2", "monitor_vendor": "LiftEye", "monitor_model": "LE-3",
         "install_date": "2008-05-01", "on_demand_maintenance": True, "maintenance_cycle_days": 30,
         "governor_install_date": "2020-01-15"},
        {"code": "EL-2", "type": "elevator", "subtype": "hydraulic", "district": "闵行区", "status": "suspended",
         "maintenance_firm": "Shenghui Lifts"},
        {"code": "ES-1", "type": "escalator", "subtype": "moving_walk", "district": "徐汇区",
         "address": "Xujiahui Mall"},
        {"code": "BL-1", "type": "boiler", "subtype": "steam", "district": "闵行区", "use_unit": "Dye Works",
         "maintenance_firm": "Heat Safe Co", "rated_pressure_mpa": "1.25"},
        {"code": "PV-1", "type": "pressure_vessel", "subtype": "pressure_vessel", "district": "闵行区",
         "use_unit": "Dye Works", "safety_grade": "2", "commissioning_date": "2021-04-01"},
    ):
        ok(client.post(f"{API}/equipment", json=item), 201)


def codes(client: FlaskClient, query: str) -> list[str]:
    return [i["code"] for i in ok(client.get(f"{API}/equipment?{query}"))["items"]]


def test_equipment_list_filters(client, fleet):
    assert codes(client, "") == ["BL-1", "EL-1", "EL-2", "ES-1", "PV-1"]
    assert codes(client, "type=elevator") == ["EL-1", "EL-2"]
    assert codes(client, "subtype=moving_walk") == ["ES-1"]
    assert codes(client, "district=闵行区") == ["BL-1", "EL-2", "PV-1"]
    assert codes(client, "firm=Shenghui Lifts") == ["EL-1", "EL-2"]
    assert codes(client, "use_unit=Dye Works") == ["BL-1", "PV-1"]
    assert codes(client, "status=suspended") == ["EL-2"]
    assert codes(client, "q=xujiahui") == ["ES-1"]
    assert codes(client, "q=el-") == ["EL-1", "EL-2"]
    assert codes(client, "monitor=yes") == ["EL-1"]
    assert codes(client, "type=elevator&district=徐汇区") == ["EL-1"]
    page = ok(client.get(f"{API}/equipment?limit=2&offset=2"))
    assert (page["total"], [i["code"] for i in page["items"]]) == (5, ["EL-2", "ES-1"])
    assert "subtype must be one of" in error(client.get(f"{API}/equipment?subtype=rope"))["message"]


def test_one_equipment_has_every_registry_field(client, fleet):
    item = ok(client.get(f"{API}/equipment/EL-1"))
    assert {k: item[k] for k in ("type", "subtype", "district", "use_unit", "maintenance_firm", "floors",
                                 "rated_speed_mps", "manufacturer", "model", "monitor_fitted", "install_date",
                                 "status")} == {
        "type": "elevator", "subtype": "traction", "district": "徐汇区", "use_unit": "Block 3 Owners",
        "maintenance_firm": "Shenghui Lifts", "floors": 18, "rated_speed_mps": 1.75, "manufacturer": "Otis",
        "model": "GeN2", "monitor_fitted": True, "install_date": "2008-05-01", "status": "in_use"}
    assert (item["on_demand_maintenance"], item["maintenance_cycle_days"], item["governor_install_date"]) == (
        True, 30, "2020-01-15")
    assert ok(client.get(f"{API}/equipment/BL-1"))["rated_pressure_mpa"] == 1.25
    vessel = ok(client.get(f"{API}/equipment/PV-1"))
    assert (vessel["safety_grade"], vessel["on_demand_maintenance"], vessel["commissioning_date"]) == (
        2, False, "2021-04-01")
    assert error(client.get(f"{API}/equipment/NOPE"), 404)["message"] == "no equipment with code 'NOPE'"


def test_entities_list_and_item(client, fleet):
    firms = ok(client.get(f"{API}/firms"))["items"]
    assert [(f["name"], f["equipment_count"]) for f in firms] == [("Heat Safe Co", 1), ("Shenghui Lifts", 2)]
    assert ok(client.get(f"{API}/firms/Shenghui Lifts"))["duty_phone"] == "021-5555 1234"
    assert [d["name"] for d in ok(client.get(f"{API}/districts?q=徐汇"))["items"]] == ["徐汇区"]
    assert ok(client.get(f"{API}/districts/徐汇区"))["admin_code"] == "310104"
    unit = ok(client.get(f"{API}/use-units/Block 3 Owners"))
    assert (unit["contact_person"], unit["contact_phone"], unit["email"], unit["equipment_count"]) == (
        "Li Na", "13800138000", "safety@block3.example", 1)
    assert error(client.get(f"{API}/use-units/Nobody"), 404)["status"] == 404
    assert error(client.get(f"{API}/widgets"), 404)["status"] == 404


def test_update_equipment_with_patch_and_put(client, fleet, db):
    before = db.execute("SELECT updated_at FROM equipment WHERE code = 'EL-1'").fetchone()["updated_at"]
    item = ok(client.patch(f"{API}/equipment/EL-1", json={"floors": 20, "monitor_vendor": "", "use_unit": None}))
    assert (item["floors"], item["monitor_fitted"], item["use_unit"], item["manufacturer"]) == (20, False, None,
                                                                                                 "Otis")
    row = db.execute("SELECT use_unit, use_unit_id, updated_at FROM equipment WHERE code = 'EL-1'").fetchone()
    assert (row["use_unit"], row["use_unit_id"]) == ("", None) and row["updated_at"] > before
    # PUT replaces the whole entry: fields left out are emptied.
    item = ok(client.put(f"{API}/equipment/EL-1", json={"type": "elevator", "district": "闵行区",
                                                         "use_unit": "Dye Works"}))
    assert (item["district"], item["use_unit"], item["floors"], item["manufacturer"], item["subtype"]) == (
        "闵行区", "Dye Works", None, "", None)
    assert db.execute("SELECT use_unit FROM equipment WHERE code = 'EL-1'").fetchone()["use_unit"] == "Dye Works"
    # Unchanged values leave the row alone.
    stamp = db.execute("SELECT updated_at FROM equipment WHERE code = 'EL-1'").fetchone()["updated_at"]
    ok(client.patch(f"{API}/equipment/EL-1", json={"district": "闵行区"}))
    assert db.execute("SELECT updated_at FROM equipment WHERE code = 'EL-1'").fetchone()["updated_at"] == stamp


def test_an_item_put_back_as_it_was_read_changes_nothing(client, fleet, db):
    before = db.execute("SELECT * FROM equipment ORDER BY code").fetchall()
    for path in ("equipment/EL-1", "equipment/PV-1", "firms/Shenghui Lifts", "use-units/Dye Works"):
        item = ok(client.get(f"{API}/{path}"))
        assert ok(client.put(f"{API}/{path}", json=item)) == item
    assert db.execute("SELECT * FROM equipment ORDER BY code").fetchall() == before


def test_update_entities(client, fleet):
    firm = ok(client.patch(f"{API}/firms/Heat Safe Co", json={"duty_phone": "400-820-1234", "licence_no": "TS3331"}))
    assert (firm["duty_phone"], firm["licence_no"]) == ("400-820-1234", "TS3331")
    district = ok(client.put(f"{API}/districts/徐汇区", json={"name": "徐汇区", "phone": "021-64870000"}))
    assert (district["admin_code"], district["phone"]) == ("", "021-64870000")
    unit = ok(client.patch(f"{API}/use-units/Dye Works", json={"email": "boiler@dyeworks.example"}))
    assert (unit["name"], unit["email"]) == ("Dye Works", "boiler@dyeworks.example")
    assert error(client.patch(f"{API}/use-units/Nobody", json={"address": "x"}), 404)["status"] == 404


@pytest.mark.parametrize(("path", "body", "field", "reason"), [
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "colour": "red"}, "colour",
     "unknown field"),
    ("equipment", {"code": "EL 9", "type": "elevator", "district": "徐汇区"}, "code", "is not a registry code"),
    ("equipment", {"type": "elevator", "district": "徐汇区"}, "code", "is required"),
    ("equipment", {"code": "EL-9", "type": "lift", "district": "徐汇区"}, "type", "is not one of"),
    ("equipment", {"code": "EL-9", "type": "elevator", "subtype": "steam", "district": "徐汇区"}, "subtype",
     "is not a subtype of elevator"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "floors": 2.5}, "floors",
     "is not a whole number"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "floors": -3}, "floors",
     "must be greater than 0"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "floors": True}, "floors",
     "'true' is not a whole number"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "floors": [1]}, "floors",
     "must be a string, a number or true/false, not list"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "safety_grade": 2}, "safety_grade",
     "applies only to pressure_vessel"),
    ("equipment", {"code": "PV-9", "type": "pressure_vessel", "district": "徐汇区", "safety_grade": 6},
     "safety_grade", "is not a safety grade (1 to 5)"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "on_demand_maintenance": "maybe"},
     "on_demand_maintenance", "is not true or false"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "install_date": "2020-02-30"},
     "install_date", "is not a date"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "静安区"}, "district",
     "no district '静安区' is registered"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "maintenance_firm": "Nobody"},
     "maintenance_firm", "no maintenance firm 'Nobody' is registered"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "status": "broken"}, "status",
     "is not one of in_use, suspended, scrapped"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "rated_speed_mps": "nan"},
     "rated_speed_mps", "is not a finite number"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "rated_speed_mps": "inf"},
     "rated_speed_mps", "is not a finite number"),
    ("equipment", {"code": "EL-9", "type": "elevator", "district": "徐汇区", "rated_load_kg": 99999999999},
     "rated_load_kg", "is too large"),
    ("firms", {"name": "X", "email": "not-an-address"}, "email", "is not an e-mail address"),
    ("firms", {"name": "X", "duty_phone": "call us"}, "duty_phone", "is not a phone number"),
    ("firms", {"duty_phone": "021-1234"}, "name", "is required"),
    ("districts", {"name": "X", "admin_code": "31A"}, "admin_code", "is not a six-digit division code"),
    ("use-units", {"name": "X", "credit_code": "123"}, "credit_code", "is not a unified social credit code"),
    ("use-units", {"name": "X", "email": "nobody"}, "email", "is not an e-mail address"),
    ("use-units", {"name": "x" * 201}, "name", "is longer than 200 characters"),
])
def test_create_rejects_bad_fields_naming_them(client, fleet, path, body, field, reason):
    failure = error(client.post(f"{API}/{path}", json=body))
    assert failure["status"] == 400 and failure["field"] == field
    assert failure["message"].startswith(f"{field}: ") and reason in failure["message"]


def test_bad_updates_and_duplicates(client, fleet, db):
    assert error(client.post(f"{API}/equipment", data="[1]", content_type="application/json"))["field"] == "body"
    assert error(client.patch(f"{API}/equipment/EL-1", json={"code": "EL-7"}))["message"] == (
        "code: cannot be changed (it is 'EL-1')")
    # A subtype must fit the type already registered.
    assert error(client.patch(f"{API}/equipment/BL-1", json={"subtype": "traction"}))["field"] == "subtype"
    assert error(client.patch(f"{API}/equipment/BL-1", json={"type": "elevator"}))["field"] == "subtype"
    assert error(client.patch(f"{API}/equipment/BL-1", json={"safety_grade": 2}))["field"] == "safety_grade"
    assert ok(client.patch(f"{API}/equipment/PV-1", json={"safety_grade": 3}))["safety_grade"] == 3
    assert error(client.put(f"{API}/equipment/BL-1", json={"type": "boiler"}))["field"] == "district"
    assert error(client.patch(f"{API}/firms/Heat Safe Co", json={"name": "Heat Co"}))["field"] == "name"
    assert error(client.post(f"{API}/equipment", json={"code": "EL-1", "type": "elevator", "district": "徐汇区"}),
                 409)["status"] == 409
    assert error(client.post(f"{API}/districts", json={"name": "徐汇区"}), 409)["status"] == 409
    assert error(client.patch(f"{API}/equipment/NOPE", json={}), 404)["status"] == 404
    many = error(client.post(f"{API}/equipment", json={"code": "", "type": "lift", "district": "徐汇区"}))
    assert [p["field"] for p in many["problems"]] == ["code", "type"]
    assert db.execute("SELECT type FROM equipment WHERE code = 'BL-1'").fetchone()["type"] == "boiler"


def test_a_firm_whose_name_holds_a_slash_is_read_and_changed_at_its_path(client, fleet):
    created = client.post(f"{API}/firms", json={"name": "Beta Lift / North", "duty_phone": "021-5555 0000"})
    ok(created, 201)
    ok(client.patch(f"{API}/equipment/EL-2", json={"maintenance_firm": "Beta Lift / North"}))

    assert created.headers["Location"] == "/api/registry/firms/Beta%20Lift%20/%20North"
    firm = ok(client.get(created.headers["Location"]))
    assert (firm["name"], firm["duty_phone"], firm["equipment_count"]) == ("Beta Lift / North", "021-5555 0000", 1)
    changed = ok(client.patch(f"{API}/firms/Beta Lift / North", json={"duty_phone": "400-820-0000"}))
    assert (changed["name"], changed["duty_phone"]) == ("Beta Lift / North", "400-820-0000")
    # The slash may be sent encoded as well.
    assert ok(client.get(f"{API}/firms/Beta%20Lift%20%2F%20North"))["duty_phone"] == "400-820-0000"
    assert codes(client, "firm=Beta+Lift+%2F+North") == ["EL-2"]
    assert error(client.get(f"{API}/firms/Beta Lift / South"), 404)["message"] == (
        "no firms entry named 'Beta Lift / South'")
