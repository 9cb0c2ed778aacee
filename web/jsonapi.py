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


def is_api_path(path: str) -> bool:
    """Whether a URL path is the JSON API's rather than an HTML page's."""
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def is_api_request() -> bool:
    """Whether the current request is for the JSON API rather than an HTML page."""
    return is_api_path(request.path)


def error_body(status: int, message: str) -> dict[str, Any]:
    """The API's one error shape: {"error": {"status": N, "message": "..."}}."""
    return {"error": {"status": status, "message": message}}


def error_response(status: int, message: str) -> Response:
    """An error in the API's one shape (error_body) as a response."""
    response = jsonify(error_body(status, message))
    response.status_code = status
    return response
