"""`semon demo` end to end: the simulated fleet is listed and hazards appear; Ctrl-C stops every part."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import Broker, api_token, free_port, wait_until


def get_json(url: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


@pytest.fixture
def own_broker(tmp_path) -> Iterator[Broker]:
    """A broker of its own: the demo leaves its fleet's retained statuses behind."""
    (tmp_path / "broker").mkdir()
    server = Broker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


def test_demo_serves_the_fleet_and_open_hazards_and_stops_on_ctrl_c(config, db, own_broker, tmp_path):
    port = free_port()
    env = {**os.environ, "SEMON_DATABASE_URL": config.database_url, "SEMON_MQTT_URL": own_broker.url,
           "SEMON_WEB_PORT": str(port), "SEMON_VAR": str(tmp_path), "SEMON_SCHEDULER_INTERVAL_S": "1",
           "SEMON_COMPLIANCE_INTERVAL_S": "5", "SEMON_MQTT_CLIENT_ID": "semon-demo-test",
           "SEMON_DELIVERY_GROUP_WAIT_S": "2"}
    demo = subprocess.Popen([sys.executable, "-m", "semon.cli", "demo"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        # The API needs a user's token (docs/access.md); the demo makes its users first.
        token = wait_until(lambda: api_token(db, "admin"), timeout=60, message="the demo's users")
        listing = wait_until(lambda: (get_json(f"{base}/api/equipment?limit=1000", token) or {}).get("items"),
                             timeout=60, message="the equipment list")
        assert len(listing) >= 55
        assert {item["type"] for item in listing} >= {"elevator", "boiler"}
        assert len({item["district"] for item in listing}) >= 2
        wait_until(lambda: db.execute("SELECT count(*) AS n FROM telemetry_elevator").fetchone()["n"] >= 50,
                   timeout=60, message="telemetry stored from the simulated elevators")
        # The hazards list is most severe first and paged: ask for all of it.
        wait_until(lambda: any(h["kind"] == "overdue:periodic_inspection"
                               for h in (get_json(f"{base}/api/hazards?limit=1000", token) or {}).get("items", [])),
                   timeout=60, message="an overdue periodic inspection among the open hazards")
        wait_until(lambda: any(h["source"] == "device"
                               for h in (get_json(f"{base}/api/hazards?limit=1000", token) or {}).get("items", [])),
                   timeout=90, message="a device-reported fault as an open hazard")
        # Faults the rules derive from telemetry (retrofit monitors send no events) are marked as such.
        wait_until(lambda: any("rule" in h["sources"]
                               for h in (get_json(f"{base}/api/hazards?limit=1000", token) or {}).get("items", [])),
                   timeout=120, message="a fault derived from telemetry among the hazards")
        # The demo delivers its alerts to the local receivers it starts (docs/delivery.md).
        received = tmp_path / "demo" / "received"
        wait_until(lambda: (received / "webhook.jsonl").is_file() and list((received / "mail").glob("*.eml")),
                   timeout=120, message="alert messages at the demo's webhook receiver and SMTP server")
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output
    assert "semon demo is running" in output
    assert all(f"  {name} " in output for name in ("admin", "inspector", "firm", "unit")), output
    assert get_json(f"{base}/healthz") is None, "the web UI still answers after Ctrl-C"
