"""Hazards: the open alerts across all equipment, most severe and most recent first."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from semon.vocabulary import EQUIPMENT_TYPES, SEVERITIES
from web.access import current_scope
from web.listing import Filter, Listing, Page, by_equipment, district_and_firm_choices

bp = Blueprint("hazards", __name__)

OPEN_STATES = ("open", "acknowledged")

ITEM_FIELDS = ("id", "equipment_code", "equipment_type", "district", "address", "firm", "kind",
               "kind_description", "source", "severity", "state", "count", "first_seen", "last_seen",
               "acknowledged_at", "message")

# The alert's own firm is the one it was routed to when raised; the equipment's current firm stands in
# for alerts raised before the equipment had one. A scope narrows on the equipment (district_id, firm_id).
_HAZARDS_SQL = """
SELECT * FROM (
    SELECT a.id, e.code AS equipment_code, e.type AS equipment_type, e.district_id, e.firm_id,
           d.name AS district, e.address, COALESCE(af.name, ef.name) AS firm, a.kind,
           fc.description AS kind_description, a.source, a.severity, a.state, a.count, a.first_seen, a.last_seen,
           a.acknowledged_at, a.message, array_position(%(severities)s::text[], a.severity) AS severity_rank
      FROM alerts a
      JOIN equipment e ON e.id = a.equipment_id
      JOIN districts d ON d.id = e.district_id
      LEFT JOIN maintenance_firms af ON af.id = a.firm_id
      LEFT JOIN maintenance_firms ef ON ef.id = e.firm_id
      LEFT JOIN fault_codes fc ON fc.name = a.kind
     WHERE a.state IN ('open', 'acknowledged')
) hazards
"""

HAZARDS = Listing(
    _HAZARDS_SQL,
    (Filter("district"), Filter("type", "equipment_type", EQUIPMENT_TYPES), Filter("firm"),
     Filter("severity", choices=SEVERITIES), Filter("state", choices=OPEN_STATES)),
    order="severity_rank, last_seen DESC, id DESC", narrow=by_equipment("hazards"))


def list_hazards() -> Page:
    """The open alerts the request's filters and scope let through, most severe first, then latest last_seen."""
    return HAZARDS.fetch(HAZARDS.parse(request.args), current_scope(), {"severities": list(SEVERITIES)})


@bp.get("/hazards")
def index() -> str:
    """The hazards page."""
    return render_template("hazards.html", types=EQUIPMENT_TYPES, severities=SEVERITIES, states=OPEN_STATES,
                           **list_hazards().template_args("hazards.index"),
                           **district_and_firm_choices(current_scope()))


@bp.get("/api/hazards")
def api_list() -> Response:
    """The open alerts as JSON: {"total", "limit", "offset", "items"}."""
    page = list_hazards()
    return jsonify(page.body([{name: row[name] for name in ITEM_FIELDS} for row in page.rows]))
