"""How semon's own MQTT clients reach the broker (account and TLS), and a local CA for trying TLS (docs/monitors.md)."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paho.mqtt.client as mqtt

from semon.config import Config, ConfigError, mqtt_address

Role = Literal["ingester", "simulator"]


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and as whom one of semon's clients connects; picklable, so simulator shards get it as it is."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def describe(self) -> str:
        """For logs: the broker and the account, never the password."""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port} as {self.username or 'anonymous'}"

    def configure(self, client: mqtt.Client) -> None:
        """Give a paho client this endpoint's account and, for mqtts://, its TLS settings."""
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            # ca_certs None: the system's CAs, as for any public broker.
            client.tls_set(ca_certs=self.ca_file, certfile=self.cert_file, keyfile=self.key_file)


def endpoint_from_url(url: str, *, username: str = "", password: str = "", ca_file: str = "", cert_file: str = "",
                      key_file: str = "") -> MqttEndpoint:
    """The endpoint of an mqtt[s]:// URL; a username given here wins over one in the URL."""
    address = mqtt_address(url)
    if username:
        user, secret = username, password
    else:
        user, secret = address.username, address.password
    if (cert_file or key_file) and not (cert_file and key_file):
        raise ConfigError("mqtt_tls_cert_file and mqtt_tls_key_file go together: set both or neither")
    for name, path in (("mqtt_tls_ca_file", ca_file), ("mqtt_tls_cert_file", cert_file),
                       ("mqtt_tls_key_file", key_file)):
        if address.tls and path and not Path(path).is_file():
            raise ConfigError(f"{name}: no such file {path}")
    return MqttEndpoint(address.host, address.port, user or None, secret or None, address.tls, ca_file or None,
                        cert_file or None, key_file or None)


def endpoint(config: Config, role: Role) -> MqttEndpoint:
    """The endpoint the ingester or the simulator connects to, with that role's own account."""
    prefix = "" if role == "ingester" else "simulate_"
    return endpoint_from_url(config.mqtt_url, username=config[f"{prefix}mqtt_username"],
                             password=config[f"{prefix}mqtt_password"], ca_file=config.mqtt_tls_ca_file,
                             cert_file=config.mqtt_tls_cert_file, key_file=config.mqtt_tls_key_file)


# --- a local CA, for trying TLS ------------------------------------------------------------------------------------

CA_DAYS = 3650
CERT_DAYS = 825  # the longest validity clients accept for a leaf certificate


@dataclass(frozen=True)
class LocalCa:
    """The files make_local_ca writes."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"


def make_local_ca(directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> LocalCa:
    """Write a new CA and a server and a client certificate it signed into `directory` (openssl; keys 0600)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError("openssl is not installed: install the openssl package to make certificates")
    ca = LocalCa(directory)
    if ca.ca_cert.exists():
        raise ConfigError(f"{ca.ca_cert} exists: choose an empty directory rather than replace a CA in use")
    directory.mkdir(parents=True, exist_ok=True)
    names = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)

    def run(*args: str | Path) -> None:
        done = subprocess.run([openssl, *map(str, args)], capture_output=True, text=True)
        if done.returncode:
            raise ConfigError(f"openssl {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")

    key_options = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *key_options, "-keyout", directory / "ca.key", "-out", ca.ca_cert, "-days", str(CA_DAYS),
        "-subj", "/O=semon/CN=semon local CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with tempfile.TemporaryDirectory() as tmp:
        for name, usage, subject in (("server", "serverAuth", hosts[0]), ("client", "clientAuth", "semon client")):
            extensions = Path(tmp) / f"{name}.ext"
            extensions.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                  f"extendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\n"
                                  "authorityKeyIdentifier=keyid\n" + (f"subjectAltName={names}\n" if name == "server"
                                                                      else ""))
            request = Path(tmp) / f"{name}.csr"
            run("req", *key_options, "-keyout", directory / f"{name}.key", "-out", request,
                "-subj", f"/O=semon/CN={subject}")
            run("x509", "-req", "-in", request, "-CA", ca.ca_cert, "-CAkey", directory / "ca.key",
                "-CAcreateserial", "-out", directory / f"{name}.crt", "-days", str(CERT_DAYS),
                "-extfile", extensions)
    for key in directory.glob("*.key"):
        key.chmod(0o600)
    return ca


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
