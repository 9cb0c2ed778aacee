"""Parse MQTT messages at the edge into typed values, or a rejection with a readable reason."""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from semon.vocabulary import CHANNELS, CODE_PATTERN, EQUIPMENT_TYPES, TELEMETRY_FIELDS, TOPIC_ROOT, TelemetryField

# A monitor clock a day ahead is broken, not skewed; its rows would sit in the future forever.
MAX_FUTURE = timedelta(days=1)
# Read as epoch milliseconds, an integer ts below this falls before March 1973: it was sent in seconds.
EPOCH_SECONDS_BELOW = 10**11
_BIGINT = 2**63
# How alike an unknown field's name must be to a contract field's to be reported as a likely misspelling
# (difflib's ratio): speed_ms/speed_mps 0.94, floors/floor 0.91, pressure/pressure_mpa 0.80; a vendor's own
# field such as cabin_co2_ppm or vendor_temp stays below 0.7.
MISSPELLING_CUTOFF = 0.8
# A name more than half again as long as the longest contract field's cannot reach that ratio, so is not looked up:
# the lookups are cached, and a monitor's field names must not fill the cache with long strings.
_LONGEST_LIKELY_MISSPELLING = max(len(f.name) for fields in TELEMETRY_FIELDS.values() for f in fields) * 3 // 2


def _bounded(field: TelemetryField) -> tuple[TelemetryField, str, float, float]:
    # Finite even when the vocabulary gives no bound, so that the comparison also keeps out infinity; an int column
    # is a bigint, whose range bounds every int field.
    low = -sys.float_info.max if field.minimum is None else field.minimum
    high = sys.float_info.max if field.maximum is None else field.maximum
    if field.kind == "int":
        low, high = max(low, -_BIGINT), min(high, _BIGINT - 1)
    return field, field.kind, low, high


_FIELDS_BY_TYPE = {t: {f.name: _bounded(f) for f in fields} for t, fields in TELEMETRY_FIELDS.items()}


@dataclass(frozen=True)
class Equipment:
    id: int
    code: str
    type: str


@dataclass(frozen=True)
class FaultCode:
    name: str
    gbt_code: int | None
    equipment_types: tuple[str, ...]


@dataclass(frozen=True)
class FieldProblem:
    """A telemetry field the vendor should look at, kept in rejected_fields (docs/mqtt.md)."""

    field: str
    value: Any                 # as sent
    reason: str
    stored: bool               # False: refused (a value that cannot be true); True: kept in `extra` (a likely typo)


@dataclass(frozen=True)
class Telemetry:
    equipment: Equipment
    ts: datetime
    seq: int
    values: dict[str, Any]     # contract fields, typed
    extra: dict[str, Any]      # unknown fields, kept as sent
    problems: tuple[FieldProblem, ...] = ()


@dataclass(frozen=True)
class Event:
    equipment: Equipment
    ts: datetime
    seq: int
    code: str
    state: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Status:
    equipment: Equipment
    status: str


@dataclass(frozen=True)
class Rejected:
    topic: str
    payload: bytes
    reason: str
    category: str = "invalid"  # a short, fixed label for metrics: bad_topic, not_json, bad_field, ...


Parsed = Telemetry | Event | Status | Rejected


class Lookup:
    """What parsing needs to know from the database: the equipment and the fault codes."""

    def equipment(self, code: str) -> Equipment | None:  # pragma: no cover - interface
        raise NotImplementedError

    def fault_code(self, name_or_number: str | int) -> FaultCode | None:  # pragma: no cover - interface
        raise NotImplementedError


class _Invalid(Exception):
    def __init__(self, category: str, reason: str):
        super().__init__(reason)
        self.category = category


def parse_message(topic: str, payload: bytes, lookup: Lookup, now: datetime | None = None) -> Parsed:
    """Turn one message into Telemetry, Event or Status, or Rejected with the reason."""
    try:
        return _parse(topic, payload, lookup, now or datetime.now(UTC))
    except _Invalid as exc:
        return Rejected(topic, payload, str(exc), exc.category)


def _parse(topic: str, payload: bytes, lookup: Lookup, now: datetime) -> Parsed:
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise _Invalid("bad_topic", f"unknown topic: expected {TOPIC_ROOT}/<type>/<code>/<channel>")
    _, _, equipment_type, code, channel = parts
    if equipment_type not in EQUIPMENT_TYPES:
        raise _Invalid("bad_topic", f"unknown equipment type {equipment_type!r} in topic")
    if channel not in CHANNELS:
        raise _Invalid("bad_topic", f"unknown channel {channel!r} in topic (expected {', '.join(CHANNELS)})")
    if not CODE_PATTERN.match(code):
        raise _Invalid("bad_topic", f"invalid equipment code {code!r} in topic")
    equipment = lookup.equipment(code)
    if equipment is None:
        raise _Invalid("unknown_equipment", f"unknown equipment {code!r}")
    if equipment.type != equipment_type:
        raise _Invalid("wrong_type", f"equipment {code!r} is registered as {equipment.type}, not {equipment_type}")
    if channel == "status":
        return Status(equipment, _parse_status(payload))
    body = _json_object(payload)
    ts = _parse_ts(body.pop("ts", None), now)
    seq = body.pop("seq", None)
    if seq is None:
        raise _Invalid("bad_seq", "missing seq")
    if type(seq) is not int or not 0 <= seq < _BIGINT:
        raise _Invalid("bad_seq", f"seq must be a non-negative integer, got {seq!r}")
    if channel == "telemetry":
        return _telemetry(equipment, ts, seq, body)
    return _parse_event(equipment, ts, seq, body, lookup)


def _parse_status(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    if text.startswith('"'):
        with contextlib.suppress(ValueError):
            text = json.loads(text)
    if text not in ("online", "offline"):
        raise _Invalid("bad_status", f"status must be \"online\" or \"offline\", got {text[:40]!r}")
    return text


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(payload)  # orjson: a third of json's cost, on every message; it checks UTF-8 itself
    except orjson.JSONDecodeError as exc:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise _Invalid("not_json", "payload is not UTF-8") from None
        raise _Invalid("not_json", f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Invalid("not_json", f"payload must be a JSON object, got {type(body).__name__}")
    return body


def _parse_ts(raw: Any, now: datetime) -> datetime:
    if raw is None:
        raise _Invalid("bad_ts", "missing ts")
    if type(raw) is int:
        if 0 <= raw < EPOCH_SECONDS_BELOW:
            raise _Invalid("bad_ts", f"ts {raw} is epoch seconds (as milliseconds it falls in 1970): "
                                     "send epoch milliseconds or RFC 3339")
        try:
            ts = datetime.fromtimestamp(raw / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Invalid("bad_ts", f"ts {raw} is not a valid epoch-millisecond time") from None
    elif isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            raise _Invalid("bad_ts", f"ts {raw[:40]!r} is not RFC 3339") from None
        if ts.tzinfo is None:
            raise _Invalid("bad_ts", f"ts {raw[:40]!r} has no UTC offset")
    else:
        raise _Invalid("bad_ts", f"ts must be an RFC 3339 string or epoch milliseconds, got {type(raw).__name__}")
    if ts > now + MAX_FUTURE:
        raise _Invalid("bad_ts", f"ts {ts.isoformat()} is more than a day in the future")
    if ts.year < 2000:
        raise _Invalid("bad_ts", f"ts {ts.isoformat()} is before 2000")
    return ts


def _check(field: TelemetryField, value: Any) -> Any:
    kind = field.kind
    if kind == "bool":
        if type(value) is bool:
            return value
    elif kind == "int":
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is int:
            return value
    elif kind == "float":
        if type(value) in (int, float) and math.isfinite(value):
            return float(value)
    elif kind == "enum" and value in field.choices:
        return value
    expected = {"bool": "true or false", "int": "an integer", "float": "a number",
                "enum": "one of " + ", ".join(field.choices)}[kind]
    raise _Invalid("bad_field", f"field {field.name} must be {expected}, got {json.dumps(value)[:40]}")


def _telemetry(equipment: Equipment, ts: datetime, seq: int, body: dict[str, Any]) -> Telemetry:
    fields = _FIELDS_BY_TYPE[equipment.type]
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    named: list[str] = []      # every problem, in the message's order, for a dead letter's reason
    wrong_type = False
    for name, sent in body.items():
        known = fields.get(name)
        if known is None:
            extra[name] = sent
            meant = _likely_meant(equipment.type, name) if len(name) <= _LONGEST_LIKELY_MISSPELLING else None
            if meant is not None:
                problems.append(FieldProblem(name, sent, f"unknown field; did you mean {meant}?", stored=True))
                named.append(f"field {name} is unknown; did you mean {meant}?")
            continue
        field, kind, low, high = known
        # The usual case inline, a value of the field's own JSON type within bounds: a call per field costs a
        # sixth of the parse (measured). NaN and infinity fail the comparison and go the long way, to be named.
        sent_type = type(sent)
        if kind == "float":
            if sent_type is float and low <= sent <= high:
                values[name] = sent
                continue
        elif kind == "int":
            if sent_type is int and low <= sent <= high:
                values[name] = sent
                continue
        elif kind == "bool":
            if sent_type is bool:
                values[name] = sent
                continue
        elif sent in field.choices:
            values[name] = sent
            continue
        if sent is None:
            continue
        try:
            value = _check(field, sent)
        except _Invalid as exc:
            wrong_type = True
            named.append(str(exc))
            continue
        if kind != "enum" and kind != "bool" and not low <= value <= high:
            reason = _out_of_bounds(field, low, high, sent)
            problems.append(FieldProblem(name, sent, reason, stored=False))
            named.append(reason)
        else:
            values[name] = value
    if wrong_type:
        # Name every problem at once: a vendor fixing them one dead letter at a time would need as many rounds.
        raise _Invalid("bad_field", "; ".join(named))
    return Telemetry(equipment, ts, seq, values, extra, tuple(problems))


def _out_of_bounds(field: TelemetryField, low: float, high: float, sent: Any) -> str:
    if field.minimum is None and field.maximum is not None:
        expected = f"at most {_number(high)}"
    elif field.maximum is None and field.minimum is not None:
        expected = f"at least {_number(low)}"
    else:
        expected = f"between {_number(low)} and {_number(high)}"
    why = f" ({field.bounds_reason})" if field.bounds_reason else ""
    return f"field {field.name} must be {expected}, got {json.dumps(sent)[:40]}{why}"


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


@functools.lru_cache(maxsize=4096)  # a vendor sends its own fields in every message; bounded: names come from outside
def _likely_meant(equipment_type: str, name: str) -> str | None:
    """The contract field an unknown field name most likely misspells, if any."""
    known = list(_FIELDS_BY_TYPE[equipment_type])
    lowered = name.lower()
    if lowered in known:
        return lowered
    # The unit left out of the name (`speed` for speed_mps) is as likely a mistake as a typo, and difflib scores
    # it low when the unit is long.
    with_unit = [k for k in known if k.startswith(lowered + "_")]
    if len(with_unit) == 1:
        return with_unit[0]
    close = difflib.get_close_matches(lowered, known, n=1, cutoff=MISSPELLING_CUTOFF)
    return close[0] if close else None


def _parse_event(equipment: Equipment, ts: datetime, seq: int, body: dict[str, Any], lookup: Lookup) -> Event:
    raw_code = body.get("code")
    if raw_code is None:
        raise _Invalid("bad_event", "missing code")
    if type(raw_code) not in (str, int):
        raise _Invalid("bad_event", f"code must be a fault name or GB/T 24476 number, got {json.dumps(raw_code)[:40]}")
    fault = lookup.fault_code(raw_code)
    if fault is None:
        raise _Invalid("bad_event", f"unknown fault code {raw_code!r}")
    if equipment.type not in fault.equipment_types:
        raise _Invalid("bad_event", f"fault code {fault.name!r} does not apply to {equipment.type}")
    state = body.get("state")
    if state not in ("raised", "cleared"):
        raise _Invalid("bad_event", f"state must be \"raised\" or \"cleared\", got {json.dumps(state)[:40]}")
    detail = body.get("detail", {})
    if detail is None:
        detail = {}
    if not isinstance(detail, dict):
        raise _Invalid("bad_event", "detail must be a JSON object")
    extra = {k: v for k, v in body.items() if k not in ("code", "state", "detail")}
    return Event(equipment, ts, seq, fault.name, state, {**extra, **detail} if extra else detail)
