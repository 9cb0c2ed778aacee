"""Every error, as JSON under /api/ and as an HTML page elsewhere (after Datasette's handle_exception)."""

from __future__ import annotations

import logging

import psycopg
from flask import Flask, Response, render_template
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from semon.db import DatabaseUnavailable
from web.jsonapi import error_response, is_api_request

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
