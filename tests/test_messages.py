"""Parsing at the edge: the contract's rules, each rejection with a readable reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ingest.messages import (
    Equipment,
    Event,
    FaultCode,
    FieldProblem,
    Lookup,
    Rejected,
    Status,
    Telemetry,
    parse_message,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class FixedLookup(Lookup):
    def __init__(self):
        self.known = {"EL-1": Equipment(1, "EL-1", "elevator"), "BL-1": Equipment(2, "BL-1", "boiler"),
                      "ES-1": Equipment(3, "ES-1", "escalator"), "PV-1": Equipment(4, "PV-1", "pressure_vessel")}
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


TS = "2026-11-22T10:00:00Z"


def test_a_value_that_cannot_be_true_is_refused_and_the_other_fields_are_kept():
    msg = parse("sem/v1/elevator/EL-1/telemetry", {"ts": TS, "seq": 1, "floor": 3, "load_pct": -5, "door": "open"})
    assert isinstance(msg, Telemetry)
    assert msg.values == {"floor": 3, "door": "open"}
    assert msg.problems == (FieldProblem(
        "load_pct", -5, "field load_pct must be between 0 and 300, got -5 (a load is never negative, and a car's "
                        "floor area keeps it far below 3 times its rated load)", stored=False),)


@pytest.mark.parametrize(("topic", "field", "value", "stored"), [
    ("sem/v1/elevator/EL-1/telemetry", "speed_mps", 30, True),       # the bound itself is allowed
    ("sem/v1/elevator/EL-1/telemetry", "speed_mps", 30.5, False),    # the fastest elevators run at 21 m/s
    ("sem/v1/elevator/EL-1/telemetry", "speed_mps", -1.5, False),    # a speed is a magnitude
    ("sem/v1/elevator/EL-1/telemetry", "load_pct", 0, True),
    ("sem/v1/elevator/EL-1/telemetry", "load_pct", 130.0, True),     # an overloaded car is real
    ("sem/v1/elevator/EL-1/telemetry", "floor", -2, True),           # basements
    ("sem/v1/elevator/EL-1/telemetry", "floor", 301, False),
    ("sem/v1/elevator/EL-1/telemetry", "run_count", -1, False),
    ("sem/v1/elevator/EL-1/telemetry", "run_count", 2**64 - 1, False),  # no bigint holds it
    ("sem/v1/elevator/EL-1/telemetry", "door_cycles", 1e30, False),  # a whole float for an int field
    ("sem/v1/elevator/EL-1/telemetry", "leveling_mm", -12.0, True),  # below the landing
    ("sem/v1/escalator/ES-1/telemetry", "speed_mps", 5.5, False),    # an elevator's speed is an escalator's bound
    ("sem/v1/escalator/ES-1/telemetry", "handrail_left_mps", 0.66, True),
    ("sem/v1/boiler/BL-1/telemetry", "ph", 14, True),
    ("sem/v1/boiler/BL-1/telemetry", "ph", 14.2, False),
    ("sem/v1/boiler/BL-1/telemetry", "ph", -0.1, False),
    ("sem/v1/boiler/BL-1/telemetry", "o2_pct", 100.5, False),
    ("sem/v1/boiler/BL-1/telemetry", "pressure_mpa", -0.05, True),   # a vacuum boiler
    ("sem/v1/boiler/BL-1/telemetry", "pressure_mpa", -0.2, False),   # below a perfect vacuum
    ("sem/v1/boiler/BL-1/telemetry", "pressure_mpa", 1250, False),   # 1.25 MPa sent in kPa
    ("sem/v1/boiler/BL-1/telemetry", "water_level_mm", -60.0, True),
    ("sem/v1/boiler/BL-1/telemetry", "water_hardness_mmol_l", 300, False),  # mg/L CaCO3, not mmol/L
    ("sem/v1/pressure_vessel/PV-1/telemetry", "level_pct", 101, False),
    ("sem/v1/pressure_vessel/PV-1/telemetry", "temperature_c", -196.0, True),  # liquid nitrogen
    ("sem/v1/pressure_vessel/PV-1/telemetry", "temperature_c", -300, False),   # below absolute zero
])
def test_bounds_refuse_only_what_cannot_be_true(topic, field, value, stored):
    msg = parse(topic, {"ts": TS, "seq": 1, field: value})
    assert isinstance(msg, Telemetry)
    if stored:
        assert (msg.values, msg.problems) == ({field: value}, ())
    else:
        assert msg.values == {}
        assert [(p.field, p.value, p.stored) for p in msg.problems] == [(field, value, False)]
        assert msg.problems[0].reason.startswith(f"field {field} must be between ")


def test_a_misspelt_field_is_kept_in_extra_and_reported_with_the_field_it_likely_means():
    msg = parse("sem/v1/elevator/EL-1/telemetry",
                {"ts": TS, "seq": 1, "speed_ms": 1.6, "floors": 7, "speed": 1.5, "cabin_co2_ppm": 612})
    assert isinstance(msg, Telemetry)
    assert msg.values == {}
    assert msg.extra == {"speed_ms": 1.6, "floors": 7, "speed": 1.5, "cabin_co2_ppm": 612}
    assert msg.problems == (
        FieldProblem("speed_ms", 1.6, "unknown field; did you mean speed_mps?", stored=True),
        FieldProblem("floors", 7, "unknown field; did you mean floor?", stored=True),
        FieldProblem("speed", 1.5, "unknown field; did you mean speed_mps?", stored=True),
    )


def test_a_dead_letter_names_every_bad_field_not_only_the_first():
    msg = parse("sem/v1/elevator/EL-1/telemetry",
                {"ts": TS, "seq": 1, "floor": "third", "load_pct": -5, "door": "ajar", "speed_mps": 1.0,
                 "floors": 3})
    assert isinstance(msg, Rejected) and msg.category == "bad_field"
    assert msg.reason == (
        'field floor must be an integer, got "third"; '
        "field load_pct must be between 0 and 300, got -5 (a load is never negative, and a car's floor area keeps "
        "it far below 3 times its rated load); "
        'field door must be one of open, opening, closed, closing, got "ajar"; '
        "field floors is unknown; did you mean floor?")


@pytest.mark.parametrize("ts", [1795341600, 99_999_999_999, 0])
def test_epoch_seconds_are_refused_with_send_milliseconds(ts):
    msg = parse("sem/v1/boiler/BL-1/telemetry", {"ts": ts, "seq": 1, "pressure_mpa": 1.2})
    assert isinstance(msg, Rejected) and msg.category == "bad_ts"
    assert msg.reason == f"ts {ts} is epoch seconds (as milliseconds it falls in 1970): send epoch milliseconds or " \
                         "RFC 3339"


def test_epoch_milliseconds_from_1973_on_are_read_as_milliseconds():
    msg = parse("sem/v1/boiler/BL-1/telemetry", {"ts": 100_000_000_000, "seq": 1})
    assert isinstance(msg, Rejected) and msg.reason == "ts 1973-03-03T09:46:40+00:00 is before 2000"
