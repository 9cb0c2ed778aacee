"""The processes the benchmark runs and watches: a private Mosquitto and the ingester (`semon ingest`)."""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def peak_rss_kb(pid: int) -> int:
    """The kernel's high-water mark of the process's resident memory (VmHWM), 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class BrokerTls:
    """A broker's TLS listener: its certificate and key, and the CA of the client certificates it requires, if any."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class BrokerAccount:
    """A service account of a private broker (docs/monitors.md)."""

    username: str
    password: str


def write_mosquitto_conf(directory: Path, port: int, *, tls: BrokerTls | None = None,
                         anonymous: bool = False) -> Path:
    """Render the project's scripts/mosquitto.conf.in for a private broker on `port` keeping its data in
    `directory`; returns the config file's path (the tests' brokers use it too). Its password file and ACL are
    created empty if missing: `semon monitors` or write_broker_files fill them."""
    template = (REPO / "scripts" / "mosquitto.conf.in").read_text()
    values = {"@PORT@": str(port), "@DIR@": str(directory), "@USER@": getpass.getuser(),
              "@TLS@": "" if tls else "#", "@TLS_CERT@": str(tls.cert_file) if tls else "",
              "@TLS_KEY@": str(tls.key_file) if tls else "",
              "@CLIENT_CA@": "" if tls and tls.client_ca_file else "#",
              "@CLIENT_CA_FILE@": str(tls.client_ca_file) if tls and tls.client_ca_file else "",
              "@ANONYMOUS@": "true" if anonymous else "false"}
    for name, value in values.items():
        template = template.replace(name, value)
    conf = directory / "mosquitto.conf"
    conf.write_text(template)
    from semon.monitors import ACL_FILE, PASSWORD_FILE

    for name in (PASSWORD_FILE, ACL_FILE):
        if not (directory / name).exists():
            (directory / name).touch(mode=0o600)
    return conf


def write_service_accounts(directory: Path, ingester: BrokerAccount, simulator: BrokerAccount, *,
                           anonymous: bool = False) -> None:
    """Give a private broker an ingester's and a simulator's account (no monitors); with `anonymous`, clients without
    an account may do what both may (the benchmarks' raw load generators have none)."""
    from semon.monitors import Account, acl_topics, hash_password, write_broker_files

    accounts = [Account(ingester.username, "ingester", hash_password(ingester.password)),
                Account(simulator.username, "simulator", hash_password(simulator.password))]
    write_broker_files(directory, accounts,
                       anonymous=[pair for a in accounts for pair in acl_topics(a)] if anonymous else ())


class PrivateBroker:
    """Mosquitto with the project's own config (scripts/mosquitto.conf.in) on a free port in a temp dir.

    Authentication is on, with an ingester's and a simulator's account (`settings` gives them to semon's processes),
    but anonymous clients are let in with the same rights: the benchmarks' own load generators speak raw MQTT
    without an account, and what is measured is the broker's work per message, ACL checks included."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.ingester = BrokerAccount("semon-ingest", secrets.token_urlsafe(24))
        self.simulator = BrokerAccount("semon-simulator", secrets.token_urlsafe(24))

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """SEMON_* variables giving semon's ingester and simulator their accounts."""
        return {"SEMON_MQTT_USERNAME": self.ingester.username, "SEMON_MQTT_PASSWORD": self.ingester.password,
                "SEMON_SIMULATE_MQTT_USERNAME": self.simulator.username,
                "SEMON_SIMULATE_MQTT_PASSWORD": self.simulator.password}

    def start(self) -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed: run the benchmark with `make bench`, which installs it")
        write_mosquitto_conf(self.directory, self.port, anonymous=True)
        write_service_accounts(self.directory, self.ingester, self.simulator, anonymous=True)
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.directory / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start; its log:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.directory / "mosquitto.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class IngestCounters:
    """One scrape of the ingester's Prometheus metrics."""

    at: float = 0.0
    received: float = 0.0
    stored: float = 0.0
    duplicates: float = 0.0
    dead_lettered: float = 0.0
    buffer_depth: float = 0.0
    database_retries: float = 0.0


_METRICS = {
    "semon_ingest_received_total": "received",
    "semon_ingest_stored_total": "stored",
    "semon_ingest_duplicates_total": "duplicates",
    "semon_ingest_dead_lettered_total": "dead_lettered",
    "semon_ingest_buffer_depth": "buffer_depth",
    "semon_ingest_database_retries_total": "database_retries",
}


class IngesterProcess:
    """`python -m semon.cli ingest` in a child process, configured with SEMON_* variables.

    The deployed entry point, not a re-creation of it: what is measured is what runs. Its own process also
    keeps it from sharing a GIL with the load generator, and gives it a peak RSS of its own. The benchmark
    watches it through its Prometheus endpoint and its log.
    """

    def __init__(self, settings: dict[str, str],
                 command: tuple[str, ...] = (sys.executable, "-m", "semon.cli", "ingest")):
        self.command = command
        self.metrics_port = free_port()
        self.env = {**os.environ, **settings, "SEMON_INGEST_METRICS_PORT": str(self.metrics_port),
                    "SEMON_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen[str] | None = None
        self.connected = threading.Event()
        self.connected_at = 0.0
        self.log: deque[str] = deque(maxlen=200)
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(list(self.command), env=self.env, cwd=REPO,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read_log, name="ingester-log", daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            line = line.rstrip()
            self.log.append(line)
            if not self.connected.is_set() and "ingest.service: connected to" in line:
                # Stamped on arrival: the broker starts sending the queued session right after CONNACK.
                self.connected_at = time.time()
                self.connected.set()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                print(f"    ingester: {line}", flush=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def counters(self) -> IngestCounters:
        """Scrape /metrics once."""
        counters = IngestCounters(at=time.time())
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            attribute = _METRICS.get(name_labels.split("{", 1)[0])
            if attribute is not None:  # labelled series (dead letters by reason) are summed
                setattr(counters, attribute, getattr(counters, attribute) + float(value))
        return counters

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM (the graceful stop: flush, commit, acknowledge), SIGKILL if it hangs; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                print(f"    ingester did not stop within {timeout_s:.0f} s of SIGTERM; killing it", flush=True)
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.process.returncode
