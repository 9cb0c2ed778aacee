"""Parsing at the edge: the contract's rules, each rejection with a readable reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ingest.messages import Equipment, Event, FaultCode, Lookup, Rejected, Status, Telemetry, parse_message

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class FixedLookup(Lookup):
    def __init__(self):
        self.known = {"EL-1": Equipment(1, "EL-1", "elevator"), "BL-1": Equipment(2, "BL-1", "boiler")}
        self.faults = [FaultCode("entrapment", None, ("elevator",)),
                       FaultCode("door_close_failure", 2, ("elevator",)),
                       FaultCode("low_water_level", None, ("boiler", "pressure_vessel"))]

    def equipment(self, code):
        return self.known.get(code)

    def fault_code(self, name_or_number):
        for fault in self.faults:
            if name_or_number in (fault.name, fault.gbt_code):
                return fault
        return None


def parse(topic: str, body) -> object:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_message(topic, payload, FixedLookup(), now=NOW)


def test_it_parses_elevator_telemetry_and_keeps_unknown_fields():
    msg = parse("sem/v1/elevator/EL-1/telemetry",
                {"ts": "2026-11-22T09:59:59.5+08:00", "seq": 7, "floor": 3, "door": "closed", "speed_mps": 1,
                 "occupied": True, "vendor_temp": 21.5})
    assert isinstance(msg, Telemetry)
    assert msg.seq == 7 and msg.ts == datetime(2026, 11, 22, 1, 59, 59, 500000, tzinfo=UTC)
    assert msg.values == {"floor": 3, "door": "closed", "speed_mps": 1.0, "occupied": True}
    assert msg.extra == {"vendor_temp": 21.5}


def test_it_accepts_epoch_milliseconds():
    msg = parse("sem/v1/boiler/BL-1/telemetry", {"ts": 1795341600000, "seq": 1, "pressure_mpa": 1.2})
    assert isinstance(msg, Telemetry) and msg.ts == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("topic", "body", "reason"), [
    ("sem/v1/elevator/EL-1/telemetry", b"{not json", "payload is not JSON"),
    ("sem/v1/elevator/EL-1/telemetry", [1, 2], "payload must be a JSON object"),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2026-11-22T10:00:00Z", "seq": 1, "floor": "three"},
     "field floor must be an integer"),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2026-11-22T10:00:00Z", "seq": 1, "door": "ajar"},
     "field door must be one of open, opening, closed, closing"),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2026-11-22T10:00:00Z", "seq": 1, "occupied": 1},
     "field occupied must be true or false"),
    ("sem/v1/elevator/EL-1/telemetry", {"seq": 1}, "missing ts"),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2026-11-22T10:00:00", "seq": 1}, "has no UTC offset"),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2026-11-22T10:00:00Z"}, "missing seq"),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2026-11-22T10:00:00Z", "seq": -1}, "seq must be a non-negative"),
    ("sem/v1/elevator/EL-1/telemetry", {"ts": "2030-01-01T00:00:00Z", "seq": 1}, "in the future"),
    ("sem/v1/elevator/NOPE/telemetry", {"ts": "2026-11-22T10:00:00Z", "seq": 1}, "unknown equipment 'NOPE'"),
    ("sem/v1/boiler/EL-1/telemetry", {"ts": "2026-11-22T10:00:00Z", "seq": 1}, "registered as elevator"),
    ("sem/v1/lift/EL-1/telemetry", {}, "unknown equipment type 'lift'"),
    ("sem/v1/elevator/EL-1/video", {}, "unknown channel 'video'"),
    ("other/topic", {}, "unknown topic"),
    ("sem/v1/elevator/EL-1/event", {"ts": "2026-11-22T10:00:00Z", "seq": 1, "code": "meltdown",
                                    "state": "raised"}, "unknown fault code 'meltdown'"),
    ("sem/v1/elevator/EL-1/event", {"ts": "2026-11-22T10:00:00Z", "seq": 1, "code": "low_water_level",
                                    "state": "raised"}, "does not apply to elevator"),
    ("sem/v1/elevator/EL-1/event", {"ts": "2026-11-22T10:00:00Z", "seq": 1, "code": "entrapment",
                                    "state": "maybe"}, "state must be"),
    ("sem/v1/elevator/EL-1/status", b"sleeping", "status must be"),
])
def test_it_rejects_with_a_readable_reason(topic, body, reason):
    msg = parse(topic, body)
    assert isinstance(msg, Rejected)
    assert reason in msg.reason


def test_it_accepts_a_gbt_fault_number_for_the_name():
    msg = parse("sem/v1/elevator/EL-1/event", {"ts": "2026-11-22T10:00:00Z", "seq": 3, "code": 2,
                                               "state": "raised", "detail": {"floor": 4}})
    assert isinstance(msg, Event)
    assert (msg.code, msg.state, msg.detail) == ("door_close_failure", "raised", {"floor": 4})


@pytest.mark.parametrize("payload", [b"online", b'"online"'])
def test_it_reads_status_as_plain_or_json_text(payload):
    msg = parse("sem/v1/elevator/EL-1/status", payload)
    assert isinstance(msg, Status) and msg.status == "online"
