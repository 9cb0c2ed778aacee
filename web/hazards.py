"""Hazards: the open alerts across all equipment, most severe and most recent first; the resolved ones on request
(state=resolved)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from semon.vocabulary import ALERT_STATES, EQUIPMENT_TYPES, SEVERITIES
from web.access import current_scope
from web.listing import Filter, Listing, Page, by_equipment, district_and_firm_choices
from web.params import accepts

bp = Blueprint("hazards", __name__)

ITEM_FIELDS = ("id", "equipment_code", "equipment_type", "district", "address", "firm", "kind",
               "kind_description", "kind_name_zh", "source", "sources", "severity", "state", "count", "first_seen",
               "last_seen",
               "acknowledged_at", "on_site_at", "resolved_at", "assigned_to", "muted_by", "silence_id", "message")

# The alert's own firm is the one it was routed to when raised; the equipment's current firm stands in
# for alerts raised before the equipment had one. A scope narrows on the equipment (district_id, firm_id,
# use_unit_id).
_HAZARDS_SQL = """
SELECT * FROM (
    SELECT a.id, e.code AS equipment_code, e.type AS equipment_type, e.district_id, e.firm_id, e.use_unit_id,
           d.name AS district, e.address, COALESCE(af.name, ef.name) AS firm, a.kind,
           fc.description AS kind_description, fc.name_zh AS kind_name_zh, a.source, a.sources, a.severity,
           a.state, a.count, a.first_seen,
           a.last_seen,
           a.acknowledged_at, a.on_site_at, a.resolved_at, ua.username AS assigned_to, a.muted_by, a.silence_id,
           a.message,
           array_position(%(severities)s::text[], a.severity) AS severity_rank
      FROM alerts a
      JOIN equipment e ON e.id = a.equipment_id
      JOIN districts d ON d.id = e.district_id
      LEFT JOIN maintenance_firms af ON af.id = a.firm_id
      LEFT JOIN maintenance_firms ef ON ef.id = e.firm_id
      LEFT JOIN fault_codes fc ON fc.name = a.kind
      LEFT JOIN users ua ON ua.id = a.assigned_to
) hazards
"""

# Without a state, the hazards are the alerts not resolved (open, acknowledged or on site).
_STILL_OPEN: tuple[str, dict[str, str]] = ("state <> 'resolved'", {})

HAZARDS = Listing(
    _HAZARDS_SQL,
    (Filter("district", named="district"), Filter("type", "equipment_type", EQUIPMENT_TYPES),
     Filter("firm", named="firm"), Filter("severity", choices=SEVERITIES),
     Filter("state", choices=ALERT_STATES, absent=_STILL_OPEN)),
    order="severity_rank, last_seen DESC, id DESC", narrow=by_equipment("hazards"))


def list_hazards() -> Page:
    """The alerts the request's filters and scope let through (the open ones unless state says otherwise), most
    severe first, then latest last_seen."""
    return HAZARDS.fetch(HAZARDS.parse(request.args), current_scope(), {"severities": list(SEVERITIES)})


@bp.get("/hazards")
@accepts(*HAZARDS.parameters)
def index() -> str:
    """The hazards page."""
    return render_template("hazards.html", types=EQUIPMENT_TYPES, severities=SEVERITIES, states=ALERT_STATES,
                           **list_hazards().template_args("hazards.index"),
                           **district_and_firm_choices(current_scope()))


@bp.get("/api/hazards")
@accepts(*HAZARDS.parameters)
def api_list() -> Response:
    """The open alerts (or those of state) as JSON: {"total", "limit", "offset", "items"}."""
    page = list_hazards()
    return jsonify(page.body([{name: row[name] for name in ITEM_FIELDS} for row in page.rows]))
