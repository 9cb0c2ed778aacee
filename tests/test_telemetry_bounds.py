"""The contract's tables in docs/mqtt.md come from the data the ingester uses: telemetry bounds and fault codes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ingest.messages import Rejected, Telemetry, parse_message
from semon.vocabulary import TELEMETRY_FIELDS
from simulators.lookup import FleetLookup
from simulators.scenario import load_scenario
from simulators.simulation import FleetSimulation
from tests.conftest import REPO

MQTT_DOC = REPO / "docs" / "mqtt.md"
BOUNDS_HEADER = "| type | field | minimum | maximum | why no real equipment reads outside them |"
FAULTS_HEADER = "| name | GB/T 24476 number | severity | types | description | 中文名称 |"


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{int(value):,}" if float(value).is_integer() else str(value)


def bounds_table() -> str:
    """The bounds table of docs/mqtt.md as TELEMETRY_FIELDS gives it (print it to update the docs)."""
    lines = [BOUNDS_HEADER, "| --- | --- | --- | --- | --- |"]
    for equipment_type, fields in TELEMETRY_FIELDS.items():
        lines += [f"| {equipment_type} | `{f.name}` | {_number(f.minimum)} | {_number(f.maximum)} | {f.bounds_reason} |"
                  for f in fields if f.kind in ("int", "float")]
    return "\n".join(lines)


def doc_table(header: str) -> list[list[str]]:
    """The rows of the docs/mqtt.md table under `header`, as cell texts."""
    lines = MQTT_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_number_field_has_both_bounds_and_says_why():
    for equipment_type, fields in TELEMETRY_FIELDS.items():
        for f in fields:
            if f.kind in ("int", "float"):
                assert f.minimum is not None and f.maximum is not None and f.minimum < f.maximum, (equipment_type, f)
                assert f.bounds_reason, (equipment_type, f.name)
            else:
                assert (f.minimum, f.maximum, f.bounds_reason) == (None, None, ""), (equipment_type, f.name)


def test_the_docs_bounds_table_is_the_one_the_ingester_checks():
    assert bounds_table() in MQTT_DOC.read_text(encoding="utf-8"), (
        "docs/mqtt.md's bounds table differs from semon/vocabulary.py; replace it with:\n" + bounds_table())


def test_the_docs_fault_code_table_is_the_database_table(db):
    documented = {}
    for name, number, severity, types, description, name_zh in doc_table(FAULTS_HEADER):
        documented[name.strip("`")] = (None if number == "—" else int(number), severity,
                                       [t.strip() for t in types.split(",")], description, name_zh)
    seeded = {r["name"]: (r["gbt_code"], r["severity"], r["equipment_types"], r["description"], r["name_zh"])
              for r in db.execute("SELECT * FROM fault_codes ORDER BY name")}
    assert documented == seeded


def test_the_simulated_fleet_faults_included_never_sends_a_value_the_bounds_refuse():
    """The demo's rejected_fields stays empty: bounds catch wrong units and signs, never a simulated fault."""
    day, start = date(2026, 11, 22), datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    simulation = FleetSimulation(load_scenario("demo"), 7, 5.0, today=day)
    lookup = FleetLookup(simulation)
    telemetry, problems = 0, []
    for due in simulation.schedule():
        if due.at_s >= 3 * 3600:
            break
        at = start + timedelta(seconds=due.at_s)
        message = simulation.message(due, at)
        parsed = parse_message(message.topic, message.encode(), lookup, now=at)
        assert not isinstance(parsed, Rejected), parsed
        if isinstance(parsed, Telemetry):
            telemetry += 1
            problems += [(message.topic, p.reason) for p in parsed.problems]
    assert telemetry > 100_000 and problems == []
