"""Settings: one table, every entry in config.yaml and the docs, strict parsing, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from semon.config import SETTINGS, ConfigError, env_name, load_config

REPO = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_config_yaml_and_the_docs():
    in_yaml = yaml.safe_load((REPO / "config.yaml").read_text())
    docs = (REPO / "docs" / "configuration.md").read_text()
    for setting in SETTINGS:
        assert setting.name in in_yaml, f"{setting.name} missing from config.yaml"
        assert f"`{setting.name}`" in docs and env_name(setting.name) in docs, f"{setting.name} not documented"
    assert set(in_yaml) == {s.name for s in SETTINGS}


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("web_port: 8001\n")
    config = load_config(path, environ={"SEMON_WEB_PORT": "9000", "SEMON_MQTT_URL": "mqtt://broker:1883"})
    assert config.web_port == 9000 and config.mqtt_url == "mqtt://broker:1883"


@pytest.mark.parametrize(("text", "environ", "message"), [
    ("web_port: 99999\n", {}, "web_port = 99999: must be a port number between 1 and 65535"),
    ("colour: blue\n", {}, "unknown setting 'colour'"),
    ("", {"SEMON_DATABASE_URL": "mysql://x"}, "environment SEMON_DATABASE_URL: database_url = 'mysql://x'"),
    ("ingest_batch_size: lots\n", {}, "ingest_batch_size = 'lots'"),
    ("- a list\n", {}, "expected a mapping"),
])
def test_a_bad_value_says_what_and_where(tmp_path, text, environ, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as failure:
        load_config(path, environ=environ)
    assert message in str(failure.value)


def test_the_cli_prints_one_line_and_exits_non_zero_on_a_bad_setting(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("web_port: zero\n")
    result = subprocess.run([sys.executable, "-m", "semon.cli", "--config", str(path), "migrate"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"semon: {path}: web_port = 'zero': expected a whole number"]


def test_the_cli_says_when_the_database_is_unreachable(tmp_path):
    result = subprocess.run([sys.executable, "-m", "semon.cli", "migrate"], capture_output=True, text=True,
                            timeout=60, env={"SEMON_DATABASE_URL": "postgresql://semon:x@127.0.0.1:9/semon",
                                             "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("semon: cannot connect to the database at postgresql://semon:***@127.0.0.1:9/semon")
