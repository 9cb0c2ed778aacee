"""How values read on the pages: the Jinja filters, for timestamps and JSON here and labels from web/labels.py."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from web import labels


def zone() -> ZoneInfo:
    """The users' time zone (the `time_zone` setting): every time is shown in it."""
    return ZoneInfo(current_app.config["SEMON"].time_zone)


def _utc_offset(value: dt.datetime) -> str:
    offset = value.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    hours, rest = divmod(abs(int(offset.total_seconds())), 3600)
    return f"UTC{sign}{hours}" + (f":{rest // 60:02d}" if rest else "")


def timestamp(value: dt.datetime | dt.date | None) -> str:
    """A time to the minute in the users' zone, with the zone ("2026-12-02 00:30 UTC+8"); a date as is; blank
    for none."""
    return "" if value is None else timestamp_in(value, zone())


def timestamp_in(value: dt.datetime | dt.date | None, time_zone: ZoneInfo) -> str:
    """`timestamp` in a given zone, for text made outside a request (alert messages, alerts/messages.py)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        local = value.astimezone(time_zone)
        return f"{local:%Y-%m-%d %H:%M} {_utc_offset(local)}"
    return value.isoformat()


def since(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """HH:MM for a time today (the users' today), otherwise the date as well: "offline since 10:42 UTC+8"."""
    if value is None:
        return ""
    local = value.astimezone(zone())
    current = (now or dt.datetime.now(dt.UTC)).astimezone(zone())
    shown = f"{local:%H:%M}" if local.date() == current.date() else f"{local:%Y-%m-%d %H:%M}"
    return f"{shown} {_utc_offset(local)}"


def local_iso(value: dt.datetime | dt.date | None) -> str:
    """ISO 8601 for a CSV cell or a JSON value: a time in the users' zone with its offset, a date as YYYY-MM-DD,
    blank for none."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(zone()).isoformat()
    return value.isoformat()


def pct(value: float | None, digits: int = 2) -> str:
    """A ratio as a percentage ("2.52 %"); a dash when undefined (an empty group)."""
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def pretty_json(value: Any) -> str:
    """A JSON value as a reader would want to see it."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def register(app: Flask) -> None:
    """Install the template filters."""
    app.add_template_filter(labels.label)
    app.add_template_filter(labels.check_status)
    app.add_template_filter(labels.alert_kind)
    app.add_template_filter(timestamp)
    app.add_template_filter(since)
    app.add_template_filter(pct)
    app.add_template_filter(pretty_json)
