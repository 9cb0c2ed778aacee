"""Fixtures: a real Mosquitto on a free port and a fresh database on the real TimescaleDB server."""

from __future__ import annotations

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

from semon.clock import session_options
from semon.config import Config, load_config
from semon.db import create_database, drop_database
from semon.migrate import migrate

REPO = Path(__file__).resolve().parent.parent
# Reference data that migrations seed; everything else is emptied between tests.
KEEP_TABLES = {"fault_codes", "schema_migrations"}
# Seeded by migrations too, but tests change them: emptied and seeded again as the migrations left them.
RESEEDED_TABLES = ("alert_routes",)


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
    """A private Mosquitto started with the project's own config template."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        from bench.services import write_mosquitto_conf

        write_mosquitto_conf(self.directory, self.port)
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.directory / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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
    yield server
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
    return base_config.replace(database_url=db_url, mqtt_url=broker.url,
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
    """A test client of the web app."""
    return app.test_client()
