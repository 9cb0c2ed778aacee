"""`semon demo`: the whole service on a simulated fleet, in the foreground, until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from semon import users
from semon.audit import Actor
from semon.config import Config
from semon.db import connect, redact
from semon.migrate import migrate
from semon.registry.importer import import_records_csv, import_registry_csv

PARTS = ("receivers", "ingest", "scheduler", "web", "simulate")
# The demo's local receivers of alert messages (semon receivers, docs/delivery.md).
WEBHOOK_PORT, SMTP_PORT = 8025, 8026
STATUS_EVERY_S = 30


def _var_dir() -> Path:
    return Path(os.environ.get("SEMON_VAR") or Path(__file__).resolve().parent.parent / "var")


def _status(config: Config) -> str:
    with connect(config.database_url) as conn:
        row = conn.execute("""SELECT
            (SELECT count(*) FROM equipment) AS equipment,
            (SELECT count(*) FROM equipment_state WHERE last_seen > now() - interval '3 minutes') AS reporting,
            (SELECT count(*) FROM telemetry_elevator WHERE received_at > now() - interval '1 minute')
              + (SELECT count(*) FROM telemetry_boiler WHERE received_at > now() - interval '1 minute')
              + (SELECT count(*) FROM telemetry_escalator WHERE received_at > now() - interval '1 minute')
              + (SELECT count(*) FROM telemetry_pressure_vessel WHERE received_at > now() - interval '1 minute')
              AS stored_last_minute,
            (SELECT count(*) FROM alerts WHERE state <> 'resolved') AS open_alerts,
            (SELECT count(*) FROM dead_letter) AS dead_letters""").fetchone()
    return (f"{row['reporting']}/{row['equipment']} equipment reporting, {row['stored_last_minute']} telemetry rows "
            f"stored in the last minute, {row['open_alerts']} open hazards, {row['dead_letters']} dead letters")


def demo_users(config: Config) -> list[tuple[users.User, str]]:
    """One user per role over the demo fleet (an inspector of its first district, a user of its first firm and of
    the use unit of its first equipment), each with a new password: made on the first run, reset on the next."""
    actor = Actor(None, "demo")
    made = []
    with connect(config.database_url, autocommit=True, time_zone=config.time_zone) as conn:
        first = conn.execute("""SELECT d.name AS district, f.name AS firm, u.name AS use_unit
                                  FROM equipment e JOIN districts d ON d.id = e.district_id
                                  JOIN maintenance_firms f ON f.id = e.firm_id JOIN use_units u ON u.id = e.use_unit_id
                                 ORDER BY e.code LIMIT 1""").fetchone()
        specs = {"admin": {"role": users.ADMIN},
                 "inspector": {"role": users.INSPECTOR, "districts": [first["district"]]},
                 "firm": {"role": users.FIRM, "firm": first["firm"]},
                 "unit": {"role": users.USE_UNIT, "use_unit": first["use_unit"]}}
        for username, spec in specs.items():
            password = secrets.token_urlsafe(9)
            if users.get_user(conn, username=username) is None:
                user = users.create_user(conn, actor, username, password=password, **spec)
            else:
                user = users.reset_password(conn, actor, username, password)
            made.append((user, password))
    return made


def _logins(url: str, made: list[tuple[users.User, str]]) -> str:
    lines = [f"  {user.username:<10} {password:<14} {user.role:<10} {user.parties}" for user, password in made]
    return f"Sign in at {url}/login (one user per role; new passwords each run):\n" + "\n".join(lines)


def run_demo(config: Config, config_path: str | None) -> None:
    """Migrate, import the demo fleet's registry, start every part as a child process, stop them on Ctrl-C."""
    from simulators.fleet import records_path
    from simulators.run import write_scenario_registry

    var = _var_dir() / "demo"
    var.mkdir(parents=True, exist_ok=True)
    migrate(config.database_url)
    registry = var / "registry.csv"
    # Writes the records CSV (inspection and maintenance histories) next to it: the overdue list comes from them.
    count = write_scenario_registry("demo", config.simulate_seed, registry)
    # The generated fleet's districts are new to an empty database.
    print(f"demo fleet: {count} equipment; {import_registry_csv(config, registry, create_districts=True)}",
          flush=True)
    print(f"demo records: {import_records_csv(config, records_path(registry))}", flush=True)
    made = demo_users(config)
    accounts = _mqtt_accounts(config)
    received = var / "received"
    webhook_port, smtp_port = _port(WEBHOOK_PORT), _port(SMTP_PORT)
    accounts = _deliver_locally(config, accounts, received, webhook_port, smtp_port)

    # Ctrl-C and SIGTERM both mean "stop cleanly": the parts run in their own sessions and only we stop them.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    base = [sys.executable, "-m", "semon.cli"] + (["--config", config_path] if config_path else [])
    children: dict[str, subprocess.Popen] = {}
    logs = {}
    try:
        for part in PARTS:
            logs[part] = (var / f"{part}.log").open("a", encoding="utf-8")
            args = base + [part] + (["--scenario", "demo"] if part == "simulate" else [])
            if part == "receivers":
                args += ["--webhook-port", str(webhook_port), "--smtp-port", str(smtp_port), "--secret",
                         DEMO_WEBHOOK_SECRET, "--dir", str(received)]
            # Own sessions: Ctrl-C reaches only us, and we stop the parts in an order that loses nothing.
            children[part] = subprocess.Popen(args, stdout=logs[part], stderr=subprocess.STDOUT,
                                              start_new_session=True, env={**os.environ, **accounts.get(part, {})})
        url = f"http://{config.web_host}:{config.web_port}"
        print(f"""
semon demo is running. Look at:
  equipment      {url}/
  hazards        {url}/hazards
  JSON API       {url}/api/equipment   {url}/api/hazards   {url}/healthz
                 (with Authorization: Bearer <token>; make one at {url}/tokens or with `semon users token-create`)
  database       {redact(config.database_url)}
  MQTT broker    {redact(config.mqtt_url)}   (topics sem/v1/#; a monitor's account: semon monitors provision CODE)
  logs           {var}/{{{','.join(PARTS)}}}.log
  alerts sent    {received}/webhook.jsonl (webhook, http://127.0.0.1:{webhook_port}/hook) and {received}/mail/*.eml
                 (SMTP 127.0.0.1:{smtp_port}); contacts, routes and failed messages at {url}/contacts
{_logins(url, made)}
Press Ctrl-C to stop.
""", flush=True)
        next_status = time.monotonic() + 10
        while True:
            for part, child in children.items():
                if child.poll() is not None:
                    raise SystemExit(f"semon demo: {part} exited with code {child.returncode}; "
                                     f"see {var}/{part}.log")
            if time.monotonic() >= next_status:
                try:
                    print(time.strftime("%H:%M:%S"), _status(config), flush=True)
                except Exception as exc:  # noqa: BLE001 - a status line must never stop the demo
                    print(f"status unavailable: {exc}", flush=True)
                next_status = time.monotonic() + STATUS_EVERY_S
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    finally:
        _stop(children)
        for log in logs.values():
            log.close()


def _mqtt_accounts(config: Config) -> dict[str, dict[str, str]]:
    """Fresh passwords for the demo ingester's and simulator's accounts on the broker scripts/mosquitto.sh runs, as
    each part's SEMON_* variables; none when the broker is the user's own (SEMON_MQTT_URL, docs/monitors.md)."""
    from semon.monitors import broker_dir, change_accounts, set_service_account

    if os.environ.get("SEMON_MQTT_URL") or not broker_dir(config).is_dir():
        return {}
    ingester = config.mqtt_username or "semon-ingest"
    simulator = config.simulate_mqtt_username or "semon-simulator"
    (ingest, simulate), _ = change_accounts(config, lambda conn: (set_service_account(conn, "ingester", ingester),
                                                                 set_service_account(conn, "simulator", simulator)))
    print(f"MQTT accounts: {ingester} for the ingester, {simulator} for the simulator", flush=True)
    return {"ingest": {"SEMON_MQTT_USERNAME": ingester, "SEMON_MQTT_PASSWORD": ingest.password},
            "simulate": {"SEMON_SIMULATE_MQTT_USERNAME": simulator, "SEMON_SIMULATE_MQTT_PASSWORD": simulate.password}}


DEMO_WEBHOOK_SECRET = "semon-demo-webhook"


def _port(preferred: int) -> int:
    """`preferred` if it is free on 127.0.0.1, else a free one."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _deliver_locally(config: Config, accounts: dict[str, dict[str, str]], received: Path, webhook_port: int,
                     smtp_port: int) -> dict[str, dict[str, str]]:
    """Give every firm and district of the demo a webhook and an e-mail contact on the local receivers, and the
    scheduler the local SMTP server: the demo delivers its alerts where README.md says to look."""
    hook = f"http://127.0.0.1:{webhook_port}/hook"
    with connect(config.database_url, autocommit=True, time_zone=config.time_zone) as conn:
        # The receiver's port may differ from the last run's.
        conn.execute("UPDATE contacts SET address = %s WHERE channel = 'webhook' AND secret = %s",
                     (hook, DEMO_WEBHOOK_SECRET))
        if conn.execute("SELECT count(*) AS n FROM contacts").fetchone()["n"] == 0:
            for column, table in (("firm_id", "maintenance_firms"), ("use_unit_id", "use_units"),
                                  ("district_id", "districts")):
                conn.execute(f"INSERT INTO contacts ({column}, name, role, channel, address, secret)"
                             f" SELECT id, '值班 duty', %s, 'webhook', %s, %s FROM {table}",
                             ("duty" if column == "firm_id" else "inspector", hook, DEMO_WEBHOOK_SECRET))
                conn.execute(f"INSERT INTO contacts ({column}, name, role, channel, address)"
                             f" SELECT id, '邮件 e-mail', %s, 'email', 'duty-' || id || '@' || %s FROM {table}",
                             ("duty" if column == "firm_id" else "inspector", f"{table.replace('_', '-')}.demo"))
    received.mkdir(parents=True, exist_ok=True)
    smtp = {"SEMON_SMTP_HOST": "127.0.0.1", "SEMON_SMTP_PORT": str(smtp_port), "SEMON_SMTP_SECURITY": "none"}
    return {**accounts, "scheduler": {**accounts.get("scheduler", {}), **smtp}}


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(children: dict[str, subprocess.Popen]) -> None:
    # The simulator first, so that the ingester stores what was published before it flushes and exits.
    for part in ("simulate", "ingest", "scheduler", "web", "receivers"):
        child = children.get(part)
        if child is None or child.poll() is not None:
            continue
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
