"""The benchmark's fleet: 10,000 registered elevators and contract-valid telemetry for them.

The simulator's device models (simulators/elevator.py) run physics per device per tick, which costs far more
than a load generator may on a 2-core machine; this generator keeps their field names, units and value
ranges, and makes each message from a few random numbers.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # publishers import this module and need no database driver
    import psycopg

# Registry codes (设备代码) are 20 digits; a fixed prefix keeps them recognisable as the benchmark's.
CODE_PREFIX = "3110310100"
TZ = timezone(timedelta(hours=8))  # monitors in China report local time with its offset
SPEEDS = (1.0, 1.5, 1.75, 2.5)
# seq = phase * SEQ_PHASE + k: the rows of each phase are told apart by seq alone, and seq still increases
# per device across phases (the contract's rule).
SEQ_PHASE = 1_000_000


def equipment_code(index: int) -> str:
    """The registry code of elevator `index` (0-based)."""
    return f"{CODE_PREFIX}{index:010d}"


def floors_of(index: int) -> int:
    return 6 + index % 28


def rated_speed_of(index: int) -> float:
    return SPEEDS[index % len(SPEEDS)]


def register_fleet(conn: psycopg.Connection, count: int) -> None:
    """Register `count` elevators of one district and one firm in one statement (fast even for 100,000).

    `conn` returns tuple rows (a plain psycopg connection).
    """
    with conn.transaction():
        district = conn.execute("INSERT INTO districts (name) VALUES ('Benchmark District') RETURNING id").fetchone()
        firm = conn.execute("INSERT INTO maintenance_firms (name, phone) VALUES ('Benchmark Elevator Service', "
                            "'021-5555') RETURNING id").fetchone()
        assert district is not None and firm is not None
        # The same formulas as floors_of and rated_speed_of, so payloads match the registry.
        conn.execute("""
            INSERT INTO equipment (code, type, district_id, firm_id, install_date, rated_speed_mps, rated_load_kg,
                                   floors)
            SELECT %(prefix)s || lpad(g::text, 10, '0'), 'elevator', %(district)s, %(firm)s,
                   date '2010-01-01' + (g %% 4000), (%(speeds)s::float8[])[g %% 4 + 1], 1000, 6 + g %% 28
            FROM generate_series(0, %(last)s) AS g
        """, {"prefix": CODE_PREFIX, "district": district[0], "firm": firm[0], "speeds": list(SPEEDS),
              "last": count - 1})


def format_ts(epoch_ms: int) -> str:
    """RFC 3339 with milliseconds and the +08:00 offset, as the simulators send it."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).astimezone(TZ).isoformat(timespec="milliseconds")


class ElevatorTelemetry:
    """Telemetry payloads for elevators first..first+count-1; not thread-safe (one per publisher)."""

    def __init__(self, first: int, count: int, seed: int):
        self.rng = random.Random(seed)
        self.indices = range(first, first + count)
        self.topics = [f"sem/v1/elevator/{equipment_code(i)}/telemetry".encode() for i in self.indices]
        self.floors = [floors_of(i) for i in self.indices]
        self.speeds = [rated_speed_of(i) for i in self.indices]
        # Lifetime counters start where a car installed years ago would be, and grow with seq.
        self.run_base = [self.rng.randrange(200_000, 900_000) for _ in self.indices]
        self.motor_temp = [self.rng.uniform(30, 45) for _ in self.indices]

    def payload(self, j: int, seq: int, ts: str, sent_at_ns: int | None = None) -> bytes:
        """The JSON payload of device j (0-based within this generator) for message seq."""
        rng = self.rng
        r = rng.random()
        moving = r < 0.4
        persons = int(rng.random() * 8) if r < 0.7 else 0
        rated = self.speeds[j]
        speed = round(rated * (0.3 + 0.7 * rng.random()), 3) if moving else 0.0
        k = seq % SEQ_PHASE + (seq // SEQ_PHASE) * 50_000  # grows across phases, so counters never step back
        runs = self.run_base[j] + k
        body: dict[str, object] = {
            "ts": ts,
            "seq": seq,
            "floor": 1 + int(rng.random() * self.floors[j]),
            "direction": ("up" if r < 0.2 else "down") if moving else "stop",
            "speed_mps": speed,
            "door": "closed" if moving else ("open", "opening", "closed", "closing")[int(rng.random() * 4)],
            "door_zone": not moving,
            "load_pct": round(persons * 7.5 + rng.random() * 0.8, 1),
            "occupied": persons > 0,
            "mode": "normal" if r < 0.995 else "inspection",
            "safety_circuit_ok": True,
            "door_lock_ok": True,
            "run_count": runs,
            "door_cycles": int(runs * 1.05),
            "run_hours": round(runs * 25 / 3600, 4),
            "vibration_rms_g": round(0.006 + 0.014 * speed / rated + rng.random() * 0.002, 4) if moving
            else round(0.0015 + rng.random() * 0.0004, 4),
            "motor_current_a": round(12 * speed / rated * (1 + persons / 13) + rng.random() * 0.3, 2)
            if moving else 0.0,
            "motor_temp_c": round(self.motor_temp[j] + rng.random() * 0.2, 1),
            "leveling_mm": round(rng.gauss(0, 2), 1),
        }
        if sent_at_ns is not None:
            # Not a contract field: the ingester keeps it in telemetry_elevator.extra, which is what lets the
            # benchmark compute publish-to-commit latency from the database afterwards.
            body["sent_at_ns"] = sent_at_ns
        return json.dumps(body, separators=(",", ":")).encode()
