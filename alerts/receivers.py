"""Local receivers of alert messages, for the demo, the tests and the benchmark (docs/delivery.md): an HTTP server
that takes signed webhooks (checking the signature and deduping on the idempotency key), and stands in for the
DingTalk and WeCom robot APIs (checking their signatures and formats); and an SMTP server (aiosmtpd) that keeps the
e-mails. What they receive can be written to files, which is where the demo shows what was sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alerts.channels import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

WEBHOOK_PATH = "/hook"
DINGTALK_PATH = "/robot/send"
WECOM_PATH = "/cgi-bin/webhook/send"
SMS_PATH = "/sms"


@dataclass
class Received:
    """One request a receiver accepted."""

    path: str
    key: str
    body: dict[str, Any]
    at: float


@dataclass
class HttpReceiver:
    """Webhook, SMS gateway and robot stand-ins on one threaded HTTP server. `secret` checks the webhook's and
    SMS gateway's signatures and the DingTalk robot's sign; `wecom_key` is the WeCom robot's key. Each accepted
    request is kept once per idempotency key (robots: per message text); repeats are counted in `duplicates`."""

    secret: str = ""
    wecom_key: str = "test-key"
    port: int = 0
    log_path: Path | None = None
    # Answer this status instead of taking the message (a receiver in trouble); None takes it.
    fail_with: int | None = None
    robot_errcode: int = 0
    received: list[Received] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    duplicates: int = 0
    on_receive: Callable[[Received], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- running -----------------------------------------------------------------------------------------------

    def start(self) -> HttpReceiver:
        """Listen on 127.0.0.1 (the same port again after a stop)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers offer
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for a delayed ACK

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = receiver._take(self.path, dict(self.headers), self.rfile.read(length))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True, name="receiver").start()
        return self

    def stop(self) -> None:
        """Stop listening: senders see the connection refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str = WEBHOOK_PATH) -> str:
        """The URL of one of the receiver's endpoints."""
        return f"http://127.0.0.1:{self.port}{path}"

    def dingtalk_url(self, token: str = "robot-token") -> str:
        """A DingTalk robot address as the group's settings show it."""
        return f"{self.url(DINGTALK_PATH)}?access_token={token}"

    def wecom_url(self) -> str:
        """A WeCom robot address as the group's settings show it."""
        return f"{self.url(WECOM_PATH)}?key={self.wecom_key}"

    # --- checking ----------------------------------------------------------------------------------------------

    def _take(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if self.fail_with is not None:
            return self.fail_with, {"error": "receiver in trouble"}
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            payload = json.loads(body)
        except ValueError:
            return self._reject(400, f"{parts.path}: body is not JSON")
        if parts.path in (WEBHOOK_PATH, SMS_PATH):
            problem = self._check_signed(headers, body)
            key = headers.get(IDEMPOTENCY_HEADER, "")
            if parts.path == SMS_PATH and not (payload.get("to") and payload.get("text")):
                problem = problem or "an SMS needs to and text"
        elif parts.path == DINGTALK_PATH:
            problem = self._check_dingtalk(query, payload)
            key = payload.get("markdown", {}).get("text", "")
            if problem is None and self.robot_errcode:
                return 200, {"errcode": self.robot_errcode, "errmsg": "send too fast"}
        elif parts.path == WECOM_PATH:
            problem = None if query.get("key") == self.wecom_key else "wrong robot key"
            if problem is None and (payload.get("msgtype") != "markdown"
                                    or not payload.get("markdown", {}).get("content")):
                problem = "expected msgtype markdown with markdown.content"
            key = payload.get("markdown", {}).get("content", "")
            if problem is None and self.robot_errcode:
                return 200, {"errcode": self.robot_errcode, "errmsg": "api freq out of limit"}
        else:
            return self._reject(404, f"no endpoint {parts.path}")
        if problem:
            return self._reject(400 if parts.path in (WEBHOOK_PATH, SMS_PATH) else 200, problem, robot=True)
        self._keep(Received(parts.path, key, payload, time.monotonic()))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _check_signed(self, headers: dict[str, str], body: bytes) -> str | None:
        key = headers.get(IDEMPOTENCY_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        if not key or not timestamp:
            return f"missing {IDEMPOTENCY_HEADER} or {TIMESTAMP_HEADER}"
        if self.secret and not hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""),
                                                   signature(self.secret, timestamp, body)):
            return "bad signature"
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > 300:
            return "timestamp more than 5 minutes away: a replay?"
        return None

    def _check_dingtalk(self, query: dict[str, str], payload: dict[str, Any]) -> str | None:
        if not query.get("access_token"):
            return "missing access_token"
        if self.secret:
            timestamp = query.get("timestamp", "")
            digest = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
            # parse_qs has URL-decoded the sign already.
            if not timestamp or query.get("sign") != base64.b64encode(digest).decode():
                return "sign does not match"
            if abs(int(timestamp) / 1000 - time.time()) > 3600:
                return "timestamp more than an hour away"
        markdown = payload.get("markdown", {})
        if payload.get("msgtype") != "markdown" or not markdown.get("title") or not markdown.get("text"):
            return "expected msgtype markdown with markdown.title and markdown.text"
        return None

    def _reject(self, status: int, problem: str, robot: bool = False) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.rejected.append(problem)
        if robot and status == 200:
            return 200, {"errcode": 310000, "errmsg": problem}
        return status, {"error": problem}

    def _keep(self, item: Received) -> None:
        with self._lock:
            if item.key in self.keys:
                self.duplicates += 1
                self.keys[item.key] += 1
                return
            self.keys[item.key] = 1
            self.received.append(item)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps({"path": item.path, "key": item.key, "at": time.time(), "body": item.body},
                                         ensure_ascii=False) + "\n")
        if self.on_receive is not None:
            self.on_receive(item)


class SmtpReceiver:
    """An aiosmtpd SMTP server on 127.0.0.1 that keeps every e-mail (and writes each to `mail_dir` as .eml);
    with `tls_cert`/`tls_key` it offers STARTTLS and requires it."""

    def __init__(self, port: int = 0, *, tls_cert: Path | None = None, tls_key: Path | None = None,
                 mail_dir: Path | None = None):
        self.port = port
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.mail_dir = mail_dir
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    def start(self) -> SmtpReceiver:
        """Start the server in its own thread."""
        import ssl

        from aiosmtpd.controller import Controller

        if self.port == 0:
            import socket

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd
                mail = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
                receiver._keep(mail, envelope.content)
                return "250 OK"

        options: dict[str, Any] = {}
        if self.tls_cert and self.tls_key:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls_cert, self.tls_key)
            options = {"tls_context": context, "require_starttls": True}
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def _keep(self, mail: Any, raw: bytes) -> None:
        with self._lock:
            self.messages.append(mail)
            if self.mail_dir is not None:
                self.mail_dir.mkdir(parents=True, exist_ok=True)
                (self.mail_dir / f"{len(self.messages):06d}.eml").write_bytes(raw)

    def stop(self) -> None:
        """Stop the server."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def run_receivers(webhook_port: int, smtp_port: int, secret: str, directory: Path) -> None:
    """`semon receivers`: both receivers, writing into `directory`, until SIGINT or SIGTERM."""
    import signal

    directory.mkdir(parents=True, exist_ok=True)
    http = HttpReceiver(secret=secret, port=webhook_port, log_path=directory / "webhook.jsonl").start()
    smtp = SmtpReceiver(smtp_port, mail_dir=directory / "mail").start()
    print(f"webhook receiver {http.url()} -> {directory / 'webhook.jsonl'}; SMTP 127.0.0.1:{smtp.port} -> "
          f"{directory / 'mail'}", flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        while not stopped.wait(1):
            pass
    finally:
        http.stop()
        smtp.stop()
