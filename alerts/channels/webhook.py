"""Signed webhook: the message's JSON POSTed to the contact's URL, with its idempotency key, a timestamp and an
HMAC-SHA256 signature under the contact's secret (docs/delivery.md)."""

from __future__ import annotations

import json
from datetime import datetime

from alerts.channels import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Message,
    Target,
    post_json,
    signature,
)


def signed_headers(secret: str, key: str, body: bytes, now: datetime) -> dict[str, str]:
    """The idempotency, timestamp and (with a secret) signature headers of a signed JSON request."""
    timestamp = str(int(now.timestamp()))
    headers = {IDEMPOTENCY_HEADER: key, TIMESTAMP_HEADER: timestamp}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return headers


class Webhook:
    """A receiver of semon's own JSON: a firm's dispatch system, a 96333 platform, a chat bridge."""

    name = "webhook"
    idempotent = True  # receivers dedupe on the idempotency key

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def send(self, target: Target, message: Message, now: datetime) -> None:
        """POST the message's JSON, signed."""
        body = json.dumps({"idempotency_key": message.idempotency_key, **message.payload},
                          ensure_ascii=False, separators=(",", ":")).encode()
        post_json(target.address, body, signed_headers(target.secret, message.idempotency_key, body, now),
                  self.timeout_s)
