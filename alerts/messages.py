"""What a message says (docs/delivery.md): for each notification it carries, Chinese first and English beside,
the equipment's code and address, the kind's name, the severity, the time in the users' zone and a link to the
alert's page. One rendering gives the subject, plain text (e-mail, SMS), markdown (robots) and JSON (webhook,
MQTT)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from web.formatting import timestamp_in
from web.labels import alert_kind, label

SEVERITY_WORDS = {"critical": "紧急 Critical", "high": "高 High", "medium": "中 Medium", "low": "低 Low"}
EVENT_WORDS = {
    "raised": "新告警 New alert",
    "repeated": "再次发生 Repeated",
    "resolved": "已恢复 Resolved",
    "escalated": "升级 Escalated",
    "reminder": "到期提醒 Due soon",
    "reopened": "重新打开 Reopened",
    "acknowledged": "已确认 Acknowledged",
    "on_site": "已到场 On site",
    "unacknowledged": "仍未确认 Still not acknowledged",
}


@dataclass(frozen=True)
class Item:
    """One notification as a message tells it."""

    notification_id: int
    event: str
    alert_id: int | None
    equipment_code: str
    address: str
    kind: str
    kind_name: str
    severity: str | None
    at: datetime
    message: str
    due_on: date | None = None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    markdown: str
    payload: dict[str, Any]


_ITEMS = """
SELECT n.id AS notification_id, n.event, n.alert_id, e.code AS equipment_code, e.address,
       COALESCE(a.kind, r.check_name) AS kind, a.severity, COALESCE(a.last_seen, n.created_at) AS at,
       COALESCE(a.message, '') AS message, r.due_on, f.description, f.name_zh
  FROM notifications n
  LEFT JOIN alerts a ON a.id = n.alert_id
  LEFT JOIN compliance_reminders r ON r.id = n.reminder_id
  JOIN equipment e ON e.id = COALESCE(a.equipment_id, r.equipment_id)
  LEFT JOIN fault_codes f ON f.name = a.kind
 WHERE n.id = ANY (%s)
 ORDER BY n.id"""


def load_items(conn: psycopg.Connection, notification_ids: Sequence[int]) -> list[Item]:
    """The notifications a message carries, in the order they were queued."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_ITEMS, (list(notification_ids),)).fetchall()
    items = []
    for row in rows:
        if row["alert_id"] is None:
            name = f"{label(row['kind'], 'check')} — {row['due_on'].isoformat()} 到期 due"
        else:
            name = alert_kind(row["kind"], row["description"], row["name_zh"]) or row["kind"]
        items.append(Item(row["notification_id"], row["event"], row["alert_id"], row["equipment_code"],
                          row["address"], row["kind"], name, row["severity"], row["at"], row["message"],
                          row["due_on"]))
    return items


def alert_url(base_url: str, alert_id: int | None, equipment_code: str) -> str:
    """The page a reader opens: the alert's, or the equipment's for a due-soon reminder."""
    base = base_url.rstrip("/")
    return f"{base}/alerts/{alert_id}" if alert_id is not None else f"{base}/equipment/{equipment_code}"


def _headline(item: Item) -> str:
    severity = f"【{SEVERITY_WORDS[item.severity]}】" if item.severity else ""
    return f"{severity}{EVENT_WORDS.get(item.event, item.event)}: {item.kind_name}"


def render(items: Sequence[Item], time_zone: str, base_url: str) -> Rendered:
    """The message carrying `items` (one, or a group for one contact)."""
    if not items:
        raise ValueError("a message carries at least one notification")
    zone = ZoneInfo(time_zone)
    first = items[0]
    if len(items) == 1:
        subject = f"{_headline(first)} · {first.equipment_code}"
    else:
        codes = sorted({i.equipment_code for i in items})
        more = f" 等 and {len(codes) - 3} more" if len(codes) > 3 else ""
        subject = f"{len(items)} 条告警通知 alert notifications · {', '.join(codes[:3])}{more}"
    text_parts, markdown_parts, payload_items = [], [], []
    for item in items:
        url = alert_url(base_url, item.alert_id, item.equipment_code)
        when = timestamp_in(item.at, zone)
        place = f"设备 Equipment: {item.equipment_code}" + (f" · 地址 Address: {item.address}" if item.address else "")
        lines = [_headline(item), place, f"时间 Time: {when}"]
        if item.message:
            lines.append(f"详情 Detail: {item.message}")
        text_parts.append("\n".join([*lines, f"查看 View: {url}"]))
        markdown_parts.append("\n\n".join([f"**{lines[0]}**", *lines[1:], f"[查看 View]({url})"]))
        payload_items.append({
            "notification_id": item.notification_id, "event": item.event, "alert_id": item.alert_id,
            "url": url, "equipment_code": item.equipment_code, "address": item.address, "kind": item.kind,
            "kind_name": item.kind_name, "severity": item.severity, "at": item.at.astimezone(zone).isoformat(),
            "message": item.message, "due_on": item.due_on.isoformat() if item.due_on else None,
        })
    text = "\n\n".join(text_parts) + "\n\n— semon 特种设备监测 Special equipment monitoring\n"
    markdown = f"### {subject}\n\n" + "\n\n---\n\n".join(markdown_parts)
    return Rendered(subject, text, markdown, {"subject": subject, "notifications": payload_items})
