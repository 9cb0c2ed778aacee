"""Liveness for load balancers and the demo script: is the database answering?"""

from __future__ import annotations

import psycopg
from flask import Blueprint, Response, jsonify
from psycopg_pool import PoolTimeout

from semon.db import DatabaseUnavailable
from web.db import connection
from web.params import accepts

bp = Blueprint("health", __name__)

# A health check that hangs is worse than one that fails: probes have short timeouts of their own.
HEALTH_TIMEOUT_S = 3.0


@bp.get("/healthz")
@accepts()
def healthz() -> tuple[Response, int]:
    """200 {"status": "ok", "database": "ok"} when the database answers, else 503 with the reason."""
    try:
        connection(timeout_s=HEALTH_TIMEOUT_S).execute("SELECT 1").fetchone()
    except (DatabaseUnavailable, PoolTimeout, psycopg.Error) as exc:
        reason = str(exc).strip() or type(exc).__name__
        return jsonify({"status": "error", "database": reason}), 503
    return jsonify({"status": "ok", "database": "ok"}), 200
