"""Benchmark: an alert storm delivered (docs/delivery.md). 10,000 alerts across 50 firms (2,000 elevators, 5 kinds
each, 1,000 of them critical) are raised at once through alerts.store.raise_alerts on a fresh database; the
dispatcher (alerts/delivery.py, default settings: 30 s group wait) then runs on the real clock, as the scheduler
would, until every notification is settled, delivering to a local webhook receiver that checks each signature and
dedupes on the idempotency key. Each firm has one webhook contact, the district one (its route takes the critical
and high alerts). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.channels.webhook import Webhook  # noqa: E402
from alerts.delivery import DeliverySettings, deliver  # noqa: E402
from alerts.receivers import HttpReceiver, Received  # noqa: E402
from alerts.store import AlertInput, raise_alerts  # noqa: E402
from semon.config import load_config  # noqa: E402
from semon.db import connect, create_database, drop_database, redact  # noqa: E402
from semon.migrate import migrate  # noqa: E402

FIRMS = 50
KINDS = (("entrapment", "critical"), ("door_close_failure", "medium"), ("door_open_failure", "medium"),
         ("floor_position_lost", "high"), ("run_timeout", "low"))
SECRET = "bench-secret"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] if ordered else 0.0


def setup(conn, receiver: HttpReceiver, equipment: int) -> list[int]:
    """50 firms, one district, `equipment` elevators (no use unit), a webhook contact per firm and the district."""
    conn.execute("INSERT INTO districts (name) VALUES ('Bench District')")
    conn.execute("INSERT INTO maintenance_firms (name) SELECT 'Firm ' || n FROM generate_series(1, %s) n", (FIRMS,))
    conn.execute("""INSERT INTO equipment (code, type, district_id, firm_id, status, install_date, rated_speed_mps,
                                           floors, address)
                    SELECT 'EL-' || lpad(n::text, 5, '0'), 'elevator', 1, 1 + n %% %s, 'in_use', '2015-06-01', 1.75,
                           18, '上海市徐汇区 ' || n || ' 号'
                      FROM generate_series(1, %s) n""", (FIRMS, equipment))
    conn.execute("INSERT INTO contacts (firm_id, name, channel, address, secret) SELECT id, 'duty ' || id,"
                 " 'webhook', %s, %s FROM maintenance_firms", (receiver.url() + "?firm", SECRET))
    conn.execute("INSERT INTO contacts (district_id, name, role, channel, address, secret) VALUES (1, 'inspector',"
                 " 'inspector', 'webhook', %s, %s)", (receiver.url() + "?district", SECRET))
    return [r["id"] for r in conn.execute("SELECT id FROM equipment ORDER BY id")]


def main() -> None:
    """Raise the storm, deliver it, print the figures and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=2000, help="elevators; 5 alerts each")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    args = parser.parse_args()
    config = load_config()
    settings = DeliverySettings(time_zone=config.time_zone, base_url=config.web_public_url,
                                group_wait_s=config.delivery_group_wait_s,
                                group_interval_s=config.delivery_group_interval_s)
    received_at: dict[str, float] = {}
    lock = threading.Lock()

    def on_receive(item: Received) -> None:
        with lock:
            received_at[item.key] = time.time()

    receiver = HttpReceiver(secret=SECRET, on_receive=on_receive).start()
    name = f"semon_bench_alerts_{secrets.token_hex(3)}"
    with ExitStack() as stack:
        url = create_database(config.database_url, name)
        stack.callback(drop_database, config.database_url, name)
        stack.callback(receiver.stop)
        migrate(url)
        print(f"database {redact(url)}; receiver {receiver.url()}", file=sys.stderr)
        conn = stack.enter_context(connect(url, autocommit=True, time_zone=config.time_zone))
        ids = setup(conn, receiver, args.equipment)
        storm = [AlertInput(e, kind, severity, f"{kind} (bench)", datetime.now(UTC))
                 for e in ids for kind, severity in KINDS]
        started = time.time()
        result = raise_alerts(conn, "device", storm, at=datetime.now(UTC))
        raised_s = time.time() - started
        queued = conn.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"]
        print(f"raised {result.raised} alerts in {raised_s:.2f} s: {queued} notifications queued", file=sys.stderr)
        channels = {"webhook": Webhook(config.delivery_timeout_s)}
        runs = 0
        while time.time() - started < args.timeout:
            counts = deliver(conn, datetime.now(UTC), settings, channels)
            runs += 1
            pending = conn.execute("SELECT count(*) AS n FROM notifications WHERE status = 'pending'").fetchone()["n"]
            if counts.errors:
                print(f"errors: {counts.errors[:3]}", file=sys.stderr)
            if not pending:
                break
            if not (counts.sent or counts.messages or counts.expanded):
                time.sleep(0.5)  # the real clock: the dispatcher waits out the group wait as the scheduler would
        done_s = time.time() - started
        rows = conn.execute("""SELECT n.id, n.status, extract(epoch FROM n.created_at) AS queued, a.severity
                                 FROM notifications n JOIN alerts a ON a.id = n.alert_id""").fetchall()
        messages = conn.execute("SELECT count(*) AS n FROM delivery_messages").fetchone()["n"]
    carried: dict[int, list[str]] = {}
    for item in receiver.received:
        for notification in item.body["notifications"]:
            carried.setdefault(notification["notification_id"], []).append(item.key)
    lost = sum(1 for r in rows if r["id"] not in carried)
    duplicated = receiver.duplicates + sum(len(keys) - 1 for keys in carried.values())
    critical = [received_at[carried[r["id"]][0]] - float(r["queued"]) for r in rows
                if r["severity"] == "critical" and r["id"] in carried]
    everything = [received_at[keys[0]] for keys in carried.values()]
    figures = {
        "alerts": result.raised,
        "notifications": len(rows),
        "notifications_sent": sum(1 for r in rows if r["status"] == "sent"),
        "messages": messages,
        "messages_received": len(receiver.keys),
        "seconds_to_deliver_all": round((max(everything) - started) if everything else done_s, 2),
        "group_wait_s": settings.group_wait_s,
        "lost": lost,
        "duplicated": duplicated,
        "rejected_signatures": len(receiver.rejected),
        "critical_delay_p50_s": round(percentile(critical, 50), 3),
        "critical_delay_p99_s": round(percentile(critical, 99), 3),
        "critical_delay_max_s": round(max(critical, default=0.0), 3),
        "dispatcher_runs": runs,
        "raise_seconds": round(raised_s, 3),
    }
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
