"""JSON conventions of the API: ISO 8601 timestamps, UTF-8 text, one error shape."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, jsonify, request
from flask.json.provider import DefaultJSONProvider

from web.formatting import local_iso

API_PREFIX = "/api"


class JSONProvider(DefaultJSONProvider):
    """Flask's provider, but dates as ISO 8601 (Flask's default is the HTTP date format) and keys in order."""

    ensure_ascii = False  # district and firm names are Chinese; \\u escapes only hinder a reader
    sort_keys = False

    def default(self, o: Any) -> Any:
        """A date as ISO 8601, a time in the users' zone with its offset; anything else is not JSON."""
        if isinstance(o, dt.date):  # datetime is a date too
            return local_iso(o)
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def is_api_request() -> bool:
    """Whether the current request is for the JSON API rather than an HTML page."""
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


def error_response(status: int, message: str) -> Response:
    """The API's one error shape: {"error": {"status": N, "message": "..."}}."""
    response = jsonify({"error": {"status": status, "message": message}})
    response.status_code = status
    return response
