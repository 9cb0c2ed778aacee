"""Fixtures: a real Mosquitto on a free port and a fresh database on the real TimescaleDB server."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg.rows import dict_row

from bench.services import BrokerTls
from semon.clock import session_options
from semon.config import Config, load_config
from semon.db import DatabaseUnavailable, create_database, drop_database
from semon.migrate import migrate
from tests.mqtt_helpers import INGESTER, SIMULATOR

REPO = Path(__file__).resolve().parent.parent
# Reference data that migrations seed; everything else is emptied between tests.
KEEP_TABLES = {"fault_codes", "schema_migrations"}
# Seeded by migrations too, but tests change them: emptied and seeded again as the migrations left them.
RESEEDED_TABLES = ("alert_routes", "escalation_chains", "escalation_stages", "escalation_recipients",
                   "inhibition_rules")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@dataclass
class Broker:
    """A private Mosquitto started with the project's own config template: authentication on, no anonymous clients,
    an ingester's and a simulator's account (tests/mqtt_helpers.py); `managed`: its accounts are semon's to write
    (`semon monitors`), so starting it writes none. Its pid is in mosquitto.pid, where `semon monitors` looks."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    tls: BrokerTls | None = None
    managed: bool = False

    @property
    def address(self) -> str:
        """The URL without an account."""
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL with the simulator's account: it may publish as any monitor, as the tests' publishers do."""
        username, password = SIMULATOR
        return self.address.replace("://", f"://{username}:{password}@", 1)

    def settings(self) -> dict[str, str]:
        """The ingester's account, as settings."""
        return {"mqtt_username": INGESTER[0], "mqtt_password": INGESTER[1]}

    def start(self) -> None:
        from bench.services import BrokerAccount, write_mosquitto_conf, write_service_accounts

        write_mosquitto_conf(self.directory, self.port, tls=self.tls)
        if not self.managed:
            write_service_accounts(self.directory, BrokerAccount(*INGESTER), BrokerAccount(*SIMULATOR))
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.directory / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (self.directory / "mosquitto.pid").write_text(f"{self.process.pid}\n")

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=10, message=f"mosquitto on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[Broker]:
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed: run the tests with `make test`, which installs it")
    server = Broker(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    # `semon ingest` run as a process by a test finds its account where a deployment's would be: the environment.
    saved = {name: os.environ.get(name) for name in ("SEMON_MQTT_USERNAME", "SEMON_MQTT_PASSWORD")}
    os.environ.update(SEMON_MQTT_USERNAME=INGESTER[0], SEMON_MQTT_PASSWORD=INGESTER[1])
    yield server
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


@pytest.fixture(scope="session")
def base_config() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def db_url(base_config: Config) -> Iterator[str]:
    """A fresh, migrated database on the configured server, dropped at the end of the session."""
    name = f"semon_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        url = create_database(base_config.database_url, name)
    except Exception as exc:  # noqa: BLE001 - any failure here means no server to test against
        pytest.fail(f"no TimescaleDB to test against ({exc}); run the tests with `make test`")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in RESEEDED_TABLES:
            conn.execute(f"CREATE TABLE seed_{table} AS SELECT * FROM {table}")
    yield url
    drop_database(base_config.database_url, name)


@pytest.fixture
def db(db_url: str, base_config: Config) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database, emptied of everything but reference data; its session runs
    in the users' time zone, as semon's own do (current_date is their day)."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row,
                         options=session_options(base_config.time_zone)) as conn:
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if r["tablename"] not in KEEP_TABLES and not r["tablename"].startswith("seed_")]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE")
        for table in RESEEDED_TABLES:
            conn.execute(f"INSERT INTO {table} SELECT * FROM seed_{table}")
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
        yield conn


@pytest.fixture
def config(base_config: Config, db_url: str, broker: Broker, db) -> Config:
    """Settings pointing at the test database and broker, with fast loops for tests."""
    return base_config.replace(database_url=db_url, mqtt_url=broker.url, **broker.settings(),
                               mqtt_client_id=f"semon-test-{secrets.token_hex(4)}",
                               ingest_batch_ms=50, ingest_metrics_port=0, scheduler_interval_s=0.5,
                               compliance_interval_s=0.5)


def register_equipment(conn: psycopg.Connection, code: str, equipment_type: str = "elevator", *,
                       district: str = "Xuhui District", firm: str | None = "Shenghui Elevator Service",
                       use_unit: str | None = None, status: str = "in_use",
                       install_date: str | date | None = "2015-06-01", **columns: Any) -> int:
    """Insert one equipment with its district, firm and use unit (created when new) and return its id; any other
    equipment column can be given by name (address, safety_grade, rated_pressure_mpa, ...)."""
    district_id = conn.execute("INSERT INTO districts (name) VALUES (%s) ON CONFLICT (name) DO UPDATE "
                               "SET name = EXCLUDED.name RETURNING id", (district,)).fetchone()["id"]
    firm_id = use_unit_id = None
    if firm is not None:
        firm_id = conn.execute("INSERT INTO maintenance_firms (name, phone) VALUES (%s, '021-5555') "
                               "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                               (firm,)).fetchone()["id"]
    if use_unit is not None:
        use_unit_id = conn.execute("INSERT INTO use_units (name) VALUES (%s) ON CONFLICT (name) DO UPDATE "
                                   "SET name = EXCLUDED.name RETURNING id", (use_unit,)).fetchone()["id"]
    values = {"code": code, "type": equipment_type, "district_id": district_id, "firm_id": firm_id,
              "use_unit": use_unit or "", "use_unit_id": use_unit_id, "status": status, "install_date": install_date,
              "rated_speed_mps": 1.75 if equipment_type == "elevator" else None,
              "floors": 18 if equipment_type == "elevator" else None} | columns
    return conn.execute(f"INSERT INTO equipment ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})"
                        " RETURNING id", list(values.values())).fetchone()["id"]


# --- the web app and its users (docs/access.md) ---------------------------------------------------------------------
# Every test client, of any app, is signed in as an administrator unless made with user=... (another user) or
# user=None (nobody): anonymous(app), signed_in(app, username).

ADMIN_USERNAME = "test-admin"
TEST_PASSWORD = "correct horse battery"  # every test user's password


@functools.cache
def test_password_hash() -> str:
    """TEST_PASSWORD as kept (scrypt is slow on purpose: hashed once per session)."""
    from werkzeug.security import generate_password_hash

    return generate_password_hash(TEST_PASSWORD, method="scrypt")


def add_user(conn: psycopg.Connection, username: str, role: str = "admin", *, firm: str | None = None,
             use_unit: str | None = None, districts: tuple[str, ...] = (), all_districts: bool = False,
             disabled: bool = False) -> int:
    """Insert a user with TEST_PASSWORD, its firm, use unit or districts named (registered already); returns its
    id."""
    def id_of(table: str, name: str | None) -> int | None:
        if name is None:
            return None
        return conn.execute(f"SELECT id FROM {table} WHERE name = %s", (name,)).fetchone()["id"]

    with conn.cursor(row_factory=dict_row) as cur:
        user_id = cur.execute(
            "INSERT INTO users (username, role, password_hash, firm_id, use_unit_id, all_districts, disabled)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (username, role, test_password_hash(), id_of("maintenance_firms", firm), id_of("use_units", use_unit),
             all_districts, disabled)).fetchone()["id"]
        for district in districts:
            cur.execute("INSERT INTO user_districts (user_id, district_id) VALUES (%s, %s)",
                        (user_id, id_of("districts", district)))
    return user_id


def sign_in(client: FlaskClient, username: str) -> str:
    """Sign `client` in as `username` (made if it is ADMIN_USERNAME and missing), as logging in would: a session
    for the pages and a fresh API token for the API; returns the token."""
    from web.auth import SEEN, ensure_secret_key

    app = client.application
    with app.app_context():
        ensure_secret_key(app)
    with psycopg.connect(app.config["SEMON"].database_url, autocommit=True, row_factory=dict_row) as conn:
        user = conn.execute("SELECT id, session_generation FROM users WHERE username = %s", (username,)).fetchone()
        if user is None and username == ADMIN_USERNAME:
            add_user(conn, ADMIN_USERNAME)
            user = conn.execute("SELECT id, session_generation FROM users WHERE username = %s",
                                (username,)).fetchone()
        assert user is not None, f"no user {username!r} to sign in as"
        token = api_token(conn, username)
    with client.session_transaction() as session:
        session["_user_id"] = f"{user['id']}:{user['session_generation']}"
        session["_fresh"] = True
        session[SEEN] = time.time()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return token


def api_token(conn: psycopg.Connection, username: str) -> str | None:
    """A new API token of `username`, None while there is no such user (a demo still starting)."""
    from semon.users import TOKEN_PREFIX, token_digest

    user = conn.execute("SELECT id FROM users WHERE username = %s", (username,)).fetchone()
    if user is None:
        return None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute("INSERT INTO api_tokens (user_id, name, token_sha256) VALUES (%s, 'test', %s)",
                 (user["id"], token_digest(token)))
    return token


class SignedInClient(FlaskClient):
    """Flask's test client, signed in as `user` (default: an administrator); user=None signs in nobody. With the
    database unreachable it stays signed out (the app answers 503 before asking who is there)."""

    def __init__(self, *args: Any, user: str | None = ADMIN_USERNAME, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if user is None:
            return
        with contextlib.suppress(psycopg.OperationalError, DatabaseUnavailable):
            sign_in(self, user)


# Set on Flask itself so that the apps tests build with create_app are signed in too.
Flask.test_client_class = SignedInClient


def anonymous(app: Flask) -> FlaskClient:
    """A client of `app` signed in as nobody."""
    return app.test_client(user=None)


def signed_in(app: Flask, username: str) -> FlaskClient:
    """A client of `app` signed in as `username`."""
    return app.test_client(user=username)


@pytest.fixture
def app(base_config: Config, db_url: str, db: psycopg.Connection) -> Iterator[Flask]:
    """The web app on the test database."""
    from web import create_app
    from web.db import close_pool

    app = create_app(base_config.replace(database_url=db_url))
    app.testing = True
    yield app
    close_pool(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the web app, signed in as an administrator (the session for pages, a token for the API)."""
    return app.test_client()


@pytest.fixture
def ingester(config: Config) -> Iterator[Any]:
    """The ingester (ingest/service.py) running in this process on the test database and broker."""
    from ingest.service import Ingester

    running = Ingester(config)
    running.start()
    assert running.wait_connected(10), "ingester did not connect to the broker"
    yield running
    running.stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Any]:
    """A publisher on the test broker with the simulators' account (tests/mqtt_helpers.py)."""
    from tests.mqtt_helpers import Publisher

    pub = Publisher(broker.url)
    yield pub
    pub.close()
