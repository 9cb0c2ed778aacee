"""`semon demo`: the whole service on a simulated fleet, in the foreground, until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from semon.config import Config
from semon.db import connect, redact
from semon.migrate import migrate
from semon.registry.importer import import_records_csv, import_registry_csv

PARTS = ("ingest", "scheduler", "web", "simulate")
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
            # Own sessions: Ctrl-C reaches only us, and we stop the parts in an order that loses nothing.
            children[part] = subprocess.Popen(args, stdout=logs[part], stderr=subprocess.STDOUT,
                                              start_new_session=True)
        url = f"http://{config.web_host}:{config.web_port}"
        print(f"""
semon demo is running. Look at:
  equipment      {url}/
  hazards        {url}/hazards
  JSON API       {url}/api/equipment   {url}/api/hazards   {url}/healthz
  database       {redact(config.database_url)}
  MQTT broker    {config.mqtt_url}   (topics sem/v1/#)
  logs           {var}/{{{','.join(PARTS)}}}.log
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


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(children: dict[str, subprocess.Popen]) -> None:
    # The simulator first, so that the ingester stores what was published before it flushes and exits.
    for part in ("simulate", "ingest", "scheduler", "web"):
        child = children.get(part)
        if child is None or child.poll() is not None:
            continue
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
