"""Every error, as JSON under /api/ and as an HTML page elsewhere (after Datasette's handle_exception): those of the
app, and those the HTTP server answers itself before the app sees the request (RequestHandler)."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from urllib.parse import urlsplit

import psycopg
from flask import Flask, Response, render_template
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.serving import WSGIRequestHandler

from semon.db import DatabaseUnavailable
from web.jsonapi import error_body, error_response, is_api_path, is_api_request
from web.params import MAX_LENGTH

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Install the error handlers on the app."""
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(DatabaseUnavailable, _handle_database_unavailable)
    app.register_error_handler(PoolTimeout, _handle_database_unavailable)
    app.register_error_handler(psycopg.OperationalError, _handle_database_unavailable)
    app.register_error_handler(Exception, _handle_unexpected)


def _render(status: int, title: str, message: str) -> tuple[Response | str, int]:
    if is_api_request():
        return error_response(status, message), status
    return render_template("error.html", status=status, title=title, message=message), status


def _handle_http_exception(exc: HTTPException) -> tuple[Response | str, int] | HTTPException:
    if exc.code is None:  # not an error (a bare HTTPException used as a response)
        return exc
    return _render(exc.code, exc.name, exc.description or exc.name)


def _handle_database_unavailable(exc: Exception) -> tuple[Response | str, int]:
    # Logged without traceback: the database being down is expected and the reason is in the text.
    log.warning("database unavailable: %s", exc)
    error = ServiceUnavailable()
    return _render(error.code, error.name, "The database is unavailable; try again shortly.")


def _handle_unexpected(exc: Exception) -> tuple[Response | str, int]:
    log.exception("unhandled error")
    error = InternalServerError()
    # The details are in the log; the page must not show SQL or stack traces to the public.
    return _render(error.code, error.name, "Something went wrong on the server; it has been logged.")


class RequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, but the errors the HTTP server answers itself (a request line over 64 KiB, bad
    request syntax, headers too large) are in the API's JSON shape when the request was for the API."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The server's own error reply: JSON for an /api/ request line, the standard HTML page otherwise."""
        if not self._for_api():
            super().send_error(code, message, explain)
            return
        if code == HTTPStatus.REQUEST_URI_TOO_LONG:
            message = (f"the request line is longer than the server reads (64 KiB); no parameter may be longer "
                       f"than {MAX_LENGTH} characters")
        phrase = self.responses.get(code, ("error",))[0]
        text = message or phrase
        body = json.dumps(error_body(code, text), ensure_ascii=False).encode("utf-8")
        self.log_error("code %d, message %s", code, text)
        self.send_response(code, phrase)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _for_api(self) -> bool:
        # The request line may be cut short or unparsed here, so read the target from the raw bytes.
        parts = getattr(self, "raw_requestline", b"").split(maxsplit=2)
        if len(parts) < 2:
            return False
        try:
            return is_api_path(urlsplit(parts[1].decode("latin-1")).path)
        except ValueError:  # not even a URL
            return False
