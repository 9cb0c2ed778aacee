"""How values read on the pages: labels with their Chinese terms, timestamps, Jinja filters."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import Flask

# Inspectors and firms know these by their Chinese names; the English leads for everyone else.
TYPE_LABELS = {
    "elevator": "Elevator (电梯)",
    "escalator": "Escalator (自动扶梯)",
    "boiler": "Boiler (锅炉)",
    "pressure_vessel": "Pressure vessel (压力容器)",
}
INSPECTION_LABELS = {
    "ok": "OK (在有效期内)",
    "due_soon": "Due soon (即将到期)",
    "overdue": "Overdue (超期未检)",
    "no_record": "Never recorded (无检验记录)",
    "not_required": "Not in use (停用/报废)",
}
CONNECTION_LABELS = {
    "online": "Online (在线)",
    "offline": "Offline (离线)",
    "no_data": "No data (无数据)",
}
SEVERITY_LABELS = {
    "critical": "Critical",
    "high": "High",
    "medium": "Medium",
    "low": "Low",
}
ALERT_STATE_LABELS = {
    "open": "Open (未处理)",
    "acknowledged": "Acknowledged (已确认)",
    "resolved": "Resolved (已解决)",
}
EQUIPMENT_STATUS_LABELS = {
    "in_use": "In use (在用)",
    "suspended": "Suspended (停用)",
    "scrapped": "Scrapped (报废)",
}
INSPECTION_RESULT_LABELS = {
    "pass": "Pass (合格)",
    "pass_after_rectification": "Pass after rectification (整改后合格)",
    "fail": "Fail (不合格)",
}

_LABELS = {
    "type": TYPE_LABELS,
    "inspection": INSPECTION_LABELS,
    "connection": CONNECTION_LABELS,
    "severity": SEVERITY_LABELS,
    "alert_state": ALERT_STATE_LABELS,
    "equipment_status": EQUIPMENT_STATUS_LABELS,
    "inspection_result": INSPECTION_RESULT_LABELS,
}


def label(value: str | None, vocabulary: str) -> str:
    """The display label of a vocabulary value; unknown values show as themselves."""
    if value is None:
        return ""
    return _LABELS[vocabulary].get(value, value.replace("_", " "))


def timestamp(value: dt.datetime | dt.date | None) -> str:
    """A timestamp to the minute in the web host's time zone (the database's is often UTC); blank for none."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def since(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """HH:MM for a time today, otherwise the date as well: "offline since 10:42"."""
    if value is None:
        return ""
    local = value.astimezone()
    if local.date() == (now or dt.datetime.now()).astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def pretty_json(value: Any) -> str:
    """A JSON value as a reader would want to see it."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def register(app: Flask) -> None:
    """Install the template filters."""
    app.add_template_filter(label)
    app.add_template_filter(timestamp)
    app.add_template_filter(since)
    app.add_template_filter(pretty_json)
