"""Flask web UI and JSON API: equipment register, hazards, compliance, risk ranking, registry, fault codes, health,
signing in, users, API tokens and the audit log; built by create_app(config) (docs/web.md, docs/api.md,
docs/access.md)."""

from __future__ import annotations

import signal
import sys
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from semon.config import Config
from web import (
    alerts,
    audit,
    auth,
    compliance,
    contacts,
    db,
    equipment,
    errors,
    escalation,
    faultcodes,
    formatting,
    hazards,
    health,
    jsonapi,
    params,
    ratings,
    registry,
    risk,
    schemas,
    silences,
    tokens,
    users,
)


def create_app(config: Config) -> Flask:
    """Build the app for a semon Config; touches no database until the first request needs one."""
    app = Flask(__name__)
    app.config["SEMON"] = config
    app.json = jsonapi.JSONProvider(app)
    db.init_app(app, config.database_url, config.time_zone)
    formatting.register(app)
    errors.register(app)
    params.register(app)  # first: a malformed request is refused the same, whoever makes it
    auth.register(app)
    app.register_blueprint(equipment.bp)
    app.register_blueprint(hazards.bp)
    app.register_blueprint(alerts.bp)
    app.register_blueprint(silences.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(registry.bp)
    app.register_blueprint(compliance.bp)
    app.register_blueprint(faultcodes.bp)
    app.register_blueprint(risk.bp)
    app.register_blueprint(ratings.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(contacts.bp)  # contacts and routing, for administrators (docs/delivery.md)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(escalation.bp)
    app.register_blueprint(schemas.bp)  # the vendors' payload schemas, open without signing in
    return app


def server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """werkzeug's threaded HTTP server for the app, with the API's JSON errors for what it refuses itself."""
    # werkzeug's threaded server suffices for one machine; a bigger deployment puts the same
    # create_app behind a WSGI server with more workers (docs/web.md: the web app is stateless).
    return make_server(host, port, app, threaded=True, request_handler=errors.RequestHandler)


def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    """Serve the app on web_host:web_port (or the given host and port) until interrupted."""
    app = create_app(config)
    if threading.current_thread() is threading.main_thread():
        # `semon demo` and service managers stop us with SIGTERM: exit through the finally below so
        # the pool's connections are closed rather than dropped.
        signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    try:
        http = server(app, host or config.web_host, config.web_port if port is None else port)
        http.log_startup()
        http.serve_forever()  # returns on Ctrl-C
    finally:
        db.close_pool(app)
