"""WeCom group robot (企业微信群机器人): a markdown message POSTed to the robot's webhook URL (its key is the secret
in the URL)."""

from __future__ import annotations

import json
from datetime import datetime

from alerts.channels import Message, Target, post_json, robot_answer

MAX_BYTES = 4096  # the robot's limit on markdown content, in UTF-8 bytes
TOO_FAST = 45009  # "api freq out of limit": more than 20 a minute


def clip(text: str, limit: int = MAX_BYTES) -> str:
    """`text` cut to `limit` UTF-8 bytes on a character boundary, marked when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 8].decode(errors="ignore") + "\n……"


class WeCom:
    """A group's WeCom robot."""

    name = "wecom"
    idempotent = True

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def send(self, target: Target, message: Message, now: datetime) -> None:
        """POST the markdown message; the robot answers errcode 0 when it took it."""
        body = json.dumps({"msgtype": "markdown", "markdown": {"content": clip(message.markdown)}},
                          ensure_ascii=False).encode()
        _, answer = post_json(target.address, body, {}, self.timeout_s)
        robot_answer(answer, "WeCom", target.address, TOO_FAST, "api freq out of limit")
