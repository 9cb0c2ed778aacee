"""No bad input ends in a server error: every route of the app (read from Flask's url_map) is walked with hostile
values in each query parameter it declares and in each path segment, and must answer below 500 — in the API's JSON
error shape under /api/. The real HTTP server answers what it refuses itself (a request line over 64 KiB) in that
shape too. docs/api.md documents every route and every declared parameter. The walk is an administrator's, who may
use every route; tests/test_access.py walks them as nobody and as another firm's user."""

from __future__ import annotations

import html
import http.client
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from werkzeug.routing import Rule

from tests.conftest import ADMIN_USERNAME, REPO, anonymous, register_equipment, sign_in
from web import server
from web.params import declared

# Sent percent-encoded, as a client would send them.
HOSTILE = (
    "\x00", "EL-1\x00", "x" * 100_000, "x" * 201,
    "99999999999999999999", "-99999999999999999999", "9223372036854775808", "9223372036854775807", "-1", "0",
    "1e309", "1_000", "١٢٣", "0x10",
    "中文", "Beta Lift / North", "a/b", "../../etc/passwd", "/", "%", "_", "\\", "'; DROP TABLE equipment; --",
    "<script>alert(1)</script>", "2026-02-30", "0001-01-01", "99999-12-31", "overdue,,late", " ", "",
)
# Written into the URL as they are: escapes that are not percent-encoded UTF-8.
RAW = ("%ZZ", "%C3%28", "%", "%E4%B8", "%FF", "a%2")
# A valid value for each path segment, so that the other segments reach the view.
VALID_SEGMENT = {"code": "EL-1", "kind": "firms", "name": "Beta Lift / North", "filename": "style.css",
                 "username": ADMIN_USERNAME, "token_id": "1", "alert_id": "1", "silence_id": "1",
                 "contact_id": "1", "route_id": "1", "message_id": "1"}
_SEGMENT = re.compile(r"<(?:[^<>:]+:)?([a-z_]+)>")
WRITE_METHODS = ("POST", "PUT", "PATCH")


@pytest.fixture
def fleet(db) -> None:
    """An equipment with a firm whose name holds a slash, in a Chinese district, with an open alert."""
    eid = register_equipment(db, "EL-1", district="中文区", firm="Beta Lift / North", use_unit="Block 1")
    db.execute("INSERT INTO alerts (equipment_id, kind, source, severity, first_seen, last_seen)"
               " VALUES (%s, 'entrapment', 'device', 'critical', now(), now())", (eid,))


def path_of(rule: Rule, segment: str | None = None, value: str = "") -> str:
    """The rule's path with valid segments, or `value` (already encoded) in the segment named `segment`."""
    return _SEGMENT.sub(lambda m: value if m.group(1) == segment else quote(VALID_SEGMENT[m.group(1)], safe="/"),
                        rule.rule)


def encoded() -> Iterator[str]:
    """Every hostile value, as it goes into a URL."""
    yield from (quote(v, safe="") for v in HOSTILE)
    yield from RAW


def methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def assert_answered(response: Any, method: str, url: str) -> None:
    """Below 500, and under /api/ every error in the one JSON shape."""
    shown = f"{method} {url[:200]}"
    body = response.get_data(as_text=True)
    assert response.status_code < 500, f"{shown}: {response.status_code} {body[:300]}"
    if url.startswith("/api/") and response.status_code >= 400:
        assert response.mimetype == "application/json", f"{shown}: {response.mimetype} {body[:300]}"
        error = response.get_json()["error"]
        assert error["status"] == response.status_code and isinstance(error["message"], str), shown
        assert len(error["message"]) < 1000, shown  # a 100 kB value is not echoed back whole


def request(app: Flask, method: str, url: str) -> Any:
    # One signed-in client per app: signing in costs a database round trip.
    client = app.extensions.get("walk_client") or app.extensions.setdefault("walk_client", app.test_client())
    if method in WRITE_METHODS:
        # The body carries a hostile value too; the registry validates it field by field.
        return client.open(url, method=method, json={"name": "中\x00文", "code": "EL-9\x00", "floors": 10**30})
    return client.open(url, method=method)


def test_every_route_answers_hostile_parameters_and_path_segments_without_a_server_error(app, fleet):
    walked = 0
    for rule in app.url_map.iter_rules():
        for method in methods(rule):
            accepted = declared(app.view_functions[rule.endpoint])
            for value in encoded():
                urls = [f"{path_of(rule)}?{name}={value}" for name in accepted]
                urls += [path_of(rule, segment, value) for segment in rule.arguments]
                urls.append(f"{path_of(rule)}?{value}={value}")  # as a parameter's name
                for url in urls:
                    assert_answered(request(app, method, url), method, url)
                    walked += 1
    assert walked > 2000  # every route was walked, not skipped


def test_a_parameter_no_route_declares_is_refused_on_every_route(app, fleet):
    for rule in app.url_map.iter_rules():
        for method in methods(rule):
            url = path_of(rule) + "?page=-1"
            response = request(app, method, url)
            assert response.status_code == 400, url
            assert "unknown parameter 'page'" in html.unescape(response.get_data(as_text=True)), url


# --- the HTTP server ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Live:
    port: int
    token: str


@pytest.fixture
def live(app: Flask) -> Iterator[Live]:
    """The app behind the HTTP server semon serves it with; yields its port and an administrator's token."""
    http_server = server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    # Requests over the wire carry an administrator's API token, as a script would.
    yield Live(http_server.port, sign_in(anonymous(app), ADMIN_USERNAME))
    http_server.shutdown()
    thread.join(timeout=10)


def fetch(live: Live, target: str) -> tuple[int, str, Any]:
    """(status, content type, body: parsed if JSON) of a GET of `target` as it is written (not re-encoded)."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {live.token}")
        conn.endheaders()
        response = conn.getresponse()
        content_type = response.getheader("Content-Type") or ""
        body = response.read().decode("utf-8")
        return response.status, content_type, json.loads(body) if content_type == "application/json" else body
    finally:
        conn.close()


def test_the_server_refuses_a_request_line_over_64_kib_in_the_api_json_shape(live, fleet):
    status, content_type, body = fetch(live, "/api/equipment?q=" + "x" * 100_000)

    assert (status, content_type) == (414, "application/json")
    assert body == {"error": {"status": 414, "message": "the request line is longer than the server reads (64 KiB); "
                                                        "no parameter may be longer than 200 characters"}}


def test_the_server_refuses_an_over_long_page_request_with_its_html_page(live, fleet):
    status, content_type, body = fetch(live, "/equipment?q=" + "x" * 100_000)

    assert status == 414
    assert content_type.startswith("text/html")


def test_over_the_wire_a_nul_and_bad_escapes_are_json_400s(live, fleet):
    assert fetch(live, "/api/equipment/EL-1%00") == (
        400, "application/json", {"error": {"status": 400, "message": "path segment code contains a NUL character"}})
    assert fetch(live, "/api/equipment?q=%C3%28")[:2] == (400, "application/json")
    assert fetch(live, "/api/registry/firms/%ZZ")[:2] == (400, "application/json")
    assert fetch(live, "/api/registry/firms/Beta%20Lift%20/%20North")[:2] == (200, "application/json")


# --- docs/api.md ---------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^### ([A-Z, ]+?) ((?:`[^`]+`(?:, )?)+)\s*$")


def documented() -> dict[tuple[str, str], str]:
    """{(method, route): the text of its section} from docs/api.md's "### GET `/route`, `/other`" headings."""
    sections: dict[tuple[str, str], str] = {}
    keys: list[tuple[str, str]] = []
    for line in Path(REPO, "docs", "api.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            match = _HEADING.match(line)
            keys = [(m, r) for m in match.group(1).split(", ") for r in re.findall(r"`([^`]+)`", match.group(2))
                    ] if match else []
            for key in keys:
                sections[key] = ""
        for key in keys:
            sections[key] += line + "\n"
    return sections


def test_docs_api_md_documents_every_route_and_every_parameter_it_declares(app):
    sections = documented()
    missing = []
    for rule in app.url_map.iter_rules():
        for method in methods(rule):
            section = sections.get((method, rule.rule))
            if section is None:
                missing.append(f"{method} {rule.rule}")
                continue
            missing += [f"{method} {rule.rule}: `{name}`" for name in declared(app.view_functions[rule.endpoint])
                        if f"`{name}`" not in section]
    assert missing == []
    routes = {(m, r.rule) for r in app.url_map.iter_rules() for m in methods(r)}
    assert set(sections) - routes == set(), "docs/api.md documents routes the app does not have"
