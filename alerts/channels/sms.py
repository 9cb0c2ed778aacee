"""SMS through a gateway's adapter: a signed JSON POST {"to", "text", "idempotency_key"} to sms_gateway_url, the
same signature as the webhook's under sms_gateway_secret_key (docs/delivery.md). SMS gateways are not idempotent:
after an ambiguous answer the message is marked unknown for a person to check, never sent again blindly."""

from __future__ import annotations

import json
from datetime import datetime

from alerts.channels import Message, SendError, Target, post_json
from alerts.channels.webhook import signed_headers

MAX_CHARS = 300  # a few SMS segments: the link leads to the rest


class Sms:
    """Text messages to phones."""

    name = "sms"
    idempotent = False

    def __init__(self, gateway_url: str, secret: str, timeout_s: float):
        self.gateway_url = gateway_url
        self.secret = secret
        self.timeout_s = timeout_s

    def send(self, target: Target, message: Message, now: datetime) -> None:
        """POST the short text to the gateway."""
        if not self.gateway_url:
            raise SendError("no SMS gateway: set sms_gateway_url (docs/delivery.md)")
        text = message.text if len(message.text) <= MAX_CHARS else message.text[:MAX_CHARS - 1] + "…"
        body = json.dumps({"to": target.address, "text": text, "idempotency_key": message.idempotency_key},
                          ensure_ascii=False).encode()
        # A fresh connection each time: after an error on a reused one, an SMS could not be tried again safely.
        post_json(self.gateway_url, body, signed_headers(self.secret, message.idempotency_key, body, now),
                  self.timeout_s, reuse=False)
