"""The fault codes a monitor may report (the fault_codes table, seeded from GB/T 24476-2017 and docs/mqtt.md), so
that a vendor or a firm can read what each code means and how severe it is."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from semon.vocabulary import EQUIPMENT_TYPES, SEVERITIES
from web import params
from web.db import fetch_all
from web.params import accepts

bp = Blueprint("faultcodes", __name__)

# The standard's numbered codes first, in its order, then the others by name.
_FAULT_CODES_SQL = """
SELECT name, gbt_code, severity, equipment_types, description, name_zh
  FROM fault_codes
 WHERE (%(type)s::text IS NULL OR %(type)s = ANY(equipment_types))
   AND (%(severity)s::text IS NULL OR severity = %(severity)s)
 ORDER BY gbt_code NULLS LAST, name
"""


@bp.get("/api/fault-codes")
@accepts("type", "severity")
def api_list() -> Response:
    """The fault codes, of one equipment type or severity if asked: {"total", "items"}."""
    items = fetch_all(_FAULT_CODES_SQL, {"type": params.choice(request.args, "type", EQUIPMENT_TYPES),
                                         "severity": params.choice(request.args, "severity", SEVERITIES)})
    return jsonify({"total": len(items), "items": items})
