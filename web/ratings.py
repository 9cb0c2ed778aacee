"""Firm ratings (维保单位信用评价): the ranking of the firms for a month, a page per firm with its months, JSON and
CSV (docs/ratings.md). The figures and the grade are models/ratings.py's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import BadRequest

from models import ratings
from semon import clock
from semon.scope import Scope, related_condition
from web import csvout, params
from web.access import current_scope
from web.db import connection, fetch_one
from web.listing import district_and_firm_choices, named_id
from web.params import PAGE, accepts

bp = Blueprint("ratings", __name__)

# A firm's page shows a year by default; three years at most in one answer.
DEFAULT_MONTHS = 12
MAX_MONTHS = 36
RANKING_PARAMETERS = ("month", "district", "grade")
FIRM_PARAMETERS = ("to", "months", "district")
# The CSV has every figure of the API, in its order.
CSV_FIELDS = ratings.FIELDS


@bp.record_once
def _check_settings(state: BlueprintSetupState) -> None:
    # Weights or grades that cannot be used stop the app when it is built, not on the first request.
    ratings.Settings.from_config(state.app.config["SEMON"])


def _month(args: Mapping[str, str], name: str, default: dt.date) -> dt.date:
    value = params.text(args, name)
    if value is None:
        return default
    try:
        return ratings.parse_month(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _scope(args: Mapping[str, str]) -> tuple[Scope, str | None]:
    """(the request's scope, narrowed to the district asked for, its name); an unknown district is a 400."""
    scope = current_scope()
    district = params.text(args, "district")
    district_id = named_id("district", district, scope)
    return (scope if district_id is None else scope & Scope.of(districts=[district_id])), district


def _rated(months: list[dt.date], scope: Scope, firm_id: int | None = None) -> list[dict[str, Any]]:
    conn = connection()
    _, now = clock.today_and_now(conn)
    settings = ratings.Settings.from_config(current_app.config["SEMON"])
    return ratings.ratings(conn, months, settings, now=now, scope=scope, firm_id=firm_id)


def _current_month() -> dt.date:
    return clock.today(connection()).replace(day=1)


def _ranking(paged: bool) -> dict[str, Any]:
    """The ranking the request asks for: month, district, grade, the rows (a page of them when `paged`)."""
    args = request.args
    month = _month(args, "month", _current_month())
    grade = params.choice(args, "grade", ratings.GRADES)
    scope, district = _scope(args)
    rows = [r for r in _rated([month], scope) if grade is None or r["grade"] == grade]
    limit, offset = params.page(args) if paged else (None, 0)
    shown = rows[offset:None if limit is None else offset + limit]
    return {"month": month, "district": district, "grade": grade, "total": len(rows), "limit": limit,
            "offset": offset, "rows": shown}


@bp.get("/ratings")
@accepts(*RANKING_PARAMETERS, *PAGE)
def index() -> str:
    """The ranking of the firms for a month."""
    ranking = _ranking(paged=True)
    filters = {k: v for k, v in (("month", ratings.month_text(ranking["month"])), ("district", ranking["district"]),
                                 ("grade", ranking["grade"])) if v}
    limit, offset = ranking["limit"], ranking["offset"]
    prev_url = url_for("ratings.index", **filters, offset=max(offset - limit, 0)) if offset else None
    next_url = (url_for("ratings.index", **filters, offset=offset + limit)
                if offset + len(ranking["rows"]) < ranking["total"] else None)
    return render_template("ratings.html", **ranking, month_text=ratings.month_text(ranking["month"]),
                           grades=ratings.GRADES, prev_url=prev_url, next_url=next_url,
                           csv_url=url_for("ratings.api_csv", **filters),
                           districts=district_and_firm_choices(current_scope())["districts"])


@bp.get("/api/ratings")
@accepts(*RANKING_PARAMETERS, *PAGE)
def api_list() -> Response:
    """The ranking as JSON: {"month", "district", "grade", "total", "limit", "offset", "items"}."""
    ranking = _ranking(paged=True)
    items = ranking.pop("rows")
    return jsonify(ranking | {"month": ratings.month_text(ranking["month"]), "items": items})


@bp.get("/api/ratings.csv")
@accepts(*RANKING_PARAMETERS)
def api_csv() -> Response:
    """The whole ranking of a month as CSV, with the filters of /api/ratings."""
    ranking = _ranking(paged=False)
    name = f"ratings-{ratings.month_text(ranking['month'])}.csv"
    return csvout.response(CSV_FIELDS, ranking["rows"], name)


def _firm_months(name: str) -> dict[str, Any]:
    """A firm's months the request asks for; a firm unknown or outside the scope is a 404."""
    args = request.args
    last = _month(args, "to", _current_month())
    count = params.integer(args, "months", DEFAULT_MONTHS, 1, MAX_MONTHS)
    scope, district = _scope(args)
    related, values = related_condition(current_scope(), "f", "firm_id")
    firm = fetch_one(f"SELECT f.id, f.name FROM maintenance_firms f WHERE f.name = %(name)s{related}",
                     {"name": name} | values)
    if firm is None:
        abort(404, description=f"no maintenance firm named {params.shown(name)}")
    rows = _rated(ratings.months_back(last, count), scope, firm["id"])
    return {"firm": firm["name"], "to": last, "months": count, "district": district, "rows": rows}


@bp.get("/ratings/<path:name>")
@accepts(*FIRM_PARAMETERS)
def firm(name: str) -> str:
    """One firm's ratings, month by month, newest first."""
    months = _firm_months(name)
    return render_template("ratings_firm.html", **months, to_text=ratings.month_text(months["to"]),
                           districts=district_and_firm_choices(current_scope())["districts"])


@bp.get("/api/ratings/<path:name>")
@accepts(*FIRM_PARAMETERS)
def api_firm(name: str) -> Response:
    """One firm's ratings as JSON: {"firm", "to", "months", "district", "items"}, newest month first."""
    months = _firm_months(name)
    items = months.pop("rows")
    return jsonify(months | {"to": ratings.month_text(months["to"]), "items": items})
