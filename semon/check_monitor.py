"""`semon check-monitor CODE --for 10m`: listen to one monitor's topics and say, in plain words, what it gets wrong
against the MQTT contract (docs/mqtt.md) and what semon needs of it (docs/vendors.md). Payloads are judged by the
ingester's own parser; the rest is what the parser cannot see in one message: seq, clock, heartbeats, last will,
fields never sent and counters that go back. Exit 1 when something must be fixed."""

from __future__ import annotations

import ast
import functools
import inspect
import json
import secrets
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from semon.config import Config
from semon.vocabulary import CODE_PATTERN, TELEMETRY_FIELDS, TOPIC_ROOT

# A monitor's clock further off than this from the server's is to be fixed: NTP keeps a clock within milliseconds,
# and the rules time their dwells (docs/rules.md) by the monitor's ts.
MAX_CLOCK_SKEW_S = 2.0
# Cumulative fields, which only grow (docs/mqtt.md "cumulative counters", docs/rollup.md `counter_resets`).
COUNTERS: dict[str, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields if f.cumulative) for kind, fields in TELEMETRY_FIELDS.items()}
# How long to wait for the retained messages a subscription brings, once the broker has acknowledged it.
_RETAINED_WAIT_S = 0.5
_EXAMPLES = 5  # distinct reasons shown per finding

FIX, WARN, OK = "fix", "warn", "ok"
_HEADINGS = {FIX: "必须修复 Must fix", WARN: "值得一看 Worth a look", OK: "正常 OK"}


@dataclass(frozen=True)
class Finding:
    """One thing the check says: `level` fix, warn or ok; `check` a fixed name (contract, seq_gap, ...)."""

    level: str
    check: str
    text: str


@dataclass(frozen=True)
class Observed:
    """One message as the check received it; `at` is the server's time (the check's clock corrected to the
    database's); `retained`: held by the broker when the check subscribed, not sent during the check."""

    topic: str
    payload: bytes
    retained: bool
    at: datetime


@dataclass
class Report:
    """What one check found."""

    code: str
    equipment_type: str | None
    started: datetime
    ended: datetime
    counts: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    @property
    def must_fix(self) -> list[Finding]:
        """The findings that make the check fail."""
        return [f for f in self.findings if f.level == FIX]

    def checks(self, level: str) -> set[str]:
        """The names of the checks with findings at `level`."""
        return {f.check for f in self.findings if f.level == level}

    def text(self) -> str:
        """The report as the command prints it."""
        seconds = (self.ended - self.started).total_seconds()
        kind = self.equipment_type or "not registered"
        lines = [f"监测终端 Monitor {self.code} ({kind}), listened for {seconds:.0f} s: "
                 f"{self.counts['telemetry']} telemetry, {self.counts['event']} event, "
                 f"{self.counts['status']} status message(s)"]
        for level in (FIX, WARN, OK):
            found = [f for f in self.findings if f.level == level]
            if found:
                lines += ["", f"{_HEADINGS[level]} ({len(found)}):"]
                lines += ["  - " + f.text.replace("\n", "\n    ") for f in found]
        lines.append("")
        if self.must_fix:
            lines.append(f"结论 Verdict: {len(self.must_fix)} problem(s) to fix before semon can rely on this monitor")
        else:
            lines.append("结论 Verdict: nothing to fix")
        return "\n".join(lines)


def needed_fields(equipment_type: str) -> dict[str, tuple[str, ...]]:
    """The telemetry fields the rules and the models read, by who reads them."""
    rules = _rule_fields(equipment_type)
    models = tuple(f for f in _model_fields(equipment_type) if f not in rules)
    return {"the telemetry rules (docs/rules.md)": rules, "the rollups and wear models (docs/rollup.md)": models}


@functools.cache
def _rule_fields(equipment_type: str) -> tuple[str, ...]:
    # The field names the type's rule module and the engine name: read from their source, so that a rule added
    # there is checked here without a list to keep in step.
    from models.rules import engine

    module = inspect.getmodule(engine.REGISTRY[equipment_type].observe)
    named = _string_literals(module) | _string_literals(engine)
    return tuple(f.name for f in TELEMETRY_FIELDS[equipment_type] if f.name in named)


def _model_fields(equipment_type: str) -> tuple[str, ...]:
    from models.rollup import _FIELDS  # what each type's rollup reads of a sample; the wear models read the rollups

    return _FIELDS[equipment_type]


def _string_literals(module: Any) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


class MonitorCheck:
    """Judges one monitor's messages once collected; no I/O but the lookup the parser uses."""

    def __init__(self, code: str, lookup: Any, heartbeat_interval_s: float, missed_heartbeats: int):
        self.code = code
        self.lookup = lookup
        self.heartbeat_s = heartbeat_interval_s
        self.offline_after_s = heartbeat_interval_s * missed_heartbeats

    def judge(self, messages: list[Observed], started: datetime, ended: datetime,
              held_at_end: list[Observed]) -> Report:
        """The report on `messages`, received between `started` and `ended`; `held_at_end`: the retained status the
        broker held at the end."""
        from ingest.messages import Event, Rejected, Telemetry

        equipment = self.lookup.equipment(self.code)
        report = Report(self.code, equipment.type if equipment else None, started, ended)
        held = [m for m in messages if m.retained]
        live = [m for m in messages if not m.retained]
        for m in messages:
            report.counts[m.topic.rsplit("/", 1)[-1]] += 1
        if equipment is None:
            report.findings.append(Finding(FIX, "unregistered", f"{self.code} is not in semon's registry: every "
                                           "message it sends is dead-lettered. Register it (semon registry import "
                                           "equipment, or the registry API); what it sent before can then be "
                                           "replayed (semon dead-letters replay)."))
        parsed = [(m, self._parse(m)) for m in live]
        rejected = [(m, p) for m, p in parsed if isinstance(p, Rejected)]
        data = [(m, p) for m, p in parsed if isinstance(p, Telemetry | Event)]
        telemetry = [p for _, p in data if isinstance(p, Telemetry)]
        if equipment is not None:
            self._contract(report, rejected, telemetry, len(parsed))
        self._seq(report, data)
        self._clock(report, data)
        self._presence(report, held, live, held_at_end, started, ended)
        if equipment is not None and telemetry:
            self._fields(report, equipment.type, telemetry)
            self._counters(report, equipment.type, telemetry)
        return report

    def _parse(self, message: Observed) -> Any:
        from ingest.messages import parse_message

        return parse_message(message.topic, message.payload, self.lookup, now=message.at)

    # --- the payloads ---------------------------------------------------------------------------------------

    def _contract(self, report: Report, rejected: list, telemetry: list, total: int) -> None:
        if rejected:
            reasons = Counter(p.reason for _, p in rejected)
            report.findings.append(Finding(FIX, "contract", f"{len(rejected)} of {total} message(s) break the "
                                           "contract and are dead-lettered, not stored:\n" + _examples(reasons)))
        refused = Counter(p.reason for t in telemetry for p in t.problems if not p.stored)
        if refused:
            report.findings.append(Finding(FIX, "refused_fields", f"{sum(refused.values())} value(s) cannot be true "
                                           "and are refused (the rest of each message is stored):\n"
                                           + _examples(refused)))
        misspelt = Counter(p.reason.replace("unknown field", f"field {p.field} is unknown")
                           for t in telemetry for p in t.problems if p.stored)
        if misspelt:
            report.findings.append(Finding(FIX, "misspelt_fields", "field names semon does not know, kept in "
                                           "`extra` but read by no rule:\n" + _examples(misspelt)))
        if total and not rejected and not refused and not misspelt:
            report.findings.append(Finding(OK, "contract", f"all {total} message(s) follow the contract"))

    def _seq(self, report: Report, data: list) -> None:
        if not data:
            return
        first: dict[int, Any] = {}
        repeats: list[str] = []
        redelivered = 0
        reversals: list[str] = []
        highest = -1
        for _, item in data:
            seen = first.get(item.seq)
            if seen is not None:
                if (seen.ts, _content(seen)) == (item.ts, _content(item)):
                    redelivered += 1
                else:
                    repeats.append(f"seq {item.seq} at {_time(seen.ts)} and again at {_time(item.ts)}")
                continue
            first[item.seq] = item
            if item.seq < highest:
                reversals.append(f"seq {item.seq} after {highest}")
            highest = max(highest, item.seq)
        if repeats:
            report.findings.append(Finding(FIX, "seq_repeat", f"{len(repeats)} seq number(s) used for two different "
                                           "messages; seq must increase with every message: "
                                           + _list(repeats)))
        if reversals:
            report.findings.append(Finding(FIX, "seq_reversal", f"seq went back {len(reversals)} time(s) "
                                           "(messages sent out of order, or a counter reset on restart; seq must "
                                           "increase, across restarts too): " + _list(reversals)))
        numbers = sorted(first)
        missing = numbers[-1] - numbers[0] + 1 - len(numbers)
        if missing:
            holes = [f"{a}→{b}" for a, b in zip(numbers, numbers[1:], strict=False) if b - a > 1]
            report.findings.append(Finding(WARN, "seq_gap", f"seq skips {missing} number(s) between "
                                           f"{numbers[0]} and {numbers[-1]} ({_list(holes)}): if the monitor counts "
                                           "by one, those messages never reached the broker"))
        if redelivered:
            report.findings.append(Finding(OK, "seq_redelivered", f"{redelivered} message(s) sent twice alike (a "
                                           "QoS 1 redelivery): semon stores them once"))
        if not (repeats or reversals or missing):
            report.findings.append(Finding(OK, "seq", f"seq increases by one, {numbers[0]} to {numbers[-1]}"))

    def _clock(self, report: Report, data: list) -> None:
        if not data:
            return
        # The message that travelled fastest shows the clock's offset best: delays only ever make ts look earlier.
        skew = max((item.ts - m.at).total_seconds() for m, item in data)
        hours = round(skew / 3600)
        if abs(skew) > MAX_CLOCK_SKEW_S:
            way = "ahead of" if skew > 0 else "behind"
            hint = (f"; {abs(hours)} h looks like local time sent with the wrong UTC offset (China is +08:00)"
                    if hours and abs(skew - hours * 3600) < 120 else "; synchronise it (NTP)")
            report.findings.append(Finding(FIX, "clock_skew", f"the monitor's clock is {abs(skew):.1f} s {way} the "
                                           f"server's{hint}: the rules time what they see by its ts"))
        else:
            report.findings.append(Finding(OK, "clock_skew", f"clock within {MAX_CLOCK_SKEW_S:g} s of the server's "
                                           f"({skew:+.2f} s)"))

    # --- presence: status, heartbeats, last will ------------------------------------------------------------

    def _presence(self, report: Report, held: list[Observed], live: list[Observed], held_at_end: list[Observed],
                  started: datetime, ended: datetime) -> None:
        statuses = [m for m in live if m.topic.endswith("/status")]
        words = [_status_word(m.payload) for m in statuses]
        held_status = [_status_word(m.payload) for m in held if m.topic.endswith("/status")]
        kept = [_status_word(m.payload) for m in held_at_end]
        if not held_status and not statuses:
            report.findings.append(Finding(FIX, "status_missing", "no status message, and the broker holds none: "
                                           "publish a retained `online` on connecting (and as a heartbeat) and "
                                           "set a retained `offline` as the connection's last will"))
        elif statuses and kept[-1:] != words[-1:]:
            held_text = f"still {kept[-1]!r}" if kept else "none"
            report.findings.append(Finding(FIX, "status_not_retained", f"its last status was {words[-1]!r} but the "
                                           f"broker holds {held_text}: publish status (and the `offline` last will) "
                                           "retained, so that semon learns it whenever it reconnects"))
        else:
            report.findings.append(Finding(OK, "status_retained", "the broker holds its status "
                                           f"{(kept or held_status)[-1]!r}, retained"))
        online = [m.at for m, word in zip(statuses, words, strict=True) if word == "online"]
        if len(online) >= 2:
            interval = statistics.median((b - a).total_seconds() for a, b in zip(online, online[1:], strict=False))
            level = WARN if interval > self.heartbeat_s * 1.5 else OK
            report.findings.append(Finding(level, "heartbeat", f"heartbeat (status online) every {interval:.1f} s"
                                           + ("" if level == OK else f"; the contract asks for every "
                                                                    f"{self.heartbeat_s:g} s")))
        elif (ended - started).total_seconds() > 2 * self.heartbeat_s:
            report.findings.append(Finding(WARN, "heartbeat", f"no heartbeat (status online every "
                                           f"{self.heartbeat_s:g} s) seen: semon counts telemetry as a sign of "
                                           "life, but a monitor that goes quiet while its equipment idles shows "
                                           "offline"))
        self._silence(report, live, statuses, words, started, ended)

    def _silence(self, report: Report, live: list[Observed], statuses: list[Observed], words: list[str],
                 started: datetime, ended: datetime) -> None:
        times = sorted(m.at for m in live)
        if not times:
            listened = (ended - started).total_seconds()
            report.findings.append(Finding(FIX, "silence", f"nothing received in {listened:.0f} s on "
                                           f"{TOPIC_ROOT}/<type>/{self.code}/<channel>: is the monitor "
                                           "connected, and does it publish under this code?"))
            return
        offline = {id(m) for m, word in zip(statuses, words, strict=True) if word == "offline"}
        timeline = sorted(live, key=lambda m: m.at)
        # Silence while connected: between two messages, neither of them the monitor saying it went offline (its
        # last will, or on leaving); from the start of the check to the first message counts too.
        longest = (timeline[0].at - started).total_seconds()
        for before, after in zip(timeline, timeline[1:], strict=False):
            if id(before) not in offline and id(after) not in offline:
                longest = max(longest, (after.at - before.at).total_seconds())
        if longest > self.offline_after_s:
            report.findings.append(Finding(FIX, "silence", f"silent for {longest:.1f} s while connected: semon "
                                           f"shows a monitor offline after {self.offline_after_s:g} s without a "
                                           f"message; send a heartbeat at least every {self.heartbeat_s:g} s"))
        else:
            report.findings.append(Finding(OK, "silence", f"never silent longer than {longest:.1f} s while "
                                           "connected"))
        last = timeline[-1]
        quiet_at_end = (ended - last.at).total_seconds()
        if id(last) in offline:
            report.findings.append(Finding(OK, "last_will", f"it left at {_time(last.at)} and said `offline` (its "
                                           "last will, or on leaving)"))
        elif quiet_at_end > self.offline_after_s:
            report.findings.append(Finding(FIX, "last_will", f"it stopped sending at {_time(last.at)} and no "
                                           f"`offline` status came in {quiet_at_end:.1f} s: if it lost its "
                                           "connection, it has no last will (set a retained `offline`); if it "
                                           "stayed connected, it missed its heartbeats"))
        elif offline:
            report.findings.append(Finding(OK, "last_will", "`offline` seen when it left, and it came back"))
        else:
            report.findings.append(Finding(OK, "last_will", "last will not tested: the monitor stayed connected "
                                           "(cut its power or network during a check to see its `offline`)"))

    # --- what the rules and models need -------------------------------------------------------------------

    def _fields(self, report: Report, equipment_type: str, telemetry: list) -> None:
        sent = {name for t in telemetry for name in t.values}
        missing = {who: [f for f in fields if f not in sent] for who, fields in needed_fields(equipment_type).items()}
        missing = {who: fields for who, fields in missing.items() if fields}
        if missing:
            text = "; ".join(f"{', '.join(fields)} (read by {who})" for who, fields in missing.items())
            report.findings.append(Finding(FIX, "fields_never_sent", f"fields semon needs that it never sent: {text}"))
        else:
            report.findings.append(Finding(OK, "fields_never_sent", "it sends every field the rules and models read"))

    def _counters(self, report: Report, equipment_type: str, telemetry: list) -> None:
        back: list[str] = []
        last: dict[str, Any] = {}
        for t in sorted(telemetry, key=lambda t: (t.ts, t.seq)):
            for name in COUNTERS.get(equipment_type, ()):
                value = t.values.get(name)
                if value is None:
                    continue
                before = last.get(name)
                if before is not None and value < before:
                    back.append(f"{name} {before:g} → {value:g} at {_time(t.ts)}")
                last[name] = value
        if back:
            report.findings.append(Finding(FIX, "counter_backwards", f"cumulative counters went back {len(back)} "
                                           "time(s) (a counter must survive restarts; semon reads a drop as a "
                                           "replaced monitor and counts nothing for it): " + _list(back)))
        elif last:
            report.findings.append(Finding(OK, "counter_backwards", f"counters only grow ({', '.join(sorted(last))})"))


def _examples(reasons: Counter[str]) -> str:
    shown = [f"{n}× {reason}" for reason, n in reasons.most_common(_EXAMPLES)]
    if len(reasons) > _EXAMPLES:
        shown.append(f"… and {len(reasons) - _EXAMPLES} other reason(s)")
    return "\n".join(shown)


def _list(items: list[str]) -> str:
    return ", ".join(items[:_EXAMPLES]) + (f" … ({len(items) - _EXAMPLES} more)" if len(items) > _EXAMPLES else "")


def _content(item: Any) -> str:
    return json.dumps(getattr(item, "values", None) or getattr(item, "detail", None), sort_keys=True, default=str)


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _status_word(payload: bytes) -> str:
    from ingest.messages import _Invalid, _parse_status  # the parser's own reading of a status

    try:
        return _parse_status(payload)
    except _Invalid:
        return payload.decode("utf-8", errors="replace").strip()[:40]


# --- listening -------------------------------------------------------------------------------------------------

class Listener:
    """Subscribes to one monitor's topics with the ingester's connection settings and keeps what arrives."""

    def __init__(self, config: Config, topic: str, clock_offset: timedelta = timedelta()):
        import paho.mqtt.client as mqtt

        from semon.tls import endpoint

        self.topic = topic
        self.clock_offset = clock_offset
        self.messages: list[Observed] = []
        self.refused: str | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        # Its own client id: the ingester's would take over the ingester's session.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"semon-check-{secrets.token_hex(4)}",
                                  protocol=mqtt.MQTTv5)
        self.endpoint = endpoint(config, "ingester")
        self.endpoint.configure(self.client)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def now(self) -> datetime:
        """The server's time, by this host's clock corrected to the database's."""
        return datetime.now(UTC) + self.clock_offset

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; ClickException when the broker cannot be reached or refuses."""
        try:
            self.client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
        except OSError as exc:
            raise click.ClickException(f"cannot reach the MQTT broker at {self.endpoint.host}:{self.endpoint.port}: "
                                       f"{exc}") from None
        self.client.loop_start()
        if not self._ready.wait(timeout_s) or self.refused:
            self.stop()
            raise click.ClickException(self.refused or f"the MQTT broker at {self.endpoint.host}:"
                                       f"{self.endpoint.port} did not accept the subscription in {timeout_s:g} s")

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

    def collected(self) -> list[Observed]:
        """What arrived so far."""
        with self._lock:
            return list(self.messages)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        if reason_code.is_failure:
            self.refused = f"the MQTT broker refused the connection: {reason_code}"
            self._ready.set()
            return
        # Without retainAsPublished, the retain flag marks what the broker held when we subscribed.
        client.subscribe(self.topic, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(code.is_failure for code in reason_codes):
            self.refused = f"the MQTT broker refused the subscription to {self.topic}: {reason_codes[0]}"
        self._ready.set()

    def _on_message(self, client, userdata, message) -> None:
        observed = Observed(message.topic, bytes(message.payload), bool(message.retain), self.now())
        with self._lock:
            self.messages.append(observed)


def check_monitor(config: Config, code: str, for_s: float, on_start: Iterable[Any] = ()) -> Report:
    """Listen to `code`'s topics for `for_s` seconds and judge what arrived."""
    from ingest.writer import DatabaseLookup
    from semon.db import connect

    if not CODE_PATTERN.match(code):
        raise click.BadParameter(f"{code!r} is not an equipment code ({CODE_PATTERN.pattern})", param_hint="CODE")
    with connect(config.database_url) as conn:
        lookup = DatabaseLookup(conn)
        db_now = conn.execute("SELECT now() AS now").fetchone()["now"]
        conn.commit()
        offset = db_now - datetime.now(UTC)
        listener = Listener(config, f"{TOPIC_ROOT}/+/{code}/+", offset)
        started = listener.now()
        listener.start()
        for callback in on_start:
            callback()
        try:
            time.sleep(max(0.0, for_s - (listener.now() - started).total_seconds()))
        finally:
            listener.stop()
        ended = listener.now()
        check = MonitorCheck(code, lookup, config.heartbeat_interval_s, config.offline_after_missed_heartbeats)
        return check.judge(listener.collected(), started, ended, held_status(config, code, offset))


def held_status(config: Config, code: str, clock_offset: timedelta = timedelta()) -> list[Observed]:
    """The retained status the broker holds for `code` now (a fresh subscription brings it)."""
    listener = Listener(config, f"{TOPIC_ROOT}/+/{code}/status", clock_offset)
    listener.start()
    time.sleep(_RETAINED_WAIT_S)
    listener.stop()
    return [m for m in listener.collected() if m.retained]


@click.command("check-monitor")
@click.argument("code")
@click.option("--for", "duration", default="10m", show_default=True, metavar="DURATION",
              help="how long to listen: 90s, 10m, 1h")
@click.pass_obj
def check_monitor_cmd(ctx: Any, code: str, duration: str) -> None:
    """Listen to one monitor's messages and say what it must fix (exit 1 when something must be fixed)."""
    from simulators.run import parse_history

    try:
        for_s = parse_history(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    config = ctx.config
    click.echo(f"listening to {TOPIC_ROOT}/+/{code}/+ for {for_s:g} s ...", err=True)
    report = check_monitor(config, code, for_s)
    click.echo(report.text())
    if report.must_fix:
        raise SystemExit(1)
