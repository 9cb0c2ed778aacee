"""Hazards: the open alerts across all equipment, most severe and most recent first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for

from semon.vocabulary import EQUIPMENT_TYPES, SEVERITIES
from web import params
from web.db import fetch_all, fetch_one

bp = Blueprint("hazards", __name__)

OPEN_STATES = ("open", "acknowledged")

ITEM_FIELDS = ("id", "equipment_code", "equipment_type", "district", "address", "firm", "kind",
               "kind_description", "source", "severity", "state", "count", "first_seen", "last_seen",
               "acknowledged_at", "message")

# The alert's own firm is the one it was routed to when raised; the equipment's current firm stands in
# for alerts raised before the equipment had one.
_HAZARDS_SQL = """
SELECT * FROM (
    SELECT a.id, e.code AS equipment_code, e.type AS equipment_type, d.name AS district, e.address,
           COALESCE(af.name, ef.name) AS firm, a.kind, fc.description AS kind_description, a.source,
           a.severity, a.state, a.count, a.first_seen, a.last_seen, a.acknowledged_at, a.message,
           array_position(%(severities)s::text[], a.severity) AS severity_rank
      FROM alerts a
      JOIN equipment e ON e.id = a.equipment_id
      JOIN districts d ON d.id = e.district_id
      LEFT JOIN maintenance_firms af ON af.id = a.firm_id
      LEFT JOIN maintenance_firms ef ON ef.id = e.firm_id
      LEFT JOIN fault_codes fc ON fc.name = a.kind
     WHERE a.state IN ('open', 'acknowledged')
) hazards
"""


@dataclass(frozen=True)
class HazardFilter:
    """What the hazard list is narrowed to; None means no restriction."""

    district: str | None = None
    type: str | None = None
    firm: str | None = None
    severity: str | None = None
    state: str | None = None
    limit: int = params.DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> HazardFilter:
        """Parse the query string; a bad value is a 400."""
        limit, offset = params.page(args)
        return cls(
            district=params.text(args, "district"),
            type=params.choice(args, "type", EQUIPMENT_TYPES),
            firm=params.text(args, "firm"),
            severity=params.choice(args, "severity", SEVERITIES),
            state=params.choice(args, "state", OPEN_STATES),
            limit=limit,
            offset=offset,
        )

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause over the open alerts and its parameters."""
        columns = {"district": "district", "type": "equipment_type", "firm": "firm",
                   "severity": "severity", "state": "state"}
        clauses = []
        values: dict[str, Any] = {}
        for name, column in columns.items():
            if getattr(self, name) is not None:
                clauses.append(f"{column} = %({name})s")
                values[name] = getattr(self, name)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), values

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query-string arguments that reproduce this filter."""
        current = {"district": self.district, "type": self.type, "firm": self.firm,
                   "severity": self.severity, "state": self.state, "offset": self.offset}
        if self.limit != params.DEFAULT_LIMIT:
            current["limit"] = self.limit
        current.update(changes)
        return {k: v for k, v in current.items() if v not in (None, "", 0)}


def list_hazards(flt: HazardFilter) -> tuple[int, list[dict[str, Any]]]:
    """(total open alerts matching, the requested page) most severe first, then latest last_seen."""
    where, values = flt.where()
    values["severities"] = list(SEVERITIES)
    total = fetch_one("SELECT count(*) AS n FROM (" + _HAZARDS_SQL + where + ") matching", values)
    rows = fetch_all(_HAZARDS_SQL + where + " ORDER BY severity_rank, last_seen DESC, id DESC"
                     " LIMIT %(limit)s OFFSET %(offset)s",
                     values | {"limit": flt.limit, "offset": flt.offset})
    return (total["n"] if total else 0), rows


@bp.get("/hazards")
def index() -> str:
    """The hazards page."""
    flt = HazardFilter.from_args(request.args)
    total, rows = list_hazards(flt)
    prev_url = next_url = None
    if flt.offset > 0:
        prev_url = url_for("hazards.index", **flt.args(offset=max(flt.offset - flt.limit, 0)))
    if flt.offset + len(rows) < total:
        next_url = url_for("hazards.index", **flt.args(offset=flt.offset + flt.limit))
    districts = [r["name"] for r in fetch_all("SELECT name FROM districts ORDER BY name")]
    firms = [r["name"] for r in fetch_all("SELECT name FROM maintenance_firms ORDER BY name")]
    return render_template("hazards.html", rows=rows, total=total, flt=flt, prev_url=prev_url,
                           next_url=next_url, types=EQUIPMENT_TYPES, severities=SEVERITIES,
                           states=OPEN_STATES, districts=districts, firms=firms)


@bp.get("/api/hazards")
def api_list() -> Response:
    """The open alerts as JSON: {"total", "limit", "offset", "items"}."""
    flt = HazardFilter.from_args(request.args)
    total, rows = list_hazards(flt)
    return jsonify({"total": total, "limit": flt.limit, "offset": flt.offset,
                    "items": [{name: row[name] for name in ITEM_FIELDS} for row in rows]})
