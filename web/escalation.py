"""Escalation chains for administrators (docs/escalation.md): list them with their stages and recipients, add and
change chains, add, change and remove stages. The rules live in alerts/escalation.py; each change is audited."""

from __future__ import annotations

import math
from collections.abc import Callable

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from alerts import escalation
from alerts.escalation import EscalationError
from semon.vocabulary import SEVERITIES
from web import access
from web.db import connection
from web.params import accepts

bp = Blueprint("escalation", __name__)

# A chain's priority and a stage's number and delay stay within what a person would set (and an integer column).
MAX_PRIORITY = 1_000_000
MAX_STAGE = 100
MAX_DELAY_MINUTES = 43_200  # 30 days


def _page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    return render_template("escalation.html", chains=escalation.chains(connection()), error=error,
                           severities=SEVERITIES, stopped_by=escalation.STOPPED_BY,
                           stage_form=escalation.stage_as_dict), status


def _whole(name: str, label: str, minimum: int, maximum: int) -> int:
    text = request.form.get(name, "").strip()
    try:
        value = int(text)
    except ValueError:
        raise EscalationError(f"{label}: {text[:20]!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise EscalationError(f"{label}: must be from {minimum} to {maximum}")
    return value


def _optional_id(name: str) -> int | None:
    return None if not request.form.get(name, "").strip() else _whole(name, name, 1, 2**31 - 1)


def _delay_s() -> int:
    text = request.form.get("delay_minutes", "").strip()
    try:
        minutes = float(text)
    except ValueError:
        raise EscalationError(f"delay: {text[:20]!r} is not a number of minutes") from None
    if not math.isfinite(minutes) or not 0 <= minutes <= MAX_DELAY_MINUTES:
        raise EscalationError(f"delay: must be from 0 to {MAX_DELAY_MINUTES} minutes")
    return round(minutes * 60)


def _change(change: Callable[[], object], done: str) -> Response | tuple[str, int]:
    try:
        change()
    except EscalationError as exc:
        return _page(404 if str(exc).startswith("no ") else 400, str(exc))
    flash(done)
    return redirect(url_for("escalation.index"))


@bp.get("/escalation")
@accepts()
def index() -> tuple[str, int]:
    """Every escalation chain with its stages, each editable."""
    return _page()


@bp.post("/escalation/chains")
@accepts()
def save_chain() -> Response | tuple[str, int]:
    """Add a chain, or change the one chain_id names."""
    form = request.form

    def change() -> int:
        return escalation.save_chain(
            connection(), access.actor(), chain_id=_optional_id("chain_id"), name=form.get("name", ""),
            kinds=escalation.parse_list(form.get("kinds", ""), "kinds"),
            severities=escalation.parse_list(form.get("severities", ""), "severities"),
            priority=_whole("priority", "priority", 0, MAX_PRIORITY), enabled=form.get("enabled") == "yes",
            description=form.get("description", "").strip())

    return _change(change, f"已保存升级链 Escalation chain saved: {form.get('name', '').strip()}")


@bp.post("/escalation/stages")
@accepts()
def save_stage() -> Response | tuple[str, int]:
    """Add a stage to chain_id, or change the one stage_id names, with its recipients."""
    form = request.form

    def change() -> int:
        chain_id = _optional_id("chain_id")
        if chain_id is None:
            raise EscalationError("chain_id: say which chain the stage belongs to")
        return escalation.save_stage(
            connection(), access.actor(), chain_id=chain_id, stage_id=_optional_id("stage_id"),
            stage=_whole("stage", "stage", 1, MAX_STAGE), delay_s=_delay_s(), stopped_by=form.get("stopped_by", ""),
            rescue_late=form.get("rescue_late") == "yes",
            recipients=escalation.parse_recipients(form.get("recipients", "")))

    return _change(change, "已保存升级阶段 Escalation stage saved")


@bp.post("/escalation/stages/delete")
@accepts()
def delete_stage() -> Response | tuple[str, int]:
    """Remove the stage stage_id names."""
    def change() -> None:
        stage_id = _optional_id("stage_id")
        if stage_id is None:
            raise EscalationError("stage_id: say which stage to remove")
        escalation.delete_stage(connection(), access.actor(), stage_id)

    return _change(change, "已删除升级阶段 Escalation stage removed")
