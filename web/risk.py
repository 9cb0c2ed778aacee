"""Risk ranking (风险分级): in-use equipment by risk score, most risk first, with each score's reasons; a page, JSON
and CSV (docs/risk.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

from models import risk
from semon import clock
from semon.vocabulary import EQUIPMENT_TYPES
from web import csvout, labels
from web.access import current_scope
from web.db import connection
from web.listing import Filter, Listing, Page, by_equipment, district_and_firm_choices
from web.params import accepts

bp = Blueprint("risk", __name__)


@bp.record_once
def _check_thresholds(state: BlueprintSetupState) -> None:
    # A medium threshold at or above the high one stops the app when it is built, not on the first request.
    risk.Thresholds.from_config(state.app.config["SEMON"])


ITEM_FIELDS = ("rank", "code", "type", "district", "address", "use_unit", "firm", "level", "score", "reasons")
# The CSV is read by people: the level as the page words it beside its code, and the reasons as one cell.
CSV_FIELDS = ("rank", "code", "type", "district", "address", "use_unit", "firm", "level", "level_label", "score",
              "reasons")
REASONS_SEPARATOR = "; "

# Rank is the place in the list as filtered: 1 is the first to inspect of what the filters select.
RISK = Listing(
    f"SELECT r.*, row_number() OVER (ORDER BY {risk.ORDER}) AS rank FROM {{table}} r",
    (Filter("district", named="district"), Filter("firm", named="firm"), Filter("level", choices=risk.LEVELS),
     Filter("type", choices=EQUIPMENT_TYPES)),
    order="rank", narrow=by_equipment("r"))


def _fetch(paged: bool = True) -> tuple[dt.date, Page]:
    """(today, the page the request asks for) of the request's scope scored once (models.risk.snapshot)."""
    scope = current_scope()
    query = RISK.parse(request.args, paged)
    RISK.where(query, scope)  # an unknown district or firm is a 400 before anything is scored
    conn = connection()
    today = clock.today(conn)
    thresholds = risk.Thresholds.from_config(current_app.config["SEMON"])
    with risk.snapshot(conn, today, thresholds, scope=scope) as table:
        listing = Listing(RISK.select.format(table=table), RISK.filters, RISK.order, RISK.narrow)
        return today, listing.fetch(query, scope)


def reasons(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row's reasons as the API gives them: {factor, points, fact}, most points first."""
    return [{"factor": r["factor"], "points": r["points"], "fact": labels.risk_fact(r)} for r in row["reasons"]]


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in ITEM_FIELDS} | {"reasons": reasons(row)}


def reasons_text(items: list[dict[str, Any]]) -> str:
    """The reasons in one CSV cell: "fact +points; fact +points"."""
    return REASONS_SEPARATOR.join(f"{r['fact']} +{r['points']}" for r in items)


@bp.get("/risk")
@accepts(*RISK.parameters)
def index() -> str:
    """The risk ranking page."""
    _, page = _fetch()
    rows = [row | {"reason_list": reasons(row)} for row in page.rows]
    return render_template("risk.html", types=EQUIPMENT_TYPES, levels=risk.LEVELS,
                           **(page.template_args("risk.index") | {"rows": rows}),
                           csv_url=url_for("risk.api_csv", **page.query.filters()),
                           **district_and_firm_choices(current_scope()))


@bp.get("/api/risk")
@accepts(*RISK.parameters)
def api_list() -> Response:
    """The risk ranking as JSON: {"as_of", "total", "limit", "offset", "items"}, most risk first."""
    today, page = _fetch()
    return jsonify({"as_of": today} | page.body([_item(r) for r in page.rows]))


@bp.get("/api/risk.csv")
@accepts(*RISK.filter_parameters)
def api_csv() -> Response:
    """The whole risk ranking as CSV, with the filters of /api/risk."""
    today, page = _fetch(paged=False)
    rows = ({**_item(r), "level_label": labels.label(r["level"], "risk_level"),
             "reasons": reasons_text(reasons(r))} for r in page.rows)
    return csvout.response(CSV_FIELDS, rows, f"risk-{today.isoformat()}.csv",
                           free_text=csvout.FREE_TEXT | {"reasons"})
