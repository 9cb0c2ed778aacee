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

from semon.vocabulary import SEVERITIES, WEAR_DETECTORS


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


def _parse_non_negative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise ValueError("must be 0 or more")
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


def _parse_window_s(text: str) -> int:
    value = _int(text)
    if value < 60 or 86400 % value:
        raise ValueError("must be a whole number of seconds from 60 to 86400 that divides a day (86400)")
    return value


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


def _parse_choices(choices: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
        wrong = [i for i in items if i not in choices]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: each must be one of {', '.join(choices)} (comma-separated)")
        return items

    return parse


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]

    @property
    def secret(self) -> bool:
        """Whether the value is a secret that `semon config` and the logs must not show."""
        return self.name.endswith(("_password", "_secret_key"))


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", "postgresql://semon:semon@127.0.0.1:55432/semon",
            "PostgreSQL/TimescaleDB connection URL", _parse_url(("postgresql", "postgres"))),
    Setting("mqtt_url", "mqtt://127.0.0.1:11883", "MQTT broker URL; mqtts:// connects over TLS (docs/monitors.md)",
            _parse_url(("mqtt", "mqtts"))),
    Setting("mqtt_client_id", "semon-ingest",
            "fixed client id of the ingester, so its persistent session survives restarts", str),
    Setting("mqtt_shared_group", "",
            "shared-subscription group; empty subscribes to sem/v1/# directly", str),
    Setting("mqtt_session_expiry_s", 86400,
            "how long the broker keeps the ingester's session and queued messages", _parse_positive_int),
    # MQTT accounts and TLS (semon/monitors.py, docs/monitors.md): each process connects with its own account.
    Setting("mqtt_username", "", "the ingester's MQTT account; empty: the user in mqtt_url, if any", str),
    Setting("mqtt_password", "", "its password (give it as SEMON_MQTT_PASSWORD rather than in this file)", str),
    Setting("simulate_mqtt_username", "", "the MQTT account `semon simulate` publishes as; empty: the user in mqtt_url",
            str),
    Setting("simulate_mqtt_password", "", "its password (SEMON_SIMULATE_MQTT_PASSWORD)", str),
    Setting("mqtt_tls_ca_file", "", "CA certificate semon's clients check an mqtts:// broker against; empty: the "
            "system's CAs", str),
    Setting("mqtt_tls_cert_file", "", "client certificate semon's clients present, for a broker that requires one",
            str),
    Setting("mqtt_tls_key_file", "", "private key of mqtt_tls_cert_file", str),
    Setting("mosquitto_dir", "", "directory of the Mosquitto semon runs: semon writes its password file and ACL there "
            "and reloads it through mosquitto.pid; empty: $SEMON_VAR/mosquitto", str),
    Setting("mosquitto_tls_cert_file", "", "server certificate of that Mosquitto's listener when mqtt_url is mqtts://",
            str),
    Setting("mosquitto_tls_key_file", "", "private key of mosquitto_tls_cert_file", str),
    Setting("mosquitto_tls_client_ca_file", "", "when set, that listener also requires client certificates signed by "
            "this CA", str),
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
    Setting("rules_enabled", True, "whether the ingester derives faults from telemetry (docs/rules.md)", _parse_bool),
    Setting("rules_expiry_interval_s", 1.0,
            "how often running dwells are decided on the server's clock for monitors that went quiet",
            _parse_positive_float),
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
    # The fault rules on telemetry (models/rules/, docs/rules.md): every threshold and dwell is a setting, as field
    # terminals let each be tuned. Dwells are seconds on the monitor's clock.
    Setting("rule_clear_s", 60.0, "seconds a derived fault's condition must stay gone before the fault clears",
            _parse_non_negative_float),
    Setting("rule_transient_clear_s", 300.0,
            "the same for transient faults (overspeed, door open while moving), which stay open this long",
            _parse_non_negative_float),
    Setting("rule_slow_clear_s", 3600.0,
            "the same for flue gas temperature and water quality, which swing with the firing and are read slowly",
            _parse_non_negative_float),
    Setting("rule_repeat_dedup_s", 600.0,
            "a transient fault that recurs within this many seconds of clearing is a repeat of the same alert",
            _parse_non_negative_float),
    Setting("alert_reopen_within_s", 3600.0,
            "an alert whose (equipment, kind) recurs within this many seconds of its resolution is reopened rather "
            "than raised anew (docs/alert-handling.md)", _parse_non_negative_float),
    Setting("rule_silence_s", 180.0,
            "a dwell does not span a gap this long between samples (entrapment and stop outside the door zone do)",
            _parse_positive_float),
    Setting("rule_sample_gap_s", 30.0,
            "samples further apart than this are not compared with each other (floor jumps, escalator reversal)",
            _parse_positive_float),
    Setting("rule_moving_speed_mps", 0.05, "a car or escalator moves when its speed is above this (m/s)",
            _parse_non_negative_float),
    Setting("rule_entrapment_s", 30.0,
            "entrapment: an occupied car stopped between floors with its door closed for this many seconds",
            _parse_positive_float),
    Setting("rule_entrapment_at_floor_s", 90.0,
            "entrapment at a floor (in the door zone, or with no door zone reported): seconds", _parse_positive_float),
    Setting("rule_occupancy_debounce_s", 15.0,
            "occupied=false within this many seconds of the last occupied=true still counts as occupied (PIR flicker)",
            _parse_non_negative_float),
    Setting("rule_stop_outside_door_zone_s", 45.0, "stop_outside_door_zone: seconds stopped outside the door zone",
            _parse_positive_float),
    Setting("rule_door_open_moving_samples", 2,
            "door_open_while_moving: samples in a row that confirm it, unless the door lock circuit is open too",
            _parse_positive_int),
    Setting("rule_relevel_speed_mps", 0.3,
            "a car in the door zone may move this slowly with its door open (re-levelling, early opening), m/s",
            _parse_non_negative_float),
    Setting("rule_overspeed_ratio", 1.15, "overspeed: speed above this share of the registry's rated speed",
            _parse_positive_float),
    Setting("rule_door_lock_s", 3.0,
            "door_lock_circuit_open: seconds with the door closed and the car stopped (while it moves: at once)",
            _parse_non_negative_float),
    Setting("rule_door_open_too_long_s", 60.0, "door_open_too_long: seconds a stopped car's door stands open",
            _parse_positive_float),
    Setting("rule_door_reopen_count", 20, "repeated_door_reopen: door cycles without a run",
            _parse_positive_int),
    Setting("rule_door_close_failure_s", 15.0, "door_close_failure: seconds a door keeps closing",
            _parse_positive_float),
    Setting("rule_door_open_failure_s", 15.0,
            "door_open_failure: seconds a door keeps opening, or stays shut on a passenger at a landing",
            _parse_positive_float),
    Setting("rule_run_timeout_s", 45.0, "run_timeout: seconds a car moves without stopping",
            _parse_positive_float),
    Setting("rule_overtravel_s", 10.0, "overtravel_top/overtravel_bottom: seconds beyond a terminal landing",
            _parse_non_negative_float),
    Setting("rule_floor_lost_s", 10.0, "floor_position_lost: seconds a monitor that reports floors reports none",
            _parse_positive_float),
    Setting("rule_handrail_deviation_ratio", 0.15,
            "handrail_speed_deviation: share by which a handrail may differ from the step speed",
            _parse_positive_float),
    Setting("rule_handrail_deviation_s", 15.0, "handrail_speed_deviation: seconds the deviation lasts",
            _parse_positive_float),
    Setting("rule_brake_not_released_s", 5.0, "brake_not_released: seconds the escalator brake reads not OK",
            _parse_non_negative_float),
    Setting("rule_water_level_band_mm", 50.0, "low/high_water_level: mm below or above the normal water level",
            _parse_positive_float),
    Setting("rule_water_level_s", 3.0,
            "low/high_water_level: seconds beyond the band (at once when the feedwater flow confirms it)",
            _parse_non_negative_float),
    Setting("rule_overpressure_ratio", 1.0, "overpressure: pressure above this share of the registry's rated pressure",
            _parse_positive_float),
    Setting("rule_flame_failure_s", 5.0, "flame_failure: seconds a burner that had its flame fires on without it",
            _parse_non_negative_float),
    Setting("rule_ignition_s", 90.0,
            "flame_failure: seconds a burner called to fire may go without a flame (pre-purge and ignition)",
            _parse_positive_float),
    Setting("rule_flue_gas_max_c", 250.0, "high_flue_gas_temp: flue gas temperature limit, °C", _parse_positive_float),
    Setting("rule_flue_gas_s", 60.0, "high_flue_gas_temp: seconds above the limit", _parse_non_negative_float),
    Setting("rule_hardness_max_mmol_l", 0.03, "water_quality: feedwater hardness limit, mmol/L (GB/T 1576)",
            _parse_positive_float),
    Setting("rule_ph_min", 10.0, "water_quality: lowest boiler-water pH (GB/T 1576)", _parse_positive_float),
    Setting("rule_ph_max", 12.0, "water_quality: highest boiler-water pH (GB/T 1576)", _parse_positive_float),
    Setting("rule_water_quality_s", 120.0, "water_quality: seconds out of limits (the analysers are slow)",
            _parse_non_negative_float),
    Setting("web_host", "127.0.0.1", "address the web UI listens on", str),
    Setting("web_port", 8000, "port the web UI listens on", _parse_port),
    # Signing in to the web app (web/auth.py, docs/access.md).
    Setting("web_secret_key", "", "key that signs the web sessions; empty: one is made once and kept in the database, "
            "shared by every web worker", str),
    Setting("web_secure_cookies", False, "always mark the session cookie Secure (behind a proxy that terminates "
            "HTTPS); a request made over HTTPS gets it anyway", _parse_bool),
    Setting("web_session_idle_minutes", 30, "a web session idle this many minutes ends", _parse_positive_int),
    Setting("web_login_max_failures", 5, "failed logins for one username within web_login_window_minutes before "
            "more are refused", _parse_positive_int),
    Setting("web_login_max_failures_per_address", 20, "failed logins from one address within "
            "web_login_window_minutes before more are refused", _parse_positive_int),
    Setting("web_login_window_minutes", 15, "the window over which failed logins are counted", _parse_positive_int),
    Setting("log_level", "INFO", "logging level", _parse_choice(("DEBUG", "INFO", "WARNING", "ERROR"))),
    Setting("simulate_interval_s", 5.0, "seconds between telemetry messages of one simulated monitor",
            _parse_positive_float),
    Setting("simulate_seed", 7, "random seed of the simulated fleet", _int),
    # The telemetry rollup (models/rollup.py, docs/rollup.md): per-equipment windows of wear features.
    Setting("rollup_interval_s", 300.0, "how often the rollup job turns new telemetry into windows (docs/rollup.md)",
            _parse_positive_float),
    Setting("rollup_bucket_s", 3600, "width of a rollup window in seconds; it divides a day, and windows of a day "
            "start at midnight in time_zone", _parse_window_s),
    Setting("rollup_max_gap_s", 300.0,
            "samples further apart than this are a gap: the time between them is not covered and no counter step "
            "across it counts; at most rollup_bucket_s", _parse_positive_float),
    Setting("rollup_settle_s", 30.0,
            "the rollup takes rows whose storing transaction began at least this long ago (and no older one is open)",
            _parse_non_negative_float),
    # Risk ranking (models/risk.py, docs/risk.md): the scores at which an equipment is high and medium risk.
    Setting("risk_high_score", 50, "an equipment with at least this risk score is high risk (高风险) (docs/risk.md)",
            _parse_positive_int),
    Setting("risk_medium_score", 25,
            "an equipment with at least this risk score, and below risk_high_score, is medium risk (中风险)",
            _parse_positive_int),
    # Firm ratings (models/ratings.py, docs/ratings.md): 维保单位信用评价 per firm and month.
    Setting("rating_ack_minutes", 3, "an alert is answered in time when the firm responds within this many minutes "
            "of its first_seen (docs/ratings.md)", _parse_positive_int),
    Setting("rating_arrival_minutes", 30, "an entrapment is reached in time when a technician is on site within this "
            "many minutes of its first_seen", _parse_positive_int),
    Setting("rating_weights", "ack=25 arrival=30 alerts=15 maintenance=20 inspection=10",
            "the weight of each part of a firm's score", str),
    Setting("rating_alerts_per_100_zero", 50.0, "alerts per 100 units in a month at which that part of the score is 0",
            _parse_positive_float),
    Setting("rating_overdue_rate_zero", 0.2,
            "an overdue rate (超期未维保率, 超期未检率) at which its part of the score is 0", _parse_positive_float),
    Setting("rating_grades", "A=90 B=75 C=60", "the lowest score of grades A, B and C; below C is D", str),
    # The wear models (models/wear/, docs/wear.md): each equipment against its own normal, one model per type.
    Setting("wear_train_interval_s", 86400.0, "how often the wear models are trained on the stored windows "
            "(docs/wear.md)", _parse_positive_float),
    Setting("wear_score_interval_s", 300.0, "how often the wear models judge the windows the rollup completed",
            _parse_positive_float),
    Setting("wear_train_days", 30, "days of windows a wear model is trained on", _parse_positive_int),
    Setting("wear_baseline_days", 14, "an equipment's own normal: the median and spread of this many days before "
            "the period judged", _parse_positive_int),
    Setting("wear_min_history_days", 14, "equipment with less history than this many days is judged against its "
            "type's fleet normal", _parse_positive_int),
    Setting("wear_recent_hours", 24, "the period judged: each score reads this many hours of windows; at least "
            "rollup_bucket_s", _parse_positive_int),
    Setting("wear_trim_windows", 2, "each feature's rollup windows of most excess left out of a day or period judged, "
            "so that one hour's burst (a door held open at a landing) is no wear (docs/wear.md)",
            _parse_non_negative_int),
    Setting("wear_alert_windows", 6, "a wear alert opens after this many high scores in a row (one per window)",
            _parse_positive_int),
    Setting("wear_score_threshold", 1.0, "a score at least this is high; 1.0 is the threshold the model calibrated "
            "on its training days, more is stricter", _parse_positive_float),
    Setting("wear_detector", "fleet_zscore", "the fleet model: fleet_zscore, robust_covariance, isolation_forest "
            "or zscore (docs/wear.md)",
            _parse_choice(WEAR_DETECTORS)),
    # Delivery of the notifications outbox (alerts/delivery.py, docs/delivery.md).
    Setting("delivery_interval_s", 2.0, "how often the delivery job resolves, groups and sends notifications",
            _parse_positive_float),
    Setting("delivery_group_wait_s", 30.0, "new alerts that are not critical wait this long for others to the same "
            "contact, and go out together in one message", _parse_non_negative_float),
    Setting("delivery_group_interval_s", 300.0, "a contact gets at most one grouped (not critical) message this often",
            _parse_non_negative_float),
    Setting("delivery_max_attempts", 8, "tries of one message before it is marked failed (shown on the deliveries "
            "page)", _parse_positive_int),
    Setting("delivery_backoff_s", 15.0, "wait after the first failed try; each further one doubles it",
            _parse_positive_float),
    Setting("delivery_backoff_max_s", 1800.0, "the longest wait between tries", _parse_positive_float),
    Setting("delivery_lease_s", 120.0, "a sender's claim on a message lapses after this long, so that a crashed "
            "sender's messages are sent by another", _parse_positive_float),
    Setting("delivery_timeout_s", 10.0, "seconds a channel may take to answer one send", _parse_positive_float),
    Setting("delivery_batch_size", 200, "most messages claimed at once; fewer when delivery_workers could not send "
            "them within delivery_lease_s", _parse_positive_int),
    Setting("delivery_workers", 8, "messages sent at the same time by one delivery job", _parse_positive_int),
    Setting("delivery_robot_per_minute", 20, "most messages per minute to one DingTalk or WeCom robot; more are "
            "combined into one message", _parse_positive_int),
    Setting("web_public_url", "http://127.0.0.1:8000", "the web app's address as the receivers of alerts reach it: "
            "messages link to <this>/alerts/<id>", _parse_url(("http", "https"))),
    Setting("smtp_host", "", "SMTP server of the e-mail channel; empty: no e-mail is sent (it waits and is retried)",
            str),
    Setting("smtp_port", 587, "its port", _parse_port),
    Setting("smtp_security", "starttls", "starttls, tls (implicit TLS, port 465) or none (a local relay only)",
            _parse_choice(("starttls", "tls", "none"))),
    Setting("smtp_username", "", "SMTP account; empty: no login", str),
    Setting("smtp_password", "", "its password (SEMON_SMTP_PASSWORD)", str),
    Setting("smtp_from", "semon@localhost", "From address of alert e-mails", str),
    Setting("smtp_tls_ca_file", "", "CA certificate the SMTP server's is checked against; empty: the system's CAs",
            str),
    Setting("sms_gateway_url", "", "URL of the SMS gateway's adapter (docs/delivery.md); empty: no SMS is sent",
            lambda text: text and _parse_url(("http", "https"))(text)),
    Setting("sms_gateway_secret_key", "", "key that signs requests to the SMS gateway (SEMON_SMS_GATEWAY_SECRET_KEY)",
            str),
    # Reminders of unacknowledged alerts (alerts/reminders.py, docs/escalation.md).
    Setting("alert_reminder_interval_s", 600.0, "an alert nobody has acknowledged is told again this often, whether "
            "or not new data arrives (docs/escalation.md)", _parse_positive_float),
    Setting("alert_reminder_severities", ("critical", "high"), "the severities whose unacknowledged alerts are "
            "reminded, comma-separated; empty: none", _parse_choices(SEVERITIES)),
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
    tls: bool = False


def mqtt_address(url: str) -> MqttAddress:
    """Host, port, user and password of an mqtt[s]://[user[:password]@]host[:port] URL (mqtts: over TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"not an mqtt://host:port or mqtts://host:port URL: {url}")
    tls = parts.scheme == "mqtts"
    return MqttAddress(parts.hostname, parts.port or (8883 if tls else 1883),
                       unquote(parts.username) if parts.username else None,
                       unquote(parts.password) if parts.password else None, tls)
