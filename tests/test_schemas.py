"""The vendors' JSON Schemas (docs/vendors.md): generated from the ingester's field table and the fault codes, so the
committed files are what the code gives; they accept what the simulators and the docs send, refuse what the ingester
refuses, and the web app serves them without signing in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ingest.messages import Equipment, FaultCode, Lookup, Rejected, Telemetry, parse_message
from semon.schemas import SCHEMAS_DIR, all_schemas, differences, example_name, fault_codes, schema_name
from semon.vocabulary import CHANNELS, EQUIPMENT_TYPES
from simulators.monitor import MonitorMix
from simulators.scenario import load_scenario
from simulators.simulation import FleetSimulation
from tests.conftest import REPO, anonymous

NOW = datetime(2026, 11, 22, 0, 10, tzinfo=UTC)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS_DIR / name).read_text(encoding="utf-8")))


def instance(payload: bytes) -> Any:
    """What a schema judges: the JSON payload, or a plain-text status as the string it is."""
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8")


def problems(name: str, payload: Any) -> list[str]:
    return [error.message for error in validator(name).iter_errors(payload)]


class TableLookup(Lookup):
    """EL-1 is an elevator, B-1 a boiler; the fault codes are the database's."""

    def __init__(self, rows):
        self.rows = {r.name: FaultCode(r.name, r.gbt_code, r.equipment_types) for r in rows}
        self.numbers = {r.gbt_code: self.rows[r.name] for r in rows if r.gbt_code is not None}

    def equipment(self, code: str) -> Equipment | None:
        return {"EL-1": Equipment(1, "EL-1", "elevator"), "B-1": Equipment(2, "B-1", "boiler")}.get(code)

    def fault_code(self, name_or_number: str | int) -> FaultCode | None:
        if isinstance(name_or_number, int) or name_or_number.isdigit():
            return self.numbers.get(int(name_or_number))
        return self.rows.get(name_or_number)


def test_the_committed_schemas_are_what_the_field_table_and_fault_codes_give(db):
    generated = all_schemas(fault_codes(db))

    assert differences(SCHEMAS_DIR, generated) == []
    assert sorted(generated) == sorted(schema_name(t, c) for t in EQUIPMENT_TYPES for c in CHANNELS)
    for schema in generated.values():
        Draft202012Validator.check_schema(schema)


def test_the_simulated_fleets_payloads_follow_the_schemas():
    scenario = replace(load_scenario("demo"), monitors=MonitorMix(heartbeat_s=60))
    simulation = FleetSimulation(scenario, 7, 5.0, today=date(2026, 11, 22))
    checked: dict[str, int] = {}
    start = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    for due in simulation.schedule():
        if due.at_s >= 600:
            break
        for message in simulation.messages(due, start + timedelta(seconds=due.at_s)):
            kind, channel = message.topic.split("/")[2], message.channel
            name = schema_name(kind, channel)
            assert problems(name, instance(message.encode())) == [], message
            checked[name] = checked.get(name, 0) + 1
    # Every type's telemetry and status, and the events the demo's faults raise, were checked.
    for channel in ("telemetry", "status"):
        assert {n for n in checked if n.endswith(f".{channel}.schema.json")} == {
            schema_name(t, channel) for t in EQUIPMENT_TYPES}
    assert sum(checked.values()) > 5000


def test_the_example_payloads_in_docs_follow_the_schemas():
    for kind in EQUIPMENT_TYPES:
        for channel in CHANNELS:
            payload = json.loads((SCHEMAS_DIR / example_name(kind, channel)).read_text(encoding="utf-8"))
            assert problems(schema_name(kind, channel), payload) == [], example_name(kind, channel)
    mqtt_md = Path(REPO, "docs", "mqtt.md").read_text(encoding="utf-8")
    blocks = re.findall(r"Example, `sem/v1/(\w+)/[^/]+/(\w+)`:\n\n```json\n(.*?)```", mqtt_md, re.S)
    assert len(blocks) == 1
    for kind, channel, text in blocks:
        assert problems(schema_name(kind, channel), json.loads(text)) == []


TS = "2026-11-22T08:00:00+08:00"


@pytest.mark.parametrize(("topic", "payload", "valid"), [
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "floor": 3, "door": "closed"}, True),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "floor": None, "cabin_co2_ppm": 612}, True),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": 1795305600000, "seq": 1, "run_count": 5.0}, True),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "floor": "third"}, False),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "floor": 2.5}, False),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "door": "ajar"}, False),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "occupied": "yes"}, False),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "load_pct": -5}, False),   # refused alone
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "floor": 301}, False),     # refused alone
    ("sem/v1/elevator/EL-1/telemetry", {"seq": 1, "floor": 3}, False),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2026-11-22T08:00:00", "seq": 1}, False),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": 1795305600, "seq": 1}, False),           # epoch seconds
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": -1}, False),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": TS}, False),
    ("sem/v1/boiler/B-1/telemetry", {"ts": TS, "seq": 1, "pressure_mpa": 1.2, "burner": "high", "flame": True}, True),
    ("sem/v1/boiler/B-1/telemetry", {"ts": TS, "seq": 1, "burner": "medium"}, False),
    ("sem/v1/boiler/B-1/telemetry", {"ts": TS, "seq": 1, "pressure_mpa": 1200}, False),  # kPa for MPa
    ("sem/v1/elevator/EL-1/event", {"ts": TS, "seq": 2, "code": "entrapment", "state": "raised"}, True),
    ("sem/v1/elevator/EL-1/event", {"ts": TS, "seq": 2, "code": 2, "state": "cleared", "detail": None}, True),
    ("sem/v1/elevator/EL-1/event", {"ts": TS, "seq": 2, "code": "90", "state": "raised", "detail": {"x": 1}}, True),
    ("sem/v1/elevator/EL-1/event", {"ts": TS, "seq": 2, "code": "flame_failure", "state": "raised"}, False),
    ("sem/v1/elevator/EL-1/event", {"ts": TS, "seq": 2, "code": "entrapment", "state": "open"}, False),
    ("sem/v1/elevator/EL-1/event", {"ts": TS, "seq": 2, "code": "entrapment", "state": "raised", "detail": [1]},
     False),
    ("sem/v1/elevator/EL-1/event", {"ts": TS, "seq": 2, "state": "raised"}, False),
    ("sem/v1/boiler/B-1/event", {"ts": TS, "seq": 2, "code": "flame_failure", "state": "raised"}, True),
    ("sem/v1/elevator/EL-1/status", "online", True),
    ("sem/v1/elevator/EL-1/status", b"offline", True),
    ("sem/v1/elevator/EL-1/status", "away", False),
])
def test_a_payload_follows_its_schema_exactly_when_the_ingester_takes_all_of_it(db, topic, payload, valid):
    lookup = TableLookup(fault_codes(db))
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    parsed = parse_message(topic, raw, lookup, now=NOW)
    taken_whole = not isinstance(parsed, Rejected) and not (
        isinstance(parsed, Telemetry) and any(not p.stored for p in parsed.problems))
    _, _, kind, _, channel = topic.split("/")

    assert (taken_whole, problems(schema_name(kind, channel), instance(raw)) == []) == (valid, valid)


def test_the_web_app_serves_the_schemas_and_examples_without_signing_in(app):
    client = anonymous(app)
    index = client.get("/schemas/")
    assert index.status_code == 200
    items = index.get_json()["items"]
    assert len(items) == 12
    assert items[0] == {"type": "elevator", "channel": "telemetry", "topic": "sem/v1/elevator/{code}/telemetry",
                        "schema": "/schemas/elevator.telemetry.schema.json",
                        "example": "/schemas/elevator.telemetry.example.json"}

    schema = client.get("/schemas/elevator.event.schema.json")
    assert (schema.status_code, schema.mimetype) == (200, "application/schema+json")
    assert schema.get_data(as_text=True) == (SCHEMAS_DIR / "elevator.event.schema.json").read_text(encoding="utf-8")
    example = client.get("/schemas/boiler.telemetry.example.json")
    assert example.status_code == 200
    assert example.get_json() == json.loads((SCHEMAS_DIR / "boiler.telemetry.example.json").read_text())
    assert client.get("/schemas/elevator.telemetry.json").status_code == 404
    assert client.get("/schemas/..%2Fapi.md").status_code == 404


def test_a_reading_the_simulators_break_on_purpose_fails_its_schema():
    # The simulators' malformed messages (simulators/monitor.py) include readings sent as "n/a".
    simulation = FleetSimulation(load_scenario("demo"), 7, 5.0, today=date(2026, 11, 22), malformed_share=0.2)
    start = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    verdicts = {True: 0, False: 0}
    for due in simulation.schedule():
        if due.at_s >= 120:
            break
        for message in simulation.messages(due, start + timedelta(seconds=due.at_s)):
            if message.channel != "telemetry" or not isinstance(message.payload, dict):
                continue  # a payload cut short is not JSON: no schema can judge it
            broken = "n/a" in message.payload.values()
            kind = message.topic.split("/")[2]
            assert (problems(schema_name(kind, "telemetry"), message.payload) != []) == broken, message
            verdicts[broken] += 1
    assert verdicts[True] > 20 and verdicts[False] > 1000


def test_the_schemas_command_writes_the_files_and_check_names_one_out_of_date(db_url, tmp_path):
    env = {**os.environ, "SEMON_DATABASE_URL": db_url}

    def semon(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "semon.cli", "schemas", "write", *args], capture_output=True,
                              text=True, timeout=60, env=env)

    assert semon("--check").stdout == "12 schemas are up to date\n"
    written = semon(str(tmp_path))
    assert written.stdout == f"wrote 12 schemas to {tmp_path}\n"
    assert all((tmp_path / p.name).read_text(encoding="utf-8") == p.read_text(encoding="utf-8")
               for p in SCHEMAS_DIR.glob("*.schema.json"))
    (tmp_path / "boiler.event.schema.json").write_text("{}\n", encoding="utf-8")

    checked = semon(str(tmp_path), "--check")

    assert checked.returncode == 1
    assert checked.stderr == (f"{tmp_path / 'boiler.event.schema.json'}: differs from what the field table gives\n"
                              "Error: 1 schema file(s) out of date; run `semon schemas write`\n")
