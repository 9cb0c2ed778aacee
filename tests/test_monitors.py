"""MQTT accounts (docs/monitors.md): a monitor publishes only under its own equipment's topics and reads nothing; a
revoked or rotated account is disconnected at once; semon stores hashes only; the broker refuses anyone else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from ingest.service import Ingester
from semon.monitors import (
    Account,
    AccountError,
    broker_dir,
    change_accounts,
    hash_password,
    provision,
    render_acl,
    rotate,
    set_service_account,
    verify_password,
)
from tests.conftest import REPO, Broker, register_equipment, wait_until

NOT_AUTHORIZED = 135  # MQTT 5 reason code, in CONNACK and PUBACK


class Client:
    """A monitor's (or anyone's) MQTT 5 connection that records what the broker answered."""

    def __init__(self, broker: Broker, username: str | None, password: str | None, client_id: str = ""):
        self.connacks: list[int] = []
        self.pubacks: dict[int, int] = {}
        self.messages: list[str] = []
        self.disconnected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, flags, rc, props: self.connacks.append(rc.value)
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.disconnected.set()
        self.client.on_publish = lambda c, u, mid, rc, props: self.pubacks.__setitem__(mid, rc.value)
        self.client.on_message = lambda c, u, message: self.messages.append(message.topic)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        wait_until(lambda: self.connacks, timeout=5, message=f"the broker's answer to {username}")

    @property
    def accepted(self) -> bool:
        return self.connacks[-1] == 0

    def publish(self, topic: str, payload: dict) -> int:
        """The PUBACK reason code: 0 stored by the broker, 135 refused."""
        mid = self.client.publish(topic, json.dumps(payload).encode(), qos=1).mid
        return wait_until(lambda: self.pubacks.get(mid, None) is not None and [self.pubacks[mid]], timeout=5,
                          message=f"PUBACK of {topic}")[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def telemetry(seq: int, floor: int) -> dict:
    return {"ts": datetime.now(UTC).isoformat(), "seq": seq, "floor": floor}


@pytest.fixture
def own_broker(tmp_path) -> Iterator[Broker]:
    """A broker whose accounts are semon's: `semon monitors` writes its files and reloads it."""
    (tmp_path / "broker").mkdir()
    server = Broker(tmp_path / "broker", managed=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def accounts_config(config, own_broker):
    """Settings for the own broker, with the ingester's account provisioned as semon does it."""
    base = config.replace(mosquitto_dir=str(own_broker.directory), mqtt_url=own_broker.address)
    issued, _ = change_accounts(base, lambda conn: set_service_account(conn, "ingester", "semon-ingest"))
    return base.replace(mqtt_username="semon-ingest", mqtt_password=issued.password)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def ingester(accounts_config) -> Iterator[Ingester]:
    running = Ingester(accounts_config)
    running.start()
    assert running.wait_connected(10), "the ingester could not connect with its own account"
    yield running
    running.stop()


def semon(config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEMON_DATABASE_URL": config.database_url, "SEMON_MOSQUITTO_DIR": config.mosquitto_dir}
    return subprocess.run([sys.executable, "-m", "semon.cli", "monitors", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60)


def floors_stored(db, code: str) -> list[int]:
    return [r["floor"] for r in db.execute(
        "SELECT t.floor FROM telemetry_elevator t JOIN equipment e ON e.id = t.equipment_id WHERE e.code = %s "
        "ORDER BY t.seq", (code,))]


def test_a_monitor_publishing_under_another_code_is_refused_and_never_reaches_the_ingester(
        db, accounts_config, own_broker, ingester, clients):
    register_equipment(db, "EL-A")
    register_equipment(db, "EL-B")
    register_equipment(db, "BL-C", "boiler")
    issued, _ = change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A", "EL-B"]))
    password = {i.username: i.password for i in issued}
    monitor = Client(own_broker, "EL-A", password["EL-A"])
    clients.append(monitor)

    assert monitor.publish("sem/v1/elevator/EL-B/telemetry", telemetry(1, 13)) == NOT_AUTHORIZED
    assert monitor.publish("sem/v1/boiler/BL-C/telemetry", {"ts": datetime.now(UTC).isoformat(), "seq": 1,
                                                              "pressure_mpa": 9.9}) == NOT_AUTHORIZED
    # Its own code under another type is not its topic either.
    assert monitor.publish("sem/v1/escalator/EL-A/telemetry", telemetry(1, 14)) == NOT_AUTHORIZED
    assert monitor.publish("sem/v1/elevator/EL-A/telemetry", telemetry(2, 7)) == 0

    wait_until(lambda: floors_stored(db, "EL-A"), timeout=10, message="EL-A's own telemetry stored")
    time.sleep(0.5)  # a refused message that had got through would be written by now
    assert floors_stored(db, "EL-A") == [7]
    assert floors_stored(db, "EL-B") == []
    assert db.execute("SELECT count(*) AS n FROM telemetry_boiler").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0
    assert ingester.totals.stored == 1


def test_a_wrong_channel_under_its_own_code_reaches_the_dead_letters_with_its_reason(
        db, accounts_config, own_broker, ingester, clients):
    register_equipment(db, "EL-A")
    (issued,), _ = change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A"]))
    monitor = Client(own_broker, "EL-A", issued.password)
    clients.append(monitor)

    assert monitor.publish("sem/v1/elevator/EL-A/telemetryy", telemetry(1, 2)) == 0

    letter = wait_until(lambda: db.execute("SELECT topic, reason FROM dead_letter").fetchone(), timeout=10,
                        message="the dead letter")
    assert letter == {"topic": "sem/v1/elevator/EL-A/telemetryy",
                      "reason": "unknown channel 'telemetryy' in topic (expected telemetry, event, status)"}


def test_a_monitor_reads_nothing_not_even_its_own_topics(db, accounts_config, own_broker, ingester, clients):
    register_equipment(db, "EL-A")
    register_equipment(db, "EL-B")
    issued, _ = change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A", "EL-B"]))
    password = {i.username: i.password for i in issued}
    listener = Client(own_broker, "EL-A", password["EL-A"])
    clients.append(listener)
    listener.client.subscribe("sem/v1/#", qos=1)
    talker = Client(own_broker, "EL-B", password["EL-B"])
    clients.append(talker)
    time.sleep(0.3)

    assert talker.publish("sem/v1/elevator/EL-B/telemetry", telemetry(1, 3)) == 0
    assert listener.publish("sem/v1/elevator/EL-A/telemetry", telemetry(1, 4)) == 0
    wait_until(lambda: floors_stored(db, "EL-B") and floors_stored(db, "EL-A"), timeout=10,
               message="both monitors' telemetry stored")
    time.sleep(0.3)
    assert listener.messages == []


def test_revoke_disconnects_the_monitor_at_once_and_refuses_it_after_while_others_stay(
        db, accounts_config, own_broker, ingester, clients):
    register_equipment(db, "EL-A")
    register_equipment(db, "EL-B")
    issued, _ = change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A", "EL-B"]))
    password = {i.username: i.password for i in issued}
    revoked = Client(own_broker, "EL-A", password["EL-A"])
    other = Client(own_broker, "EL-B", password["EL-B"])
    clients.extend([revoked, other])
    assert revoked.accepted and other.accepted

    done = semon(accounts_config, "revoke", "EL-A")

    assert done.returncode == 0, done.stderr
    assert done.stdout == "revoked: EL-A\n"
    assert f"broker reloaded ({own_broker.directory})" in done.stderr
    assert revoked.disconnected.wait(5), "the revoked monitor is still connected"
    assert not other.disconnected.is_set() and ingester.wait_connected(0)
    again = Client(own_broker, "EL-A", password["EL-A"])
    clients.append(again)
    assert again.connacks[0] == NOT_AUTHORIZED
    row = db.execute("SELECT revoked_at, password_hash FROM mqtt_accounts WHERE username = 'EL-A'").fetchone()
    assert row["revoked_at"] is not None and row["password_hash"] is None
    assert other.publish("sem/v1/elevator/EL-B/telemetry", telemetry(1, 5)) == 0


def test_rotate_disconnects_the_old_password_and_lets_the_new_one_in(db, accounts_config, own_broker, clients):
    register_equipment(db, "EL-A")
    (old,), _ = change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A"]))
    connected = Client(own_broker, "EL-A", old.password)
    clients.append(connected)

    (new,), reloaded = change_accounts(accounts_config, lambda conn: rotate(conn, ["EL-A"]))

    assert reloaded and new.password != old.password
    assert connected.disconnected.wait(5), "the connection with the old password was kept"
    stale = Client(own_broker, "EL-A", old.password)
    fresh = Client(own_broker, "EL-A", new.password)
    clients.extend([stale, fresh])
    assert (stale.connacks[0], fresh.connacks[0]) == (NOT_AUTHORIZED, 0)


def test_the_broker_refuses_anonymous_clients_and_wrong_passwords(db, accounts_config, own_broker, clients):
    register_equipment(db, "EL-A")
    change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A"]))
    anonymous = Client(own_broker, None, None)
    wrong = Client(own_broker, "EL-A", "not-its-password")
    unknown = Client(own_broker, "EL-Z", "whatever")
    clients.extend([anonymous, wrong, unknown])
    assert [anonymous.connacks[0], wrong.connacks[0], unknown.connacks[0]] == [NOT_AUTHORIZED] * 3


def test_the_tests_own_broker_refuses_anonymous_clients_too(broker, clients):
    anonymous = Client(broker, None, None)
    clients.append(anonymous)
    assert anonymous.connacks[0] == NOT_AUTHORIZED


def test_the_ingesters_account_cannot_publish_as_a_monitor(db, accounts_config, own_broker, clients):
    ingest = Client(own_broker, "semon-ingest", accounts_config.mqtt_password)
    clients.append(ingest)
    assert ingest.publish("sem/v1/elevator/EL-A/telemetry", telemetry(1, 1)) == NOT_AUTHORIZED


def test_provision_prints_each_password_once_and_stores_only_its_hash(db, accounts_config):
    register_equipment(db, "EL-A")
    register_equipment(db, "EL-B")

    done = semon(accounts_config, "provision", "EL-A", "EL-B")

    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert [username for username, _ in lines] == ["EL-A", "EL-B"]
    rows = {r["username"]: r for r in db.execute("SELECT * FROM mqtt_accounts WHERE role = 'monitor'")}
    for username, password in lines:
        assert len(password) == 32
        assert verify_password(password, rows[username]["password_hash"])
        assert password not in json.dumps({k: str(v) for k, v in rows[username].items()})
        assert password not in (own_dir := Path(accounts_config.mosquitto_dir)).joinpath("passwords").read_text()
        assert f"{username}:{rows[username]['password_hash']}\n" in (own_dir / "passwords").read_text()
    assert "shown this once" in done.stderr


def test_provisioning_is_all_or_nothing_and_never_replaces_a_working_password(db, accounts_config):
    register_equipment(db, "EL-A")
    (first,), _ = change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A"]))
    register_equipment(db, "EL-B")

    unknown = semon(accounts_config, "provision", "EL-B", "EL-NOPE")
    again = semon(accounts_config, "provision", "EL-A")

    assert (unknown.returncode, unknown.stderr.strip().splitlines()[-1]) == (
        1, "Error: not in the equipment registry: EL-NOPE")
    assert (again.returncode, again.stderr.strip().splitlines()[-1]) == (
        1, "Error: already provisioned (rotate gives a new password): EL-A")
    accounts = {r["username"]: r["password_hash"] for r in db.execute("SELECT * FROM mqtt_accounts")}
    assert set(accounts) == {"semon-ingest", "EL-A"}
    assert verify_password(first.password, accounts["EL-A"])


def test_provision_all_gives_every_registered_equipment_without_one_an_account_but_scrapped_ones(db, accounts_config):
    register_equipment(db, "EL-A")
    register_equipment(db, "EL-B")
    register_equipment(db, "EL-S", status="suspended")
    register_equipment(db, "EL-X", status="scrapped")
    change_accounts(accounts_config, lambda conn: provision(conn, ["EL-A"]))

    done = semon(accounts_config, "provision", "--all")

    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["EL-B", "EL-S"]
    acl = Path(accounts_config.mosquitto_dir, "acl").read_text()
    assert "user EL-X" not in acl and "user EL-A\ntopic write sem/v1/elevator/EL-A/#\n" in acl


def test_a_change_the_broker_cannot_be_told_of_is_not_stored(db, accounts_config, tmp_path):
    register_equipment(db, "EL-A")
    elsewhere = accounts_config.replace(mosquitto_dir=str(tmp_path / "no-such-dir"))

    with pytest.raises(AccountError, match="no-such-dir does not exist"):
        change_accounts(elsewhere, lambda conn: provision(conn, ["EL-A"]))

    assert db.execute("SELECT count(*) AS n FROM mqtt_accounts WHERE username = 'EL-A'").fetchone()["n"] == 0


def test_the_acl_lets_each_role_do_its_work_only():
    accounts = [Account("EL-D1-0001", "monitor", "$7$h", "elevator", "EL-D1-0001"),
                Account("semon-ingest", "ingester", "$7$h"), Account("semon-simulator", "simulator", "$7$h")]
    assert render_acl(accounts).split("\n", 2)[2] == """
user EL-D1-0001
topic write sem/v1/elevator/EL-D1-0001/#

user semon-ingest
topic read sem/v1/#
topic write semon/ingest/#
topic write sem/v1/alerts/#

user semon-simulator
topic write sem/v1/#
"""


def test_a_hash_verifies_its_own_password_only():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$7$101$")
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct horsf", hashed)
    assert not verify_password("correct horse", "$6$not$ours")


def test_the_broker_directory_defaults_to_the_one_scripts_mosquitto_sh_uses(config, monkeypatch, tmp_path):
    monkeypatch.setenv("SEMON_VAR", str(tmp_path))
    assert broker_dir(config.replace(mosquitto_dir="")) == tmp_path / "mosquitto"
    assert broker_dir(config.replace(mosquitto_dir="/srv/mqtt")) == Path("/srv/mqtt")


def test_semon_config_hides_the_mqtt_passwords_in_its_listing():
    env = {**os.environ, "SEMON_MQTT_PASSWORD": "ingest-secret-1", "SEMON_SIMULATE_MQTT_PASSWORD": "sim-secret-2",
           "SEMON_MQTT_URL": "mqtt://someone:url-secret-3@broker.example:1883"}
    listing = subprocess.run([sys.executable, "-m", "semon.cli", "config"], capture_output=True, text=True, env=env,
                             cwd=REPO, timeout=60)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert "mqtt_password: ***" in lines and "simulate_mqtt_password: ***" in lines
    assert "mqtt_url: mqtt://someone:***@broker.example:1883" in lines
    assert not any(secret in listing.stdout for secret in ("ingest-secret-1", "sim-secret-2", "url-secret-3"))
