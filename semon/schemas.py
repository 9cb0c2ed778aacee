"""JSON Schemas of the MQTT payloads, one per equipment type and channel, generated from the ingester's own field
table (semon/vocabulary.py's TELEMETRY_FIELDS, as ingest/messages.py reads it) and the fault-code table, so that the
contract vendors validate against cannot drift from what the ingester accepts (docs/vendors.md). They are committed
in docs/schemas/ (`semon schemas write`; a test regenerates and compares) and served at /schemas/."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from semon.vocabulary import CHANNELS, EQUIPMENT_TYPES, TELEMETRY_FIELDS, TelemetryField, topic

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"
# RFC 3339 with its offset: the parser refuses a time without one (docs/mqtt.md, "Payloads").
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|z|[+-]\d{2}:\d{2})$"
_JSON_KIND = {"float": "number", "int": "integer", "bool": "boolean"}


@dataclass(frozen=True)
class FaultCodeRow:
    """What an event schema says of a fault code: its name, GB/T 24476 number and the types it applies to."""

    name: str
    gbt_code: int | None
    equipment_types: tuple[str, ...]
    description: str = ""


def schema_name(equipment_type: str, channel: str) -> str:
    """The file name of one schema: elevator.telemetry.schema.json."""
    return f"{equipment_type}.{channel}.schema.json"


def example_name(equipment_type: str, channel: str) -> str:
    """The file name of one example payload: elevator.telemetry.example.json."""
    return f"{equipment_type}.{channel}.example.json"


def _ts() -> dict[str, Any]:
    from ingest.messages import EPOCH_SECONDS_BELOW

    return {"description": "when the reading was taken: RFC 3339 with its UTC offset, or epoch milliseconds "
                           "(epoch seconds are refused); not before 2000 nor more than a day ahead of the server",
            "anyOf": [{"type": "string", "format": "date-time", "pattern": _RFC3339},
                      {"type": "integer", "minimum": EPOCH_SECONDS_BELOW}]}


def _seq() -> dict[str, Any]:
    from ingest.messages import _BIGINT

    return {"description": "increasing per device, across telemetry and events; (code, ts, seq) identifies a "
                           "message, so a message sent twice is stored once",
            "type": "integer", "minimum": 0, "maximum": _BIGINT - 1}


def _field(field: TelemetryField) -> dict[str, Any]:
    # null is accepted as "not sent", as the parser does.
    if field.kind == "enum":
        return {"enum": [*field.choices, None]}
    schema: dict[str, Any] = {"type": [_JSON_KIND[field.kind], "null"]}
    if field.minimum is not None:
        schema["minimum"] = field.minimum
    if field.maximum is not None:
        schema["maximum"] = field.maximum
    if field.bounds_reason:
        schema["description"] = (f"a value outside the bounds cannot be true ({field.bounds_reason}): it is refused "
                                 "alone and the message's other fields are stored (docs/mqtt.md)")
    return schema


def telemetry_schema(equipment_type: str) -> dict[str, Any]:
    """The schema of one type's telemetry payload."""
    return {
        "$schema": DRAFT,
        "title": f"semon MQTT contract v1: {equipment_type} telemetry",
        "description": f"Payload published on {topic(equipment_type, '{code}', 'telemetry')}. SI units, the unit in "
                       "the field name; every field but ts and seq is optional. Fields not listed are kept as sent "
                       "(a name close to a listed one is reported as a likely misspelling).",
        "type": "object",
        "required": ["ts", "seq"],
        "properties": {"ts": _ts(), "seq": _seq(), **{f.name: _field(f) for f in TELEMETRY_FIELDS[equipment_type]}},
        "additionalProperties": True,
    }


def event_schema(equipment_type: str, fault_codes: Iterable[FaultCodeRow]) -> dict[str, Any]:
    """The schema of one type's fault event payload, with the fault codes that apply to the type."""
    codes = sorted((f for f in fault_codes if equipment_type in f.equipment_types),
                   key=lambda f: (f.gbt_code is None, f.gbt_code or 0, f.name))
    numbers = [f.gbt_code for f in codes if f.gbt_code is not None]
    return {
        "$schema": DRAFT,
        "title": f"semon MQTT contract v1: {equipment_type} fault event",
        "description": f"Payload published on {topic(equipment_type, '{code}', 'event')}. A raised event opens an "
                       "alert for the equipment's maintenance firm; the matching cleared event resolves it.",
        "type": "object",
        "required": ["ts", "seq", "code", "state"],
        "properties": {
            "ts": _ts(),
            "seq": _seq(),
            "code": {"description": "a fault name, or the GB/T 24476-2017 number where the standard gives one "
                                    "(as a number or a string of digits)",
                     "anyOf": [{"enum": [f.name for f in codes]}, {"enum": numbers},
                               {"enum": [str(n) for n in numbers]}]},
            "state": {"enum": ["raised", "cleared"]},
            "detail": {"description": "anything the monitor knows of the fault", "type": ["object", "null"]},
        },
        "additionalProperties": True,
    }


def status_schema(equipment_type: str) -> dict[str, Any]:
    """The schema of one type's status payload (the same for every type)."""
    return {
        "$schema": DRAFT,
        "title": f"semon MQTT contract v1: {equipment_type} status",
        "description": f"Payload published retained on {topic(equipment_type, '{code}', 'status')}: online when "
                       "connected and then as a heartbeat, offline as the connection's last will. Plain text "
                       "(online) or a JSON string (\"online\").",
        "type": "string",
        "enum": ["online", "offline"],
    }


def all_schemas(fault_codes: Iterable[FaultCodeRow]) -> dict[str, dict[str, Any]]:
    """Every schema by file name, in type and channel order."""
    codes = list(fault_codes)
    makers = {"telemetry": telemetry_schema, "event": lambda t: event_schema(t, codes), "status": status_schema}
    assert set(makers) == set(CHANNELS), "a channel without a schema"
    return {schema_name(t, c): makers[c](t) for t in EQUIPMENT_TYPES for c in CHANNELS}


def render(schema: Mapping[str, Any]) -> str:
    """A schema as its committed file holds it."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def fault_codes(conn: Any) -> list[FaultCodeRow]:
    """The fault-code table, as the event schemas list it."""
    rows = conn.execute("SELECT name, gbt_code, equipment_types, description FROM fault_codes ORDER BY name")
    return [FaultCodeRow(r["name"], r["gbt_code"], tuple(r["equipment_types"]), r["description"]) for r in rows]


def differences(directory: Path, schemas: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The schema files in `directory` that are missing, differ from `schemas` or are not among them."""
    found = {p.name for p in directory.glob("*.schema.json")}
    problems = [f"{directory / name}: missing" for name in schemas if name not in found]
    problems += [f"{directory / name}: differs from what the field table gives" for name, schema in schemas.items()
                 if name in found and (directory / name).read_text(encoding="utf-8") != render(schema)]
    problems += [f"{directory / name}: no such schema any more" for name in sorted(found - set(schemas))]
    return problems


@click.group("schemas")
def schemas() -> None:
    """The JSON Schemas of the MQTT payloads in docs/schemas/ (docs/vendors.md)."""


@schemas.command("write")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=SCHEMAS_DIR)
@click.option("--check", is_flag=True, help="write nothing; exit 1 if a file differs from what would be written")
@click.pass_obj
def write_cmd(ctx: Any, directory: Path, check: bool) -> None:
    """Generate the schemas from the field and fault-code tables into DIRECTORY (default docs/schemas)."""
    from semon.db import connect
    from semon.migrate import migrate

    migrate(ctx.config.database_url)
    with connect(ctx.config.database_url) as conn:
        generated = all_schemas(fault_codes(conn))
    if check:
        problems = differences(directory, generated)
        for problem in problems:
            click.echo(problem, err=True)
        if problems:
            raise click.ClickException(f"{len(problems)} schema file(s) out of date; run `semon schemas write`")
        click.echo(f"{len(generated)} schemas are up to date")
        return
    directory.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in directory.glob("*.schema.json")) - set(generated):
        (directory / stale).unlink()
    for name, schema in generated.items():
        (directory / name).write_text(render(schema), encoding="utf-8")
    click.echo(f"wrote {len(generated)} schemas to {directory}")
