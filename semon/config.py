"""Settings: one table of names, defaults and help; config.yaml overrides defaults, SEMON_* overrides both."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml


class ConfigError(Exception):
    """A setting is missing, unknown or has a value that cannot be used."""


def _parse_bool(text: str) -> bool:
    # Strict like healthchecks' envbool: "yes", "1" or "on" are typos waiting to happen.
    if text in ("true", "false"):
        return text == "true"
    raise ValueError("expected true or false")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("expected a number") from None


def _parse_positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _parse_positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise ValueError("must be a whole number greater than 0")
    return value


def _parse_non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


def _parse_port(text: str) -> int:
    value = _int(text)
    if not 0 < value < 65536:
        raise ValueError("must be a port number between 1 and 65535")
    return value


def _parse_port_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _parse_port(text)


def _parse_url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        scheme = text.split("://", 1)[0] if "://" in text else ""
        if scheme not in schemes:
            raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
        return text

    return parse


def _parse_time_zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not an IANA time zone (such as Asia/Shanghai)") from None
    return text


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", "postgresql://semon:semon@127.0.0.1:55432/semon",
            "PostgreSQL/TimescaleDB connection URL", _parse_url(("postgresql", "postgres"))),
    Setting("mqtt_url", "mqtt://127.0.0.1:11883", "MQTT broker URL", _parse_url(("mqtt",))),
    Setting("mqtt_client_id", "semon-ingest",
            "fixed client id of the ingester, so its persistent session survives restarts", str),
    Setting("mqtt_shared_group", "",
            "shared-subscription group; empty subscribes to sem/v1/# directly", str),
    Setting("mqtt_session_expiry_s", 86400,
            "how long the broker keeps the ingester's session and queued messages", _parse_positive_int),
    Setting("ingest_batch_size", 2000, "most messages written in one transaction", _parse_positive_int),
    # 50 ms: p99 publish-to-commit 116 ms at 2,000 msg/s against 334 ms with 200 ms (bench/RESULTS.md); a
    # backlog fills batches without waiting, so draining does not slow down.
    Setting("ingest_batch_ms", 50, "longest wait before a partial batch is written", _parse_positive_int),
    Setting("ingest_buffer_size", 20000,
            "most unacknowledged messages the broker may send the ingester (MQTT 5 receive maximum, <= 65535)",
            _parse_positive_int),
    Setting("ingest_metrics_port", 9108, "port of the ingester's Prometheus /metrics on 127.0.0.1; 0 turns it off",
            _parse_port_or_zero),
    Setting("ingest_retry_max_s", 30.0, "longest back-off between database retries", _parse_positive_float),
    Setting("heartbeat_interval_s", 60.0, "interval at which monitors report", _parse_positive_float),
    Setting("offline_after_missed_heartbeats", 3,
            "equipment is offline after this many missed heartbeats", _parse_positive_int),
    # The users' day: a due date falls at their midnight, not the server's (UTC would judge 00:00-08:00 a day late).
    Setting("time_zone", "Asia/Shanghai",
            "IANA time zone of the users: it decides 'today' for due dates and figures, and times are shown in it",
            _parse_time_zone),
    Setting("scheduler_interval_s", 10.0, "how often the rule jobs run", _parse_positive_float),
    Setting("compliance_interval_s", 60.0, "how often the compliance scan (overdue alerts, reminders) runs",
            _parse_positive_float),
    Setting("inspection_interval_months", 12,
            "periodic inspection interval of elevators and escalators (TSG T7001: yearly)", _parse_positive_int),
    # The compliance rules (models/compliance.py, docs/compliance.md): every interval is a setting.
    Setting("compliance_due_soon_days", 30, "a check falls due soon this many days before its due date",
            _parse_positive_int),
    Setting("compliance_registration_grace_days", 30,
            "days after an equipment is registered during which its checks never recorded open no overdue alert "
            "(their records are being imported); 0 turns the grace off", _parse_non_negative_int),
    Setting("compliance_rectification_days", 30,
            "days to rectify after a failed inspection or visit before the check counts as overdue",
            _parse_positive_int),
    Setting("maintenance_due_soon_days", 3,
            "maintenance falls due soon this many days before (a 15-day cycle would always be within 30)",
            _parse_positive_int),
    Setting("maintenance_interval_days", 15, "elevator and escalator maintenance interval (TSG T5002: 15 days)",
            _parse_positive_int),
    Setting("governor_calibration_months", 24, "overspeed-governor calibration interval (TSG T7001 2.9)",
            _parse_positive_int),
    Setting("governor_calibration_old_months", 12, "governor calibration interval once the governor is old",
            _parse_positive_int),
    Setting("governor_old_after_years", 15, "a governor is old after this many years", _parse_positive_int),
    Setting("rescue_drill_months", 6, "emergency rescue drill interval (TSG T5002)", _parse_positive_int),
    Setting("boiler_external_inspection_months", 12, "boiler external inspection interval (TSG 11-2020)",
            _parse_positive_int),
    Setting("boiler_internal_inspection_months", 24, "boiler internal inspection interval (TSG 11-2020)",
            _parse_positive_int),
    Setting("boiler_internal_first_months", 12, "first boiler internal inspection, months after commissioning",
            _parse_positive_int),
    Setting("water_quality_test_months", 3, "boiler water-quality test interval", _parse_positive_int),
    Setting("pressure_vessel_first_inspection_months", 36,
            "first pressure-vessel periodic inspection, months after commissioning (TSG 21-2016)",
            _parse_positive_int),
    Setting("pressure_vessel_inspection_months", 72,
            "pressure-vessel periodic inspection interval, safety grades 1-2 (TSG 21-2016)", _parse_positive_int),
    Setting("pressure_vessel_grade3_inspection_months", 36,
            "pressure-vessel periodic inspection interval, safety grade 3 and worse", _parse_positive_int),
    Setting("safety_valve_calibration_months", 12, "safety valve calibration interval (boilers, pressure vessels)",
            _parse_positive_int),
    Setting("pressure_gauge_verification_months", 6,
            "pressure gauge verification interval (boilers, pressure vessels)", _parse_positive_int),
    Setting("web_host", "127.0.0.1", "address the web UI listens on", str),
    Setting("web_port", 8000, "port the web UI listens on", _parse_port),
    Setting("log_level", "INFO", "logging level", _parse_choice(("DEBUG", "INFO", "WARNING", "ERROR"))),
    Setting("simulate_interval_s", 5.0, "seconds between telemetry messages of one simulated monitor",
            _parse_positive_float),
    Setting("simulate_seed", 7, "random seed of the simulated fleet", _int),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
ENV_PREFIX = "SEMON_"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"


class Config(Mapping[str, Any]):
    """Read-only settings, addressed as config["name"] or config.name."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (values are used as given)."""
        unknown = set(changes) - set(SETTINGS_BY_NAME)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return Config({**self._values, **changes})


def _coerce(setting: Setting, raw: Any, where: str) -> Any:
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {setting.name} = {raw!r}: {exc}") from None


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Defaults, then config.yaml (or SEMON_CONFIG / path), then SEMON_* environment variables."""
    environ = os.environ if environ is None else environ
    config_path = Path(path or environ.get("SEMON_CONFIG") or DEFAULT_CONFIG_PATH)
    values = {s.name: s.default for s in SETTINGS}
    if config_path.exists():
        try:
            data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{config_path}: expected a mapping of setting names to values")
        for name, raw in data.items():
            if name not in SETTINGS_BY_NAME:
                raise ConfigError(f"{config_path}: unknown setting {name!r}")
            values[name] = _coerce(SETTINGS_BY_NAME[name], raw, str(config_path))
    elif path is not None:
        raise ConfigError(f"{config_path}: config file not found")
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "SEMON_CONFIG":
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in SETTINGS_BY_NAME:
            values[name] = _coerce(SETTINGS_BY_NAME[name], raw, f"environment {key}")
    return Config(values)


def env_name(name: str) -> str:
    """The environment variable that overrides a setting."""
    return ENV_PREFIX + name.upper()


@dataclass(frozen=True)
class MqttAddress:
    host: str
    port: int
    username: str | None
    password: str | None


def mqtt_address(url: str) -> MqttAddress:
    """Host, port, user and password of an mqtt://[user[:password]@]host[:port] URL."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ConfigError(f"not an mqtt://host:port URL: {url}")
    return MqttAddress(parts.hostname, parts.port or 1883, unquote(parts.username) if parts.username else None,
                       unquote(parts.password) if parts.password else None)
