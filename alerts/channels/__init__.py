"""The delivery channels behind one interface (docs/delivery.md): each module sends one rendered message to one
address and says how it went — sent, or a SendError that tells the dispatcher whether to retry, give up, or (for a
channel that is not idempotent) stop and ask a person to check."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from semon.config import Config

CHANNELS = ("webhook", "email", "dingtalk", "wecom", "sms", "mqtt")
# Robots of group chats throttle each robot; their messages are counted per address (delivery_robot_per_minute).
RATE_LIMITED = ("dingtalk", "wecom")
IDEMPOTENCY_HEADER = "X-Semon-Idempotency-Key"
TIMESTAMP_HEADER = "X-Semon-Timestamp"
SIGNATURE_HEADER = "X-Semon-Signature"


@dataclass(frozen=True)
class Target:
    """Where a message goes: a contact's channel, address and secret, and the party's MQTT topic suffix."""

    channel: str
    address: str
    secret: str = ""
    party: str = ""


@dataclass(frozen=True)
class Message:
    """A rendered message (alerts/messages.py): the same on every try."""

    idempotency_key: str
    subject: str
    text: str
    markdown: str
    payload: dict[str, Any] = field(default_factory=dict)


class SendError(Exception):
    """A send that did not succeed. `ambiguous`: the far end may have acted on it (a timeout after sending, a 5xx);
    `permanent`: trying again cannot help (a refused address, a bad signature)."""

    def __init__(self, reason: str, *, ambiguous: bool = False, permanent: bool = False):
        super().__init__(reason)
        self.ambiguous = ambiguous
        self.permanent = permanent


class Channel(Protocol):
    """One way of reaching people."""

    name: str
    # False: a repeated send reaches the person twice (SMS gateways); after an ambiguous answer it is not retried.
    idempotent: bool

    def send(self, target: Target, message: Message, now: datetime) -> None:
        """Deliver `message` to `target`, or raise SendError."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 under `secret` of "<timestamp>.<body>" (docs/delivery.md)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


_connections = threading.local()  # each sender thread keeps its own connections open between messages


def _connection(parts: urllib.parse.SplitResult, timeout_s: float,
                reuse: bool) -> tuple[http.client.HTTPConnection, bool]:
    key = (parts.scheme, parts.netloc)
    pool: dict = _connections.__dict__.setdefault("pool", {})
    if reuse and key in pool:
        return pool[key], True
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout_s)
    if reuse:
        pool[key] = connection
    return connection, False


def _forget(parts: urllib.parse.SplitResult, connection: http.client.HTTPConnection) -> None:
    pool: dict = _connections.__dict__.get("pool", {})
    if pool.get((parts.scheme, parts.netloc)) is connection:
        del pool[(parts.scheme, parts.netloc)]
    connection.close()


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float, *,
              reuse: bool = True) -> tuple[int, bytes]:
    """POST a JSON body; the status and the answer's body, or SendError saying whether anything may have arrived.
    With `reuse` (idempotent channels) the thread's open connection to the host is used again; a connection the far
    end had closed while idle is replaced once."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendError(f"not an http:// or https:// URL: {url_host(url)}", permanent=True)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json; charset=utf-8", **headers}
    for _ in range(2):
        connection, reused = _connection(parts, timeout_s, reuse)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            status, answer = response.status, response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            _forget(parts, connection)
            if reused:
                continue  # an idle keep-alive connection the server had closed: a fresh one
            raise SendError(f"{url_host(url)}: {exc or type(exc).__name__}", ambiguous=True) from None
        except (ConnectionRefusedError, socket.gaierror) as exc:
            _forget(parts, connection)
            raise SendError(f"{url_host(url)}: {exc}") from None  # nothing was sent
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            _forget(parts, connection)
            raise SendError(f"{url_host(url)}: {exc or type(exc).__name__}", ambiguous=True) from None
        if response.will_close or not reuse:
            _forget(parts, connection)
        break
    if 200 <= status < 300:
        return status, answer
    reason = f"{url_host(url)} answered HTTP {status}: {answer[:200].decode(errors='replace')}"
    if status >= 500:
        raise SendError(reason, ambiguous=True)
    if status in (408, 425, 429):
        raise SendError(reason)
    raise SendError(reason, permanent=True)


def url_host(url: str) -> str:
    """The host part of a URL, for errors: never the token in its query."""
    return urllib.parse.urlsplit(url).netloc or url[:40]


def json_answer(answer: bytes, where: str) -> dict[str, Any]:
    """A robot's JSON answer, or SendError."""
    try:
        value = json.loads(answer or b"{}")
    except ValueError:
        raise SendError(f"{where} answered with something that is not JSON: {answer[:100]!r}",
                        ambiguous=True) from None
    return value if isinstance(value, dict) else {}


def robot_answer(answer: bytes, robot: str, address: str, too_fast: int, too_fast_words: str) -> None:
    """Check a group robot's answer (DingTalk, WeCom: errcode 0 when it took the message): sending too fast is
    retried later, any other refusal is permanent. SendError says which robot, by its host only."""
    reply = json_answer(answer, f"the {robot} robot")
    code = reply.get("errcode", 0)
    if code == too_fast:
        raise SendError(f"the {robot} robot at {url_host(address)} says: {too_fast_words}")
    if code != 0:
        raise SendError(f"the {robot} robot at {url_host(address)} refused the message: errcode {code} "
                        f"{reply.get('errmsg', '')}", permanent=True)


def channels_from_config(config: Config) -> dict[str, Channel]:
    """Every channel, configured from the settings."""
    from alerts.channels import dingtalk, email, mqtt, sms, webhook, wecom

    timeout = config.delivery_timeout_s
    return {
        "webhook": webhook.Webhook(timeout),
        "email": email.Email.from_config(config),
        "dingtalk": dingtalk.DingTalk(timeout),
        "wecom": wecom.WeCom(timeout),
        "sms": sms.Sms(config.sms_gateway_url, config.sms_gateway_secret_key, timeout),
        "mqtt": mqtt.Mqtt.from_config(config),
    }
