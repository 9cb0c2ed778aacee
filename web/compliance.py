"""The regulator's figures and the planning lists: a page (/compliance) and its JSON and CSV API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest

from models import figures
from semon import clock
from semon.scope import Scope
from semon.vocabulary import COMPLIANCE_STATUSES, EQUIPMENT_TYPES
from web import csvout, labels, params
from web.access import current_scope
from web.db import connection
from web.listing import district_and_firm_choices, named_id
from web.params import PAGE, Param, accepts

bp = Blueprint("compliance", __name__)

# The page shows the first rows of the list; the CSV has them all.
PAGE_LIST_LIMIT = 100
HISTORY_DEFAULT_DAYS = 90
# Ten years of daily rows per group is already more than a chart can show.
HISTORY_MAX_DAYS = 3660
PAGE_HISTORY_DAYS = 30


def _date(args: Mapping[str, str], name: str, default: dt.date) -> dt.date:
    value = params.text(args, name)
    if value is None:
        return default
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None
    if not 1900 <= day.year <= 2999:  # beyond, date arithmetic overflows and no record can exist
        raise BadRequest(f"{name} must be between 1900-01-01 and 2999-12-31, not {value!r}")
    return day


def _today() -> dt.date:
    return clock.today(connection())


def _statuses(args: MultiDict[str, str]) -> tuple[str, ...]:
    """status=overdue or status=overdue,due_soon (or repeated); default: the planning statuses."""
    values = [v.strip() for raw in args.getlist("status") for v in raw.split(",") if v.strip()]
    for value in values:
        if value not in COMPLIANCE_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(COMPLIANCE_STATUSES)}, not {value!r}")
    return tuple(dict.fromkeys(values)) or figures.PLANNING_STATUSES


# The query parameters of the planning list's filter (DueFilter.from_args).
DUE_PARAMETERS = ("as_of", Param("status", repeatable=True), "district", "firm", "type", "check")


@dataclass(frozen=True)
class DueFilter:
    """What the planning list is narrowed to; None means no restriction."""

    as_of: dt.date
    statuses: tuple[str, ...]
    scope: Scope
    district: str | None = None
    firm: str | None = None
    type: str | None = None
    check: str | None = None

    @classmethod
    def from_args(cls, args: MultiDict[str, str], today: dt.date, scope: Scope) -> DueFilter:
        """Parse the query string; a bad value is a 400."""
        return cls(as_of=_date(args, "as_of", today), statuses=_statuses(args), scope=scope,
                   district=params.text(args, "district"), firm=params.text(args, "firm"),
                   type=params.choice(args, "type", EQUIPMENT_TYPES),
                   check=params.choice(args, "check", figures.CHECKS))

    def query(self, today: dt.date) -> dict[str, Any]:
        """The query-string arguments that reproduce this filter (for links and the CSV download)."""
        current = {"district": self.district, "firm": self.firm, "type": self.type, "check": self.check,
                   "as_of": self.as_of.isoformat() if self.as_of != today else None}
        if self.statuses != figures.PLANNING_STATUSES:
            current["status"] = ",".join(self.statuses)
        return {k: v for k, v in current.items() if v}

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of figures.due_list (the scope apart); an unknown district or firm name is a 400."""
        return {"statuses": self.statuses, "district_id": named_id("district", self.district, self.scope),
                "firm_id": named_id("firm", self.firm, self.scope), "equipment_type": self.type,
                "check": self.check}

    def fetch(self, limit: int | None = None, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """(total, rows) of the list."""
        return figures.due_list(connection(), self.as_of, limit=limit, offset=offset, scope=self.scope,
                                **self.filters())


def _group(args: Mapping[str, str], default: str = "district") -> str:
    return params.choice(args, "group", figures.GROUPS) or default


# The CSV is read by people as well: beside each row's status code, its label in the check's own words (超期未检 for
# the periodic inspection only, 超期未维保 for maintenance: docs/compliance-figures.md). The JSON keeps the codes.
DUE_CSV_COLUMNS = (*figures.LIST_COLUMNS, "status_label")


def _due_csv_response(flt: DueFilter) -> Response:
    rows = ({**r, "status_label": labels.check_status(r["status"], r["check"])} for r in flt.fetch()[1])
    return csvout.response(DUE_CSV_COLUMNS, rows, f"compliance-due-{flt.as_of.isoformat()}.csv")


# --- JSON and CSV API -----------------------------------------------------------------------------

@bp.get("/api/compliance/overdue-rate")
@accepts("group", "as_of")
def api_overdue_rate() -> Response:
    """{"as_of", "group", "items", "overall"}: 超期未检率 (in-use equipment whose periodic inspection is overdue /
    in-use equipment owing one), and each check's figure in by_check."""
    group = _group(request.args)
    as_of = _date(request.args, "as_of", _today())
    rates = figures.overdue_rates(connection(), as_of, scope=current_scope())
    return jsonify({"as_of": as_of, "group": group, "items": [r.as_dict(group) for r in rates.group(group)],
                    "overall": rates.overall.as_dict("overall")})


@bp.get("/api/compliance/overdue-rate/history")
@accepts("group", "from", "to")
def api_overdue_rate_history() -> Response:
    """{"group", "from", "to", "items"}: the recorded daily figures, one item per day and group."""
    group = _group(request.args, "overall")
    last = _date(request.args, "to", _today())
    first = _date(request.args, "from", last - dt.timedelta(days=HISTORY_DEFAULT_DAYS - 1))
    if first > last:
        raise BadRequest(f"from ({first}) must not be after to ({last})")
    if (last - first).days >= HISTORY_MAX_DAYS:
        raise BadRequest(f"from and to must be at most {HISTORY_MAX_DAYS} days apart")
    return jsonify({"group": group, "from": first, "to": last,
                    "items": figures.history(connection(), first, last, group, scope=current_scope())})


@bp.get("/api/compliance/coverage")
@accepts("group")
def api_coverage() -> Response:
    """{"at", "window_hours", "group", "items", "overall"}: in-use equipment whose monitor reported lately."""
    group = _group(request.args)
    now = clock.today_and_now(connection())[1]
    cov = figures.coverage(connection(), now, scope=current_scope())
    return jsonify({"at": now, "window_hours": figures.COVERAGE_WINDOW.total_seconds() / 3600, "group": group,
                    "items": [c.as_dict(group) for c in cov.group(group)], "overall": cov.overall.as_dict("overall")})


@bp.get("/api/compliance/old-elevators")
@accepts("as_of", "district")
def api_old_elevators() -> Response:
    """{"as_of", "years", "items", "overall"}: in-use elevators in service for more than 15 years, by district;
    with district=NAME, also "elevators": the elevators themselves."""
    as_of = _date(request.args, "as_of", _today())
    scope = current_scope()
    by_district, total = figures.old_elevators(connection(), as_of, scope=scope)
    body: dict[str, Any] = {"as_of": as_of, "years": figures.OLD_ELEVATOR_YEARS,
                            "items": [o.as_dict() for o in by_district], "overall": total.as_dict()}
    district = params.text(request.args, "district")
    if district is not None:
        body["elevators"] = figures.old_elevator_list(
            connection(), as_of, district_id=named_id("district", district, scope), scope=scope)
    return jsonify(body)


@bp.get("/api/compliance/old-elevators.csv")
@accepts("as_of", "district")
def api_old_elevators_csv() -> Response:
    """The old elevators themselves as CSV (all districts, or district=NAME), for an assessment campaign."""
    as_of = _date(request.args, "as_of", _today())
    scope = current_scope()
    district_id = named_id("district", params.text(request.args, "district"), scope)
    rows = figures.old_elevator_list(connection(), as_of, district_id=district_id, scope=scope)
    return csvout.response(figures.OLD_ELEVATOR_COLUMNS, rows, f"old-elevators-{as_of.isoformat()}.csv")


@bp.get("/api/compliance/due")
@accepts("format", *DUE_PARAMETERS, *PAGE)
def api_due() -> Response:
    """The planning list: JSON {"as_of", "total", "limit", "offset", "items"}, or all of it as CSV with format=csv."""
    fmt = params.choice(request.args, "format", ("json", "csv")) or "json"
    flt = DueFilter.from_args(request.args, _today(), current_scope())
    if fmt == "csv":
        return _due_csv_response(flt)
    limit, offset = params.page(request.args)
    total, rows = flt.fetch(limit, offset)
    return jsonify({"as_of": flt.as_of, "statuses": list(flt.statuses), "total": total, "limit": limit,
                    "offset": offset, "items": rows})


@bp.get("/api/compliance/due.csv")
@accepts(*DUE_PARAMETERS)
def api_due_csv() -> Response:
    """The whole planning list as CSV (the same filters as /api/compliance/due)."""
    flt = DueFilter.from_args(request.args, _today(), current_scope())
    return _due_csv_response(flt)


@bp.get("/api/compliance/due/summary")
@accepts("as_of")
def api_due_summary() -> Response:
    """{"as_of", "by_firm", "by_district"}: overdue (also per check) and due-soon checks per firm and per district."""
    as_of = _date(request.args, "as_of", _today())
    by_firm, by_district = figures.due_summary(connection(), as_of, scope=current_scope())
    return jsonify({"as_of": as_of, "by_firm": by_firm, "by_district": by_district})


# --- the page -------------------------------------------------------------------------------------

@bp.get("/compliance")
@accepts(*DUE_PARAMETERS)
def index() -> str:
    """The figures, their trend, and the planning lists with CSV downloads."""
    conn = connection()
    today, now = clock.today_and_now(conn)
    scope = current_scope()
    flt = DueFilter.from_args(request.args, today, scope)
    filters = flt.filters()
    with figures.snapshot(conn, flt.as_of, scope=scope) as statuses:
        rates = statuses.overdue_rates()
        by_firm, by_district = statuses.due_summary()
        total, rows = statuses.due_list(limit=PAGE_LIST_LIMIT, **filters)
    cov = figures.coverage(conn, now, scope=scope)
    old_by_district, old_total = figures.old_elevators(conn, flt.as_of, scope=scope)
    trend = figures.history(conn, today - dt.timedelta(days=PAGE_HISTORY_DAYS - 1), today, "overall", scope=scope)
    query = flt.query(today)
    return render_template(
        "compliance.html", flt=flt, today=today, rates=rates, cov=cov, old_by_district=old_by_district,
        old_total=old_total, old_years=figures.OLD_ELEVATOR_YEARS, trend=trend, by_firm=by_firm,
        by_district=by_district, rows=rows, total=total, limit=PAGE_LIST_LIMIT,
        csv_url=url_for("compliance.api_due_csv", **query),
        as_of_arg={"as_of": query["as_of"]} if "as_of" in query else {}, types=EQUIPMENT_TYPES,
        statuses=COMPLIANCE_STATUSES, checks=figures.CHECKS, **district_and_firm_choices(scope))
