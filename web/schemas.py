"""The vendors' JSON Schemas of the MQTT payloads and their example payloads, open without signing in (docs/vendors.md).
The schemas are generated on request from the ingester's field table and this database's fault codes, as
`semon schemas write` generates docs/schemas/; the examples are the files there."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, jsonify, url_for

from semon.schemas import SCHEMAS_DIR, FaultCodeRow, all_schemas, example_name, render
from semon.vocabulary import CHANNELS, EQUIPMENT_TYPES
from web.db import fetch_all
from web.params import accepts

bp = Blueprint("schemas", __name__)


def _schemas() -> dict[str, dict]:
    rows = fetch_all("SELECT name, gbt_code, equipment_types, description FROM fault_codes")
    return all_schemas(FaultCodeRow(r["name"], r["gbt_code"], tuple(r["equipment_types"]), r["description"])
                       for r in rows)


@bp.get("/schemas/")
@accepts()
def index() -> Response:
    """Each type and channel's schema and example payload, with their URLs."""
    items = [{"type": t, "channel": c, "topic": f"sem/v1/{t}/{{code}}/{c}",
              "schema": url_for("schemas.file", filename=f"{t}.{c}.schema.json"),
              "example": url_for("schemas.file", filename=example_name(t, c))}
             for t in EQUIPMENT_TYPES for c in CHANNELS]
    return jsonify({"total": len(items), "items": items})


@bp.get("/schemas/<filename>")
@accepts()
def file(filename: str) -> Response:
    """One schema (generated) or example payload (docs/schemas/), as JSON."""
    if filename.endswith(".schema.json"):
        schema = _schemas().get(filename)
        if schema is not None:
            return Response(render(schema), mimetype="application/schema+json")
    elif filename.endswith(".example.json") and filename in {example_name(t, c) for t in EQUIPMENT_TYPES
                                                             for c in CHANNELS}:
        text = (SCHEMAS_DIR / filename).read_text(encoding="utf-8")
        json.loads(text)  # a broken example is a bug to see in the log, not a file to hand out
        return Response(text, mimetype="application/json")
    abort(404, description=f"no schema or example named {filename!r}")
