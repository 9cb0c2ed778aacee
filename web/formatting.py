"""How values read on the pages: the Jinja filters, for timestamps and JSON here and labels from web/labels.py."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flask import Flask

from web import labels


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
