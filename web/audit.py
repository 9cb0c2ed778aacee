"""The audit log for administrators: a page, newest first, and the whole log (as filtered) as CSV (docs/access.md)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template, request, url_for

from semon import clock
from semon.audit import COLUMNS
from semon.scope import Scope
from web import csvout
from web.access import current_scope
from web.db import connection
from web.jsonapi import API_PREFIX
from web.listing import Condition, Filter, Listing
from web.params import accepts

bp = Blueprint("audit", __name__)


def _whole_log(_scope: Scope) -> Condition:
    # Not narrowed by equipment: only administrators, who see everything, may read it (web/access.py).
    return "", {}


AUDIT = Listing("SELECT id, at, actor, action, target, before, after, remote_addr FROM audit_log",
                (Filter("actor"), Filter("action")), order="at DESC, id DESC", narrow=_whole_log)
# Text anyone could have typed (a registry name, a token's name) may start a spreadsheet formula.
_FREE_TEXT = frozenset({"actor", "target", "before", "after"})


@bp.get("/audit")
@accepts(*AUDIT.parameters)
def index() -> str:
    """The audit log page, filtered by actor and action."""
    page = AUDIT.fetch(AUDIT.parse(request.args), current_scope())
    return render_template("audit.html", csv_url=url_for("audit.csv", **page.query.filters()),
                           **page.template_args("audit.index"))


@bp.get(API_PREFIX + "/audit.csv")
@accepts(*AUDIT.filter_parameters)
def csv() -> Response:
    """The whole audit log as filtered, as CSV; before and after as JSON."""
    page = AUDIT.fetch(AUDIT.parse(request.args, paged=False), current_scope())
    rows = [row | {side: None if row[side] is None else json.dumps(row[side], ensure_ascii=False, sort_keys=True)
                   for side in ("before", "after")} for row in page.rows]
    return csvout.response(COLUMNS, rows, f"audit-{clock.today(connection()).isoformat()}.csv", free_text=_FREE_TEXT)
