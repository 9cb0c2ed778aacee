"""Fuzz: over 10,000 generated messages, valid and invalid, through the real broker and ingester into TimescaleDB.

Each generated message carries what the contract (docs/mqtt.md, docs/ingest.md) says becomes of it: a telemetry or
event row keyed by (equipment, ts, seq), a status, or a dead letter of a given category. The expectation comes from
how the message was made, never from the parser, so every message is accounted for: stored once, counted as a
duplicate of an earlier (equipment, ts, seq), or kept as a dead letter with its reason.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingest.service import Ingester
from semon.vocabulary import CHANNELS, EQUIPMENT_TYPES, TELEMETRY_FIELDS, TelemetryField
from tests.conftest import register_equipment, wait_until
from tests.mqtt_helpers import StreamPublisher

BATCH = 40                 # messages drawn per hypothesis example: a list of 10,000 would overrun its choice buffer
EXAMPLES = 260             # 10,400 messages
MINIMUM_SENT = 10_000
# Two registered monitors of each type; codes nobody registered start with UNREG-.
FLEET = {t: [f"FZ-{t[:3].upper()}-{i}" for i in range(2)] for t in EQUIPMENT_TYPES}
OFFSETS = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30)),
           timezone(timedelta(hours=14))]
# Text for keys and values: no NUL (PostgreSQL refuses it), no surrogates (not UTF-8); in a topic, no control
# or non-characters either (Mosquitto refuses them) and no separators or wildcards.
TEXT = st.characters(blacklist_categories=("Cs", "Cc"))
TOPIC_TEXT = st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Zs"), blacklist_characters="/+#")
JSON_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT, max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(TEXT, max_size=8), inner, max_size=3),
    max_leaves=4)


@dataclass(frozen=True)
class Sent:
    """A published message and what the contract says becomes of it."""

    topic: str
    payload: bytes
    outcome: str               # telemetry, event, status or dead
    key: tuple | None = None   # (code, ts, seq) of a telemetry or event row
    category: str = ""         # a dead letter's category
    body: dict | None = None   # a stored message's JSON, to resend it in another form


@dataclass(frozen=True)
class Repeat:
    """Resend an earlier stored message (verbatim, or re-serialized with the same instant and seq)."""

    pick: int
    verbatim: bool


def topic(equipment_type: str, code: str, channel: str) -> str:
    return f"sem/v1/{equipment_type}/{code}/{channel}"


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def ts_text(ts: datetime, form: int) -> str | int:
    """The same instant as RFC 3339 in one of several offsets, or as epoch milliseconds."""
    if form == len(OFFSETS):
        return round(ts.timestamp() * 1000)
    text = ts.astimezone(OFFSETS[form]).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if form == 0 else text


@functools.cache  # strategies are built once: building them costs more than drawing
def in_bounds(field: TelemetryField) -> st.SearchStrategy:
    if field.kind == "bool":
        return st.booleans()
    if field.kind == "enum":
        return st.sampled_from(field.choices)
    if field.kind == "int":
        low = -(2**63) if field.minimum is None else int(field.minimum)
        high = 2**63 - 1 if field.maximum is None else int(field.maximum)
        return st.integers(low, high) | st.integers(low, min(high, 2**53)).map(float)  # 7.0 is an integer too
    return (st.floats(field.minimum, field.maximum, allow_nan=False, allow_infinity=False)
            | st.integers(int(field.minimum), int(field.maximum)))


@functools.cache  # strategies are built once: building them costs more than drawing
def out_of_bounds(field: TelemetryField) -> st.SearchStrategy:
    """A number of the right type that cannot be true: refused alone, the message stored (docs/mqtt.md)."""
    low, high = field.minimum, field.maximum
    if field.kind == "int":
        return st.integers(max_value=int(low) - 1) | st.integers(min_value=int(high) + 1) | st.just(10**30)
    return (st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False)
            | st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False)
            | st.just(10**30) | st.just(-(10**30)))


@functools.cache  # strategies are built once: building them costs more than drawing
def wrong_type(field: TelemetryField) -> st.SearchStrategy:
    """A value no reading of the field's type accepts: the whole message is dead-lettered."""
    junk = st.text(TEXT, max_size=8) | st.lists(st.integers(), min_size=1, max_size=2) | st.just({"v": 1})
    if field.kind == "bool":
        return junk | st.sampled_from([0, 1, "true", 1.5])
    if field.kind == "enum":
        return junk.filter(lambda v: v not in field.choices) | st.integers() | st.booleans()
    if field.kind == "int":
        return junk | st.booleans() | st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda v: not v.is_integer())
    return junk | st.booleans()


_FIELD_LISTS = {t: st.lists(st.sampled_from(fields), max_size=5, unique_by=lambda f: f.name)
                for t, fields in TELEMETRY_FIELDS.items()}
_NUMERIC_CHOICES = st.sampled_from(["in", "in", "in", "out", "null"])
_OTHER_CHOICES = st.sampled_from(["in", "in", "null"])
_EXTRAS = {t: st.dictionaries(st.text(TEXT, max_size=10).filter(
    lambda k, names=frozenset(f.name for f in fields): k not in names and k not in ("ts", "seq")),
    JSON_JUNK, max_size=1) for t, fields in TELEMETRY_FIELDS.items()}


@functools.cache
@st.composite
def telemetry_fields(draw, equipment_type: str, bad: bool = False) -> dict[str, Any]:
    """Contract fields in or out of bounds (or null), unknown fields with nested junk; with `bad`, one of wrong type."""
    fields = TELEMETRY_FIELDS[equipment_type]
    names = {f.name for f in fields}
    body: dict[str, Any] = {}
    for field in draw(_FIELD_LISTS[equipment_type]):
        choice = draw(_NUMERIC_CHOICES if field.kind in ("int", "float") else _OTHER_CHOICES)
        body[field.name] = (draw(in_bounds(field)) if choice == "in" else draw(out_of_bounds(field))
                            if choice == "out" else None)
    body |= draw(_EXTRAS[equipment_type])
    if draw(st.integers(0, 9)) == 0:  # a likely misspelling: kept in extra and reported (docs/mqtt.md)
        body[draw(st.sampled_from(sorted(names))).upper()] = 1
    if bad:
        field = draw(st.sampled_from(fields))
        body[field.name] = draw(wrong_type(field))
    return body


KINDS = (["telemetry"] * 14 + ["event"] * 3 + ["status"] * 2 + ["repeat"] * 3
         + ["bad_field", "truncated", "not_utf8", "not_object", "nan_token", "missing_ts", "bad_ts", "bad_seq",
            "unknown_equipment", "wrong_type", "bad_channel", "bad_topic", "bad_event", "bad_status"] + ["rare"])
# Rare: a message PostgreSQL refuses makes the writer retry its batch one message at a time (docs/ingest.md).
RARE = ["oversized", "oversized_junk", "many_fields", "deep_nesting"] * 12 + ["nul_telemetry", "nul_event"]


def messages(faults: list[tuple[str, int | None, tuple[str, ...]]], now: datetime) -> st.SearchStrategy:
    """One message of every kind the contract names, weighted towards valid telemetry."""
    start = now.replace(microsecond=0) - timedelta(days=3)  # whole milliseconds, as ts_text writes them
    when = st.integers(0, 3 * 86_400_000 - 3_600_000).map(lambda ms: start + timedelta(milliseconds=ms))
    seqs = st.integers(0, 2**63 - 1)
    equipment = st.sampled_from([(t, c) for t, codes in FLEET.items() for c in codes])

    @st.composite
    def one(draw) -> Sent | Repeat:
        kind = draw(st.sampled_from(KINDS))
        if kind == "rare":
            kind = draw(st.sampled_from(RARE))
        if kind == "repeat":
            return Repeat(draw(st.integers(0, 2**31)), draw(st.booleans()))
        equipment_type, code = draw(equipment)
        ts, seq = draw(when), draw(seqs)
        head = {"ts": ts_text(ts, draw(st.integers(0, len(OFFSETS)))), "seq": seq}

        def stored(channel: str, body: dict[str, Any]) -> Sent:
            return Sent(topic(equipment_type, code, channel), encode(body), channel, (code, ts, seq), body=body)

        def dead(category: str, payload: bytes, channel: str = "telemetry", where: str | None = None) -> Sent:
            return Sent(where or topic(equipment_type, code, channel), payload, "dead", category=category)

        if kind == "telemetry":
            return stored("telemetry", head | draw(telemetry_fields(equipment_type)))
        if kind == "event":
            name, number, _ = draw(st.sampled_from([f for f in faults if equipment_type in f[2]]))
            code_as = draw(st.sampled_from([name, number, str(number)] if number is not None else [name]))
            body = head | {"code": code_as, "state": draw(st.sampled_from(["raised", "cleared"]))}
            detail = draw(st.none() | st.dictionaries(st.text(TEXT, max_size=8), JSON_JUNK, max_size=3))
            if detail is not None or draw(st.booleans()):
                body["detail"] = detail
            return stored("event", body)
        if kind == "status":
            payload = draw(st.sampled_from([b"online", b"offline", b'"online"', b' offline\n', b'"offline"']))
            return Sent(topic(equipment_type, code, "status"), payload, "status")
        if kind == "bad_field":
            return dead("bad_field", encode(head | draw(telemetry_fields(equipment_type, bad=True))))
        if kind == "truncated":  # a proper prefix of a JSON object is never JSON
            text = json.dumps(head | draw(telemetry_fields(equipment_type)))
            return dead("not_json", text[:draw(st.integers(0, len(text) - 1))].encode())
        if kind == "not_utf8":
            raw = draw(st.binary(max_size=40))
            cut = draw(st.integers(0, len(raw)))
            return dead("not_json", raw[:cut] + b"\xff" + raw[cut:], draw(st.sampled_from(["telemetry", "event"])))
        if kind == "not_object":
            body = draw(JSON_JUNK.filter(lambda v: not isinstance(v, dict)))
            return dead("not_json", encode(body), draw(st.sampled_from(["telemetry", "event"])))
        if kind == "nan_token":
            field = draw(st.sampled_from([f for f in TELEMETRY_FIELDS[equipment_type] if f.kind == "float"]))
            token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]))
            return dead("not_json", json.dumps(head | {field.name: "@"}).replace('"@"', token).encode())
        if kind == "missing_ts":
            body = {"seq": seq} | draw(telemetry_fields(equipment_type))
            if draw(st.booleans()):
                body["ts"] = None
            return dead("bad_ts", encode(body), draw(st.sampled_from(["telemetry", "event"])))
        if kind == "bad_ts":
            no_offset = ts.replace(tzinfo=None).isoformat()
            bad = draw(st.sampled_from([
                no_offset, "1999-12-31T23:59:59+08:00", (now + timedelta(days=2)).isoformat(), 1_795_341_600,
                int((now + timedelta(days=30)).timestamp() * 1000), -1, 10**17, 2**64 - 1, 10**30, 1.7e12, True,
                [], {"t": 1}, "2026-13-45T99:00:00Z"])
                | st.text(TEXT, max_size=20).filter(lambda s: not s[:4].isdigit())
                | st.integers(0, 10**11 - 1))
            return dead("bad_ts", encode({"ts": bad, "seq": seq} | draw(telemetry_fields(equipment_type))))
        if kind == "bad_seq":
            bad = draw(st.sampled_from([None, -1, 2**63, 2**64 - 1, 10**30, 1.5, "7", True, [1]])
                       | st.integers(max_value=-1))
            body = {"ts": head["ts"]} | ({} if bad is None else {"seq": bad}) | draw(telemetry_fields(equipment_type))
            return dead("bad_seq", encode(body))
        if kind == "unknown_equipment":
            unknown = "UNREG-" + draw(st.from_regex(r"[A-Za-z0-9_-]{0,58}", fullmatch=True))
            channel = draw(st.sampled_from(CHANNELS))
            payload = b"online" if channel == "status" else encode(head | draw(telemetry_fields(equipment_type)))
            return dead("unknown_equipment", payload, where=topic(equipment_type, unknown, channel))
        if kind == "wrong_type":
            other = draw(st.sampled_from([t for t in EQUIPMENT_TYPES if t != equipment_type]))
            payload = encode(head | draw(telemetry_fields(equipment_type)))
            return dead("wrong_type", payload, where=topic(other, code, "telemetry"))
        if kind == "bad_channel":  # under the monitor's own code, which the broker lets it publish to
            channel = draw(st.text(TOPIC_TEXT, max_size=12).filter(lambda c: c not in CHANNELS))
            return dead("bad_topic", encode(head), where=topic(equipment_type, code, channel))
        if kind == "bad_topic":
            where = draw(st.sampled_from([
                f"sem/v1/lift/{code}/telemetry", f"sem/v1/{equipment_type}/{code}/telemetry/more",
                f"sem/v1/{equipment_type}", f"sem/v1/{equipment_type}/电梯-{code}/telemetry",
                f"sem/v1/{equipment_type}/{'A' * 65}/telemetry", f"sem/v1/{equipment_type}//telemetry"]))
            return dead("bad_topic", encode(head), where=where)
        if kind == "bad_event":
            names = {f[0] for f in faults}
            foreign = [f[0] for f in faults if equipment_type not in f[2]]
            numbers = {f[1] for f in faults if f[1] is not None}
            applies = [f[0] for f in faults if equipment_type in f[2]]
            event = draw(st.one_of(
                st.text(TEXT, max_size=12).filter(lambda c: c not in names and not c.isdigit()).map(
                    lambda c: {"code": c}),
                st.integers().filter(lambda n: n not in numbers).map(lambda n: {"code": n}),
                st.sampled_from(["²", "٣", "１", "9" * 30, "-1", "1.0", None, 1.0, True, [2], {"n": 2}]).map(
                    lambda c: {"code": c}),
                st.sampled_from(foreign or ["no_such_fault"]).map(lambda c: {"code": c}),
                st.tuples(st.sampled_from(applies), st.sampled_from([None, "open", "RAISED", 1])).map(
                    lambda p: {"code": p[0], "state": p[1]}),
                st.tuples(st.sampled_from(applies), st.sampled_from([[], "x", 3])).map(
                    lambda p: {"code": p[0], "detail": p[1]})))
            event.setdefault("state", "raised")
            return dead("bad_event", encode(head | event), "event")
        if kind == "bad_status":
            text = draw(st.text(TEXT, max_size=20).filter(lambda s: "nline" not in s and "ffline" not in s))
            payload = draw(st.sampled_from([text.encode(), b"\xff\xfeonline", b"ONLINE", b'{"status": "online"}']))
            return dead("bad_status", payload, "status")
        if kind in ("oversized", "oversized_junk"):
            size = draw(st.integers(100_000, 300_000))
            if kind == "oversized_junk":
                return dead("not_json", b"{" + b"x" * size)
            return stored("telemetry", head | {"blob": draw(st.sampled_from("x电€")) * size})
        if kind == "many_fields":
            return stored("telemetry", head | {f"vendor_{i}": i for i in range(draw(st.integers(100, 3000)))})
        if kind == "deep_nesting":  # beyond the JSON parser's depth limit
            depth = draw(st.integers(1100, 5000))
            return dead("not_json", b'{"ts": 1, "x": ' + b"[" * depth + b"]" * depth + b"}")
        # A string with NUL parses, but PostgreSQL refuses it: the one message is kept (docs/ingest.md)
        if kind == "nul_event":
            name = draw(st.sampled_from([f[0] for f in faults if equipment_type in f[2]]))
            body = head | {"code": name, "state": "raised", "detail": {"note": "a\u0000b"}}
            return dead("database_refused", encode(body), "event")
        return dead("database_refused", encode(head | {"note": "door\u0000sensor"}))

    return one()


def resend(sent: Sent, verbatim: bool) -> Sent:
    """The same stored message again: verbatim (a QoS 1 redelivery) or with the same instant in another form and
    its keys in another order (a monitor's resend): either way a duplicate of its (equipment, ts, seq)."""
    if verbatim or sent.body is None:
        return sent
    _, ts, _ = sent.key
    body = dict(reversed(list(sent.body.items()))) | {"ts": round(ts.timestamp() * 1000)}
    return Sent(sent.topic, encode(body), sent.outcome, sent.key, body=body)


@pytest.fixture
def ingester(config, db) -> Iterator[Ingester]:
    for equipment_type, codes in FLEET.items():
        for code in codes:
            register_equipment(db, code, equipment_type,
                               rated_pressure_mpa=1.6 if equipment_type in ("boiler", "pressure_vessel") else None)
    # Batches of at most 200: a message the database refuses makes the writer retry its batch one message at a time
    # (docs/ingest.md), and with the default 2,000 a backlog would make each of those retries take many seconds.
    running = Ingester(config.replace(ingest_batch_size=200))
    running.start()
    assert running.wait_connected(10), "ingester did not connect to the broker"
    yield running
    running.stop()


def stored_keys(db, table: str) -> list[tuple]:
    return sorted((r["code"], r["ts"], r["seq"]) for r in db.execute(
        f"SELECT e.code, t.ts, t.seq FROM {table} t JOIN equipment e ON e.id = t.equipment_id"))


def processed(ingester: Ingester) -> int:
    if ingester.failed.is_set():
        raise AssertionError("the ingester's writer died")
    t = ingester.totals
    return t.stored + t.duplicates + t.dead_lettered + t.statuses


def test_every_fuzzed_message_is_stored_once_or_dead_lettered_and_the_ingester_keeps_running(config, db, ingester):
    publisher = StreamPublisher(config.mqtt_url, f"fuzz-{secrets.token_hex(3)}")
    now = datetime.now(UTC)
    # Retained messages other tests left on the broker reach a new subscriber first: a stored message published
    # after subscribing is committed after them, so what was there before it can be set aside.
    barrier_ts = now - timedelta(hours=2)
    barrier = Sent(topic("elevator", FLEET["elevator"][0], "telemetry"),
                   encode({"ts": barrier_ts.isoformat(), "seq": 0, "floor": 1}), "telemetry",
                   (FLEET["elevator"][0], barrier_ts, 0))
    publisher.publish(barrier.topic, barrier.payload)
    wait_until(lambda: db.execute("SELECT 1 FROM telemetry_elevator").fetchone(), message="the first message")
    db.execute("DELETE FROM dead_letter")
    before = processed(ingester)
    statuses_before, duplicates_before = ingester.totals.statuses, ingester.totals.duplicates

    faults = [(r["name"], r["gbt_code"], tuple(r["equipment_types"])) for r in db.execute(
        "SELECT name, gbt_code, equipment_types FROM fault_codes ORDER BY name")]
    sent: list[Sent] = []
    history: list[Sent] = [barrier]  # stored messages, to resend

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                     HealthCheck.large_base_example])
    @given(st.lists(messages(faults, now), min_size=BATCH, max_size=BATCH))
    def publish_batch(batch: list[Sent | Repeat]) -> None:
        for item in batch:
            message = resend(history[item.pick % len(history)], item.verbatim) if isinstance(item, Repeat) else item
            publisher.publish(message.topic, message.payload)
            sent.append(message)
            if message.key is not None:
                history.append(message)

    try:
        publish_batch()
        assert len(sent) >= MINIMUM_SENT, f"hypothesis drew only {len(sent)} messages"
        assert publisher.wait_all_acknowledged(60), "the broker did not acknowledge every message"
        wait_until(lambda: processed(ingester) - before >= len(sent), timeout=60,
                   message=f"{len(sent)} messages processed (have {processed(ingester) - before})")
    finally:
        publisher.close()

    expected = {channel: sorted({m.key for m in sent + [barrier] if m.outcome == channel})
                for channel in ("telemetry", "event")}
    telemetry_rows = sorted(k for t in EQUIPMENT_TYPES for k in stored_keys(db, f"telemetry_{t}"))
    assert telemetry_rows == expected["telemetry"]
    assert stored_keys(db, "events") == expected["event"]
    dead_letters = db.execute("SELECT topic, payload, reason, category FROM dead_letter").fetchall()
    assert [d for d in dead_letters if not d["reason"].strip()] == []
    assert Counter((d["topic"], bytes(d["payload"]), d["category"]) for d in dead_letters) == Counter(
        (m.topic, m.payload, m.category) for m in sent if m.outcome == "dead")
    # The documented de-duplication: a message whose (equipment, ts, seq) was stored before is not stored again.
    # Telemetry and events are kept apart: one of each may share an (equipment, ts, seq).
    keyed = [(m.outcome, m.key) for m in sent if m.key is not None]
    duplicates = len(keyed) - len(set(keyed) - {(barrier.outcome, barrier.key)})
    statuses = sum(m.outcome == "status" for m in sent)
    counted = (ingester.totals.statuses - statuses_before, ingester.totals.duplicates - duplicates_before)
    assert counted == (statuses, duplicates)
    # Every message accounted for: a new row, a status, a duplicate of a row, or a dead letter.
    new_rows = len(telemetry_rows) - 1 + len(expected["event"])  # the barrier was sent before the fuzz
    assert new_rows + sum(counted) + len(dead_letters) == len(sent)

    # Still connected and consuming: a known-good message after the fuzz is stored.
    assert ingester.wait_connected(0) and not ingester.failed.is_set()
    final = Sent(topic("boiler", FLEET["boiler"][0], "telemetry"),
                 encode({"ts": now.isoformat(), "seq": 2**62, "pressure_mpa": 1.0}), "telemetry")
    last = StreamPublisher(config.mqtt_url, f"fuzz-last-{secrets.token_hex(3)}")
    try:
        last.publish(final.topic, final.payload)
        wait_until(lambda: db.execute("SELECT 1 FROM telemetry_boiler WHERE seq = %s", (2**62,)).fetchone(),
                   timeout=15, message="a good message after the fuzz")
    finally:
        last.close()
