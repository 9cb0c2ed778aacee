"""Monitor behaviour of the simulators: retrofit terminals, heartbeats, redelivery, reordering, clock skew,
drop-outs with a backlog and malformed messages; all pure, no broker."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from ingest.messages import Rejected, parse_message
from simulators.lookup import FleetLookup
from simulators.monitor import MonitorMix
from simulators.scenario import ScenarioError, load_scenario
from simulators.simulation import FleetSimulation, Message

DAY = date(2026, 11, 22)
MORNING = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, the demo's clock
IDEAL = MonitorMix(heartbeat_s=0)  # every monitor reports faults, nothing else happens to its messages
Sent = tuple[datetime, Message]  # when the monitor sent it, and what


def run(mix: MonitorMix | None, seconds: float = 600, *, seed: int = 7, malformed_share: float = 0.0,
        shard: tuple[int, int] = (0, 1)) -> tuple[FleetSimulation, list[Sent]]:
    """The demo fleet for `seconds` from MORNING, its monitors delivering as `mix` says (None: the demo's)."""
    scenario = load_scenario("demo")
    if mix is not None:
        scenario = replace(scenario, monitors=mix)
    simulation = FleetSimulation(scenario, seed, 5.0, today=DAY, shard=shard, malformed_share=malformed_share)
    sent: list[Sent] = []
    for due in simulation.schedule():
        if due.at_s >= seconds:
            break
        now = MORNING + timedelta(seconds=due.at_s)
        sent += [(now, m) for m in simulation.messages(due, now)]
    return simulation, sent


def data(sent: list[Sent]) -> list[Message]:
    """Telemetry and events, in the order sent."""
    return [m for _, m in sent if m.channel != "status"]


def device(message: Message) -> str:
    return message.topic.split("/")[3]


def by_device(messages: list[Message]) -> dict[str, list[Message]]:
    grouped: dict[str, list[Message]] = defaultdict(list)
    for m in messages:
        grouped[device(m)].append(m)
    return grouped


def field(message: Message, name: str) -> Any:
    assert isinstance(message.payload, dict)
    return message.payload[name]


@pytest.fixture(scope="module")
def ideal() -> list[Message]:
    """Ten minutes of the demo fleet from ideal monitors: the reference the behaviours are compared with."""
    return data(run(IDEAL)[1])


def test_retrofit_monitors_never_send_events_while_reporting_ones_do(ideal):
    faulty = {device(m) for m in ideal if m.channel == "event"}
    simulation, sent = run(replace(IDEAL, reporting_share=0.5))
    retrofit = {code for code, monitor in simulation.monitors.items() if not monitor.reports_faults}
    assert faulty & retrofit and faulty - retrofit, "the demo's faults should hit monitors of both kinds"
    events = {device(m) for m in data(sent) if m.channel == "event"}
    assert events == faulty - retrofit
    assert 0.3 < len(retrofit) / len(simulation.monitors) < 0.7
    # A retrofit terminal's telemetry is what the device produced (the fault shows in it), its seq gap-free.
    for code, messages in by_device(data(sent)).items():
        if code in retrofit:
            assert [field(m, "seq") for m in messages] == list(range(1, len(messages) + 1))
            expected = [m for m in by_device(ideal)[code] if m.channel == "telemetry"]
            assert [{**m.payload, "seq": 0} for m in messages] == [{**m.payload, "seq": 0} for m in expected]


def test_duplicates_are_byte_identical_repeats_of_the_message_just_sent(ideal):
    sent = data(run(replace(IDEAL, duplicate_rate=0.05))[1])
    repeats = {i for i in range(1, len(sent)) if sent[i].encode() == sent[i - 1].encode()}
    assert all(sent[i] == sent[i - 1] for i in repeats)
    assert 0.03 < len(repeats) / len(ideal) < 0.07
    deduplicated = [m for i, m in enumerate(sent) if i not in repeats]
    assert deduplicated == ideal


def test_out_of_order_messages_arrive_right_after_a_later_one_of_the_same_device(ideal):
    sent = data(run(replace(IDEAL, out_of_order_rate=0.05))[1])
    late = 0
    for code, messages in by_device(sent).items():
        seqs = [field(m, "seq") for m in messages]
        for i in range(1, len(seqs)):
            if seqs[i] < seqs[i - 1]:
                late += 1
                assert seqs[i - 1] == seqs[i] + 1, f"{code}: held for more than one message"
        # Nothing lost or repeated: the same messages, only some swapped with their successor (the last one
        # may still be held when the run ends).
        expected = by_device(ideal)[code]
        assert len(expected) - 1 <= len(messages) <= len(expected)
        assert sorted(messages, key=lambda m: field(m, "seq")) == expected[:len(messages)]
    assert 0.03 < late / len(ideal) < 0.07


def test_clock_skew_shifts_ts_by_each_skewed_monitors_constant_offset(ideal):
    simulation, sent = run(replace(IDEAL, skew_share=0.5, skew_s=(-90, 90)))
    skewed = {code: m.skew for code, m in simulation.monitors.items() if m.skew}
    assert 0.3 < len(skewed) / len(simulation.monitors) < 0.7
    assert all(timedelta(0) < abs(s) <= timedelta(seconds=90) for s in skewed.values())
    messages = data(sent)
    assert len(messages) == len(ideal)
    for got, want in zip(messages, ideal, strict=True):
        shift = datetime.fromisoformat(field(got, "ts")) - datetime.fromisoformat(field(want, "ts"))
        assert shift == skewed.get(device(got), timedelta(0))
        assert field(got, "ts").endswith("+08:00")  # still the monitor's local offset
        assert {**got.payload, "ts": ""} == {**want.payload, "ts": ""}


def test_a_drop_out_sends_offline_then_online_then_the_backlog_in_order(ideal):
    sent = run(replace(IDEAL, dropouts_per_day=150, dropout_s=(30, 120)), seconds=900)[1]
    flushed = 0
    for code, expected in by_device(data(run(IDEAL, seconds=900)[1])).items():
        mine = [(now, m) for now, m in sent if device(m) == code]
        connected = True
        since_online = False
        for now, m in mine:
            if m.channel == "status":
                assert m.retain
                assert m.payload == ("offline" if connected else "online")
                connected = m.payload == "online"
                since_online = connected
                continue
            assert connected, f"{code} sent a message while offline"
            if since_online and datetime.fromisoformat(field(m, "ts")) < now - timedelta(seconds=1):
                flushed += 1  # the backlog comes first after reconnecting, produced earlier than sent
            else:
                since_online = False
        # Nothing lost, nothing added, original order, ts and seq: the same messages as from an ideal monitor
        # (but for a backlog still kept by a monitor offline when the run ends).
        got = [m for _, m in mine if m.channel != "status"]
        assert got == expected if connected else got == expected[:len(got)]
    statuses = Counter(m.payload for _, m in sent if m.channel == "status")
    assert statuses["offline"] >= 10 and statuses["online"] >= 10
    assert flushed >= statuses["online"]  # every reconnect flushed at least the message it went offline with


def test_nothing_is_lost_or_altered_with_every_behaviour_at_once():
    kinds = MonitorMix(reporting_share=0.5, skew_share=0.5, heartbeat_s=0)
    everything = replace(kinds, heartbeat_s=60, duplicate_rate=0.05, out_of_order_rate=0.05, dropouts_per_day=100,
                         dropout_s=(30, 90))
    reference = by_device(data(run(kinds)[1]))
    _, sent = run(everything)
    for code, messages in by_device(data(sent)).items():
        unique = sorted({field(m, "seq"): m for m in messages}.values(), key=lambda m: field(m, "seq"))
        # What is missing can only be what a monitor still holds (late or offline) when the run ends.
        assert unique == reference[code][:len(unique)] and len(unique) >= len(reference[code]) - 20, code


def test_heartbeats_are_a_retained_online_every_heartbeat_interval():
    simulation, sent = run(replace(IDEAL, heartbeat_s=60))
    beats: dict[str, list[datetime]] = defaultdict(list)
    for now, m in sent:
        if m.channel == "status":
            assert (m.payload, m.retain) == ("online", True)
            beats[device(m)].append(now)
    assert set(beats) == set(simulation.monitors)
    for times in beats.values():
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert len(times) >= 9 and all(60 <= gap < 65 for gap in gaps)


def rejected(simulation: FleetSimulation, messages: list[Message]) -> list[Rejected]:
    lookup = FleetLookup(simulation)
    parsed = [parse_message(m.topic, m.encode(), lookup, MORNING + timedelta(hours=1)) for m in messages]
    return [p for p in parsed if isinstance(p, Rejected)]


def test_malformed_share_is_roughly_the_share_the_ingester_rejects(ideal):
    simulation, sent = run(IDEAL, malformed_share=0.1)
    messages = data(sent)
    bad = rejected(simulation, messages)
    assert 0.08 < len(bad) / len(messages) < 0.12
    assert {r.category for r in bad} >= {"not_json", "bad_field", "unknown_equipment"}
    # The bad ones come on top: every good message is still there, unchanged.
    bad_payloads = {(r.topic, r.payload) for r in bad}
    assert [m for m in messages if (m.topic, m.encode()) not in bad_payloads] == ideal


def test_a_malformed_share_above_a_half_is_still_that_share():
    simulation, sent = run(IDEAL, 120, malformed_share=0.75)
    messages = data(sent)
    assert 0.7 < len(rejected(simulation, messages)) / len(messages) < 0.8


def test_no_malformed_messages_by_default_even_with_every_other_behaviour():
    mix = MonitorMix(reporting_share=0.5, duplicate_rate=0.05, out_of_order_rate=0.05, skew_share=0.5,
                     dropouts_per_day=100, dropout_s=(30, 90))
    simulation, sent = run(mix)
    assert rejected(simulation, [m for _, m in sent]) == []


def test_the_same_seed_gives_the_same_messages_and_another_seed_does_not():
    def output(seed: int) -> list[tuple[str, bytes, bool]]:
        return [(m.topic, m.encode(), m.retain) for _, m in run(None, 300, seed=seed, malformed_share=0.05)[1]]

    first = output(7)
    assert first == output(7)
    assert first != output(8)


def test_a_monitor_behaves_the_same_in_any_shard():
    mix = MonitorMix(reporting_share=0.5, skew_share=0.5)
    whole = FleetSimulation(replace(load_scenario("demo"), monitors=mix), 7, 5.0, today=DAY)
    for k in range(3):
        part = FleetSimulation(replace(load_scenario("demo"), monitors=mix), 7, 5.0, today=DAY, shard=(k, 3))
        for code, monitor in part.monitors.items():
            assert (monitor.reports_faults, monitor.skew) == (whole.monitors[code].reports_faults,
                                                              whole.monitors[code].skew)


def test_malformed_share_out_of_range_is_refused():
    with pytest.raises(ValueError, match="malformed_share"):
        FleetSimulation(load_scenario("demo"), 7, 5.0, today=DAY, malformed_share=1.0)


SCENARIO = """
name: tiny
districts:
  - name: Xuhui District
    code: D1
    equipment: {elevator: 1}
    sites: [{use_unit: "Tianping Garden", address: "88 Tianping Road", kind: residential, hosts: [elevator]}]
firms: [{name: "Huasheng Elevator Maintenance Co., Ltd.", serves: [elevator]}]
"""


def test_a_scenario_without_monitors_has_ideal_monitors_that_send_heartbeats(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO)
    assert load_scenario(str(path)).monitors == MonitorMix() == replace(IDEAL, heartbeat_s=60)


def test_the_demo_monitors_are_mild():
    mix = load_scenario("demo").monitors
    assert mix.reporting_share >= 0.5 and mix.heartbeat_s == 60
    assert max(mix.duplicate_rate, mix.out_of_order_rate) <= 0.01 and mix.dropouts_per_day <= 2


@pytest.mark.parametrize(("section", "error"), [
    ("monitors: [1, 2]", "monitors must be a mapping"),
    ("monitors: {dupliate_rate: 0.1}", "unknown key(s) dupliate_rate"),
    ("monitors: {duplicate_rate: 0.9}", "monitors.duplicate_rate must be between 0 and 0.5"),
    ("monitors: {reporting_share: yes}", "monitors.reporting_share must be a number"),
    ("monitors: {heartbeat_s: -1}", "monitors.heartbeat_s must be between 0"),
    ("monitors: {skew_s: [30]}", "monitors.skew_s must be a list of two numbers"),
    ("monitors: {skew_s: [60, -60]}", "monitors.skew_s needs"),
    ("monitors: {skew_s: [0, 90000]}", "monitors.skew_s needs"),
    ("monitors: {dropout_s: [0, 60]}", "monitors.dropout_s"),
    ("monitors: {dropouts_per_day: many}", "monitors.dropouts_per_day must be a number"),
])
def test_a_bad_monitors_section_is_a_readable_scenario_error(tmp_path, section, error):
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO + section + "\n")
    with pytest.raises(ScenarioError, match="tiny.yaml: ") as raised:
        load_scenario(str(path))
    assert error in str(raised.value)
