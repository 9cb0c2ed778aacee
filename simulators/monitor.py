"""How a monitor delivers its messages: fault reporting or not, heartbeats, redelivery, reordering, clock
skew, drop-outs with a backlog, and (on request) malformed messages for the dead-letter path. No I/O."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from semon.vocabulary import TELEMETRY_FIELDS, topic

if TYPE_CHECKING:
    from simulators.fleet import Equipment
    from simulators.simulation import Message

# The ingester rejects a ts more than a day ahead; a skew is a clock off by minutes or a wrong zone, not that.
MAX_SKEW_S = 12 * 3600.0
MALFORMED_KINDS = ("not_json", "wrong_type", "unknown_equipment")
_FIELD_NAMES = {kind: frozenset(f.name for f in fields) for kind, fields in TELEMETRY_FIELDS.items()}


@dataclass(frozen=True)
class MonitorMix:
    """A scenario's `monitors:` section. The defaults are ideal monitors: they report their own faults, say
    they are alive every minute and send everything once, in order, on time and well-formed."""

    reporting_share: float = 1.0          # the rest are retrofit terminals: telemetry only, no events
    heartbeat_s: float = 60.0             # a retained "online" re-sent this often while connected; 0: never
    duplicate_rate: float = 0.0           # share of messages delivered twice (QoS 1 redelivery)
    out_of_order_rate: float = 0.0        # share of messages held back and sent after the device's next one
    skew_share: float = 0.0               # share of monitors whose clock is off by a constant
    skew_s: tuple[float, float] = (-120.0, 120.0)  # that offset's range, seconds
    dropouts_per_day: float = 0.0         # drop-outs per monitor per day of equipment time
    dropout_s: tuple[float, float] = (60.0, 600.0)  # how long one lasts, seconds
    interval_jitter_s: float = 0.0        # each reading is taken up to this much early or late (a firmware timer)
    field_dropout_rate: float = 0.0       # share of telemetry messages missing one reading (a sensor not answering)
    occupancy_miss_rate: float = 0.0      # share of readings in which the car's PIR misses the people in it
    occupancy_false_rate: float = 0.0     # share of readings in which it sees someone in an empty car


_SHARES = ("reporting_share", "skew_share")
_RATES = ("duplicate_rate", "out_of_order_rate", "field_dropout_rate", "occupancy_miss_rate",
          "occupancy_false_rate")
# A reading moves by less than half the interval, so a monitor's readings keep their order (FleetSimulation).
MAX_JITTER_SHARE = 0.45


def parse_monitors(data: Any) -> MonitorMix:
    """The `monitors:` section of a scenario (None: the defaults); ValueError names the bad key."""
    if data is None:
        return MonitorMix()
    if not isinstance(data, Mapping):
        raise ValueError("monitors must be a mapping")
    known = MonitorMix.__dataclass_fields__
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ValueError(f"monitors: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    defaults = MonitorMix()
    values: dict[str, Any] = {}
    for key in _SHARES:
        values[key] = _number(data, key, getattr(defaults, key), 0, 1)
    for key in _RATES:
        # Above one in two, a "rate" would be the monitor's normal behaviour rather than an occasional fault.
        values[key] = _number(data, key, getattr(defaults, key), 0, 0.5)
    values["heartbeat_s"] = _number(data, "heartbeat_s", defaults.heartbeat_s, 0, 86400)
    values["interval_jitter_s"] = _number(data, "interval_jitter_s", defaults.interval_jitter_s, 0, 3600)
    values["dropouts_per_day"] = _number(data, "dropouts_per_day", defaults.dropouts_per_day, 0, 1440)
    values["skew_s"] = _range(data, "skew_s", defaults.skew_s, -MAX_SKEW_S, MAX_SKEW_S)
    values["dropout_s"] = _range(data, "dropout_s", defaults.dropout_s, 0, 7 * 86400.0)
    if values["dropout_s"][0] <= 0:
        raise ValueError("monitors.dropout_s: a drop-out lasts more than 0 s")
    return MonitorMix(**values)


def _number(data: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key, default)
    # bool is an int in Python; `duplicate_rate: yes` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"monitors.{key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"monitors.{key} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _range(data: Mapping[str, Any], key: str, default: tuple[float, float], low: float,
           high: float) -> tuple[float, float]:
    value = data.get(key, list(default))
    if (not isinstance(value, list | tuple) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)):
        raise ValueError(f"monitors.{key} must be a list of two numbers [low, high], got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not low <= a <= b <= high:
        raise ValueError(f"monitors.{key} needs {low:g} <= low <= high <= {high:g}, got {value!r}")
    return a, b


class MonitorBehaviour:
    """One monitor's way of delivering what its device produces: `deliver` turns each message into what the
    broker actually receives at that moment (nothing while disconnected, a repeat, a late one...).

    Every draw comes from streams seeded by the seed and the equipment code, so a monitor behaves the same
    whichever shard runs it and whatever the rest of the fleet is.
    """

    def __init__(self, equipment: Equipment, seed: int, mix: MonitorMix, malformed_share: float = 0.0):
        if not 0 <= malformed_share < 1:
            raise ValueError(f"malformed_share must be at least 0 and less than 1, got {malformed_share}")
        self.code = equipment.code
        self.type = equipment.type
        self.mix = mix
        # The monitor's kind is drawn once from its own stream; both draws are always made so that changing
        # one share does not reshuffle the other.
        kind = random.Random(f"{seed}/monitor/{equipment.code}")
        self.reports_faults = kind.random() < mix.reporting_share
        skewed = kind.random() < mix.skew_share
        offset = kind.uniform(*mix.skew_s)
        self.skew = timedelta(seconds=round(offset, 3) if skewed else 0.0)
        self.rng = random.Random(f"{seed}/monitor/{equipment.code}/delivery")
        # Malformed messages draw from their own stream: turning them on leaves everything else as it was.
        self.malformed_rng = random.Random(f"{seed}/monitor/{equipment.code}/malformed") if malformed_share else None
        # So do the sensors' own failings (a reading missing, the PIR wrong).
        sensors = mix.field_dropout_rate or (equipment.type == "elevator" and (
            mix.occupancy_miss_rate or mix.occupancy_false_rate))
        self.sensor_rng = random.Random(f"{seed}/monitor/{equipment.code}/sensors") if sensors else None
        # An extra bad message after a share p/(1-p) of the good ones makes p of all messages bad.
        self.malformed_odds = malformed_share / (1 - malformed_share)
        self.held: Message | None = None          # an out-of-order message waiting for the next one
        self.backlog: list[Message] | None = None  # messages kept while disconnected; None when connected
        self.offline_until: datetime | None = None
        self.last_at: datetime | None = None
        self.last_heartbeat: datetime | None = None
        self.status_topic = topic(equipment.type, equipment.code, "status")

    def deliver(self, message: Message, now: datetime) -> list[Message]:
        """What reaches the broker at `now` when the device produces `message` (telemetry or an event)."""
        gap_s = 0.0 if self.last_at is None else max(0.0, (now - self.last_at).total_seconds())
        self.last_at = now
        if self.last_heartbeat is None:
            self.last_heartbeat = now  # the runner announced every monitor online when it connected
        if self.skew:
            message = self._skewed(message)
        if self.sensor_rng is not None and message.channel == "telemetry":
            message = self._sensed(message)
        out: list[Message] = []
        if self.backlog is not None:
            assert self.offline_until is not None
            if now < self.offline_until:
                self.backlog.append(message)
                return []
            out += self._reconnect(message, now)
        elif self._drops_out(gap_s):
            return self._disconnect(message, now)
        if self.malformed_rng is not None and message.channel == "telemetry":
            out += self._malformed(message)
        if self.held is not None:
            # The held message goes after a later one of the same device: that is the reordering.
            out += self._maybe_twice(message) + self._maybe_twice(self.held)
            self.held = None
        elif self.mix.out_of_order_rate and self.rng.random() < self.mix.out_of_order_rate:
            self.held = message
        else:
            out += self._maybe_twice(message)
        if self.mix.heartbeat_s and (now - self.last_heartbeat).total_seconds() >= self.mix.heartbeat_s:
            out.append(self._status("online", message))
            self.last_heartbeat = now
        return out

    def _skewed(self, message: Message) -> Message:
        payload = message.payload
        assert isinstance(payload, dict)
        # The ts keeps the monitor's own offset and millisecond format; the skew is whole milliseconds.
        ts = datetime.fromisoformat(payload["ts"]) + self.skew
        return replace(message, payload={**payload, "ts": ts.isoformat(timespec="milliseconds")})

    def _sensed(self, message: Message) -> Message:
        # What the monitor's own sensors make of the device's true state: a passive infrared sensor sees people by
        # their movement, so it misses still passengers and now and then takes the door or a reflection for one;
        # and a reading that did not answer in time is left out of the message.
        rng = self.sensor_rng
        assert rng is not None
        payload = message.payload
        assert isinstance(payload, dict)
        changed = dict(payload)
        if "occupied" in changed:
            flip = self.mix.occupancy_miss_rate if changed["occupied"] else self.mix.occupancy_false_rate
            if flip and rng.random() < flip:
                changed["occupied"] = not changed["occupied"]
        if self.mix.field_dropout_rate and rng.random() < self.mix.field_dropout_rate:
            readings = sorted(_FIELD_NAMES[self.type] & changed.keys())
            if readings:
                del changed[rng.choice(readings)]
        return message if changed == payload else replace(message, payload=changed)

    def _drops_out(self, gap_s: float) -> bool:
        # A Poisson process in equipment time: the chance over the gap since the last message.
        rate = self.mix.dropouts_per_day
        return rate > 0 and gap_s > 0 and self.rng.random() < 1 - math.exp(-rate * gap_s / 86400)

    def _disconnect(self, message: Message, now: datetime) -> list[Message]:
        # The broker publishes the monitor's last will; the monitor keeps what it produces meanwhile,
        # starting with a message it was holding back, which is older.
        self.offline_until = now + timedelta(seconds=self.rng.uniform(*self.mix.dropout_s))
        self.backlog = ([self.held] if self.held is not None else []) + [message]
        self.held = None
        return [self._status("offline", message)]

    def _reconnect(self, message: Message, now: datetime) -> list[Message]:
        # On reconnecting the monitor says it is online, then flushes its backlog as produced: original ts
        # and seq, in order, before the message of the moment.
        backlog = self.backlog or []
        self.backlog = None
        self.offline_until = None
        self.last_heartbeat = now
        return [self._status("online", message), *backlog]

    def _maybe_twice(self, message: Message) -> list[Message]:
        # A lost PUBACK: the client sends the same packet again, byte for byte.
        rate = self.mix.duplicate_rate
        return [message, message] if rate and self.rng.random() < rate else [message]

    def _status(self, state: str, like: Message) -> Message:
        return replace(like, channel="status", topic=self.status_topic, payload=state, retain=True)

    def _malformed(self, message: Message) -> list[Message]:
        rng = self.malformed_rng
        assert rng is not None
        # Odds above one (a share above a half) mean more than one bad message per good one.
        whole = int(self.malformed_odds)
        count = whole + (rng.random() < self.malformed_odds - whole)
        return [self._corrupted(message, rng) for _ in range(count)]

    def _corrupted(self, message: Message, rng: random.Random) -> Message:
        kind = rng.choice(MALFORMED_KINDS)
        payload = message.payload
        assert isinstance(payload, dict)
        if kind == "not_json":
            # A payload cut short, as by a terminal's too-small send buffer.
            raw = message.encode()
            return replace(message, payload=raw[: rng.randint(1, len(raw) - 1)])
        if kind == "wrong_type":
            fields = sorted(_FIELD_NAMES[self.type] & payload.keys()) or ["seq"]
            return replace(message, payload={**payload, rng.choice(fields): "n/a"})
        # A terminal configured with a code that is not in the registry.
        return replace(message, topic=topic(self.type, f"UNREG-{self.code}", message.channel))
