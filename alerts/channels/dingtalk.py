"""DingTalk custom robot (钉钉自定义机器人): a markdown message POSTed to the robot's webhook URL, signed (加签) in the
URL with timestamp and sign = base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")) when the robot has a secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from urllib.parse import quote_plus

from alerts.channels import Message, Target, post_json, robot_answer

# The robot's own limit on a markdown text; longer is cut with a note (the link leads to the rest).
MAX_TEXT = 18000
TOO_FAST = 130101  # "send too fast": more than 20 a minute


def sign(secret: str, timestamp_ms: int) -> str:
    """The robot's `sign` parameter, URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def signed_url(address: str, secret: str, now: datetime) -> str:
    """The robot URL with timestamp and sign appended (unchanged without a secret)."""
    if not secret:
        return address
    timestamp_ms = int(now.timestamp() * 1000)
    joiner = "&" if "?" in address else "?"
    return f"{address}{joiner}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


class DingTalk:
    """A group's DingTalk robot."""

    name = "dingtalk"
    idempotent = True  # a repeat shows twice in the group, which is better than missing an entrapment

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def send(self, target: Target, message: Message, now: datetime) -> None:
        """POST the markdown message; the robot answers errcode 0 when it took it."""
        text = message.markdown if len(message.markdown) <= MAX_TEXT else message.markdown[:MAX_TEXT] + "\n\n……"
        body = json.dumps({"msgtype": "markdown", "markdown": {"title": message.subject[:100], "text": text}},
                          ensure_ascii=False).encode()
        _, answer = post_json(signed_url(target.address, target.secret, now), body, {}, self.timeout_s)
        robot_answer(answer, "DingTalk", target.address, TOO_FAST, "sending too fast")
