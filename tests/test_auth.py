"""Signing in and its refusals (web/auth.py, semon/users.py, docs/access.md): login with a hashed password, session
cookies, CSRF on every form, the login rate limit shared by web workers, API tokens (made and revoked in the UI,
stored hashed), disabled users, the idle timeout, logout everywhere, roles' permissions, the audit log and its CSV,
and the `semon users` command."""

from __future__ import annotations

import hashlib
import html
import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from semon.cli import cli
from tests.conftest import (
    REPO,
    TEST_PASSWORD,
    add_user,
    anonymous,
    free_port,
    register_equipment,
    signed_in,
    wait_until,
)
from web import create_app
from web.auth import SEEN
from web.db import close_pool

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: FlaskClient, url: str = "/login") -> str:
    """The CSRF token of the form on the page at `url`."""
    match = _CSRF.search(client.get(url).get_data(as_text=True))
    assert match, f"no form with a CSRF token at {url}"
    return match.group(1)


def log_in(client: FlaskClient, username: str, password: str = TEST_PASSWORD, next_url: str | None = None,
           base_url: str = "http://localhost"):
    url = "/login" if next_url is None else f"/login?next={next_url}"
    csrf = _CSRF.search(client.get("/login", base_url=base_url).get_data(as_text=True)).group(1)
    # Over HTTPS Flask-WTF also checks that the form came from this site, as a browser's Referer says.
    return client.post(url, data={"username": username, "password": password, "csrf_token": csrf},
                       base_url=base_url, headers={"Referer": f"{base_url}/login"})


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def fleet(db: psycopg.Connection) -> None:
    register_equipment(db, "EL-1", firm="Firm A", use_unit="Block 1")
    add_user(db, "alice", "firm", firm="Firm A")


@pytest.fixture
def second_app(app: Flask) -> Iterator[Flask]:
    """Another web worker on the same database and settings."""
    other = create_app(app.config["SEMON"])
    other.testing = True
    yield other
    close_pool(other)


# --- login and sessions ---------------------------------------------------------------------------------------

def test_the_login_page_is_chinese_first_and_open_to_anyone(app, fleet):
    response = anonymous(app).get("/login")

    assert response.status_code == 200
    assert "<h1>登录 <small>Sign in</small></h1>" in text(response)


def test_a_right_password_signs_in_and_goes_on_to_the_page_asked_for(app, fleet):
    client = anonymous(app)

    response = log_in(client, "alice", next_url="/hazards")

    assert (response.status_code, response.headers["Location"]) == (302, "/hazards")
    page = client.get("/equipment")
    assert page.status_code == 200
    assert "alice · 维保单位 Maintenance firm" in text(page)


def test_a_page_asked_for_by_nobody_redirects_to_the_login_page_with_the_page_as_next(app, fleet):
    response = anonymous(app).get("/hazards?severity=critical")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/hazards?severity%3Dcritical"


def test_login_never_sends_anyone_to_another_site(app, fleet):
    response = log_in(anonymous(app), "alice", next_url="//evil.example/x")

    assert response.headers["Location"] == "/equipment"


def test_the_session_cookie_is_httponly_and_samesite_lax_and_secure_over_https(app, fleet):
    plain = log_in(anonymous(app), "alice").headers["Set-Cookie"]
    secure = log_in(anonymous(app), "alice", base_url="https://localhost").headers["Set-Cookie"]

    assert plain.startswith("semon_session=") and "HttpOnly" in plain and "SameSite=Lax" in plain
    assert "Secure" not in plain
    assert "Secure" in secure and "HttpOnly" in secure


def test_passwords_are_kept_as_werkzeug_scrypt_hashes(app, db):
    client = app.test_client()
    client.post("/users", data={"username": "bob", "role": "admin", "password": "a long password",
                                "csrf_token": csrf_of(client, "/users")})

    kept = db.execute("SELECT password_hash FROM users WHERE username = 'bob'").fetchone()["password_hash"]
    assert kept.startswith("scrypt:") and "a long password" not in kept


def test_a_wrong_password_or_an_unknown_user_is_refused_with_the_same_words(app, fleet):
    wrong = log_in(anonymous(app), "alice", "not the password")
    unknown = log_in(anonymous(app), "nobody", "not the password")

    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "wrong username or password (用户名或密码错误)" in text(response)
    assert anonymous(app).get("/equipment").status_code == 302


def test_login_failures_are_limited_across_two_web_workers_sharing_the_database(app, second_app, fleet):
    for worker in (app, second_app, app, second_app, app):  # 5 failures, the limit, between two workers
        assert log_in(anonymous(worker), "alice", "wrong guess").status_code == 401

    refused = log_in(anonymous(second_app), "alice")  # the right password, too late

    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "900")
    assert "too many failed logins; try again in 15 minutes" in text(refused)
    assert anonymous(app).get("/equipment").status_code == 302


def test_login_failures_from_one_address_are_limited_whatever_the_names_tried(app, db, fleet):
    app.config["SEMON"] = app.config["SEMON"].replace(web_login_max_failures_per_address=3)
    for name in ("x1", "x2", "x3"):
        assert log_in(anonymous(app), name, "guess").status_code == 401

    assert log_in(anonymous(app), "alice").status_code == 429


def test_a_form_without_its_csrf_token_is_a_400_and_changes_nothing(app, db, fleet):
    add_user(db, "root", "admin")
    client = anonymous(app)
    log_in(client, "root")

    login = anonymous(app).post("/login", data={"username": "alice", "password": TEST_PASSWORD})
    token = client.post("/tokens", data={"name": "script"})
    api_write = client.post("/api/registry/districts", json={"name": "New district"})

    assert (login.status_code, token.status_code, api_write.status_code) == (400, 400, 400)
    assert "The CSRF token is missing." in text(token)
    assert db.execute("SELECT count(*) AS n FROM api_tokens").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM districts WHERE name = 'New district'").fetchone()["n"] == 0


def test_the_same_key_signs_sessions_on_every_worker(app, second_app, fleet):
    client = anonymous(app)
    log_in(client, "alice")
    cookie = client.get_cookie("semon_session")
    other = anonymous(second_app)
    other.set_cookie("semon_session", cookie.value)

    assert other.get("/equipment").status_code == 200


def test_an_idle_session_ends(app, fleet):
    client = anonymous(app)
    log_in(client, "alice")
    with client.session_transaction() as session:
        session[SEEN] = time.time() - 31 * 60  # web_session_idle_minutes is 30

    page = client.get("/equipment")

    assert (page.status_code, page.headers["Location"]) == (302, "/login?next=/equipment")
    assert "signed out after being idle" in text(client.get("/login"))
    assert client.get("/api/equipment").status_code == 401


def test_a_session_in_use_is_not_idle(app, fleet):
    client = anonymous(app)
    log_in(client, "alice")
    with client.session_transaction() as session:
        session[SEEN] = time.time() - 29 * 60

    assert client.get("/equipment").status_code == 200


def test_logout_ends_the_session(app, fleet):
    client = anonymous(app)
    log_in(client, "alice")

    response = client.post("/logout", data={"csrf_token": csrf_of(client, "/tokens")})

    assert response.headers["Location"] == "/login"
    assert client.get("/equipment").status_code == 302


def test_logout_everywhere_ends_every_session_of_the_user_on_every_worker(app, second_app, fleet):
    here, there = anonymous(app), anonymous(second_app)
    log_in(here, "alice")
    log_in(there, "alice")
    bob = signed_in(app, "test-admin")

    here.post("/logout-everywhere", data={"csrf_token": csrf_of(here, "/tokens")})

    assert there.get("/equipment").status_code == 302
    assert here.get("/equipment").status_code == 302
    assert bob.get("/equipment").status_code == 200  # another user's session goes on
    assert log_in(anonymous(app), "alice").status_code == 302  # and alice can sign in again


def test_a_disabled_user_cannot_sign_in_and_its_session_and_tokens_stop(app, db, fleet):
    client = anonymous(app)
    log_in(client, "alice")
    scripted = signed_in(app, "alice")  # a token too
    admin = app.test_client()

    admin.post("/users/alice/disable", data={"csrf_token": csrf_of(admin, "/users")})

    assert client.get("/equipment").status_code == 302
    token = scripted.environ_base["HTTP_AUTHORIZATION"]
    assert anonymous(app).get("/api/equipment", headers={"Authorization": token}).status_code == 401
    refused = log_in(anonymous(app), "alice")
    assert refused.status_code == 401 and "this user is disabled (该用户已停用)" in text(refused)


def test_a_new_password_ends_the_sessions_and_the_old_password(app, fleet):
    client = anonymous(app)
    log_in(client, "alice")
    admin = app.test_client()

    admin.post("/users/alice/reset-password", data={"password": "a new password!",
                                                     "csrf_token": csrf_of(admin, "/users")})

    assert client.get("/equipment").status_code == 302
    assert log_in(anonymous(app), "alice").status_code == 401
    assert log_in(anonymous(app), "alice", "a new password!").status_code == 302


# --- API tokens -----------------------------------------------------------------------------------------------

def make_token(client: FlaskClient, name: str = "script") -> str:
    page = client.post("/tokens", data={"name": name, "csrf_token": csrf_of(client, "/tokens")})
    assert page.status_code == 201
    return re.search(r'<p class="token-once">(semon_[^<]+)</p>', page.get_data(as_text=True)).group(1)


def test_a_token_made_in_the_ui_is_shown_once_kept_hashed_and_reads_the_api_as_its_user(app, db, fleet):
    register_equipment(db, "EL-2", firm="Firm B")
    client = anonymous(app)
    log_in(client, "alice")

    token = make_token(client)

    kept = db.execute("SELECT token_sha256 FROM api_tokens").fetchone()["token_sha256"]
    assert kept == hashlib.sha256(token.encode()).hexdigest()
    assert token not in client.get("/tokens").get_data(as_text=True)
    answer = anonymous(app).get("/api/equipment", headers={"Authorization": f"Bearer {token}"})
    assert [item["code"] for item in answer.get_json()["items"]] == ["EL-1"]


def test_a_revoked_token_is_a_401_in_the_api_error_shape(app, db, fleet):
    client = anonymous(app)
    log_in(client, "alice")
    token = make_token(client)
    token_id = db.execute("SELECT id FROM api_tokens").fetchone()["id"]

    client.post(f"/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(client, "/tokens")})
    answer = anonymous(app).get("/api/equipment", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="semon"'
    assert answer.get_json() == {"error": {"status": 401, "message": "the API token is unknown or revoked, or its "
                                                                     "user is disabled"}}


def test_no_one_revokes_another_users_token(app, db, fleet):
    add_user(db, "carol", "firm", firm="Firm A")
    carol = anonymous(app)
    log_in(carol, "carol")
    token = make_token(carol)
    alice = anonymous(app)
    log_in(alice, "alice")
    token_id = db.execute("SELECT id FROM api_tokens").fetchone()["id"]

    response = alice.post(f"/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(alice, "/tokens")})

    assert response.status_code == 404
    assert anonymous(app).get("/api/equipment", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_api_needs_a_token_and_says_how_to_give_one(app, fleet):
    for headers in ({}, {"Authorization": "Basic YWxpY2U6eA=="}, {"Authorization": "Bearer semon_madeup"}):
        answer = anonymous(app).get("/api/hazards", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.get_json()["error"]["status"] == 401


def test_a_write_with_a_token_needs_no_csrf_token(app, db, fleet):
    answer = app.test_client().post("/api/registry/districts", json={"name": "新区"})

    assert answer.status_code == 201


# --- roles ----------------------------------------------------------------------------------------------------

def test_each_role_is_refused_what_it_may_not_do_with_a_403(app, db, fleet):
    add_user(db, "ivan", "inspector", all_districts=True)
    add_user(db, "una", "use_unit", use_unit="Block 1")
    inspector, firm, unit = signed_in(app, "ivan"), signed_in(app, "alice"), signed_in(app, "una")

    assert inspector.post("/api/registry/districts", json={"name": "X"}).status_code == 403
    assert firm.patch("/api/registry/equipment/EL-1", json={"address": "x"}).status_code == 403
    assert firm.get("/users").status_code == 403
    assert inspector.get("/audit").status_code == 403
    assert unit.get("/compliance").status_code == 403
    assert unit.get("/api/risk").get_json()["error"]["status"] == 403
    assert unit.get("/api/equipment").get_json()["total"] == 1
    assert inspector.get("/api/compliance/due/summary").status_code == 200


def test_an_admin_adds_users_of_each_role_from_the_users_page(app, db, fleet):
    admin = app.test_client()
    csrf = csrf_of(admin, "/users")

    made = admin.post("/users", data={"username": "dora", "role": "inspector", "districts": "Xuhui District",
                                      "password": "long enough pw", "csrf_token": csrf})
    unnamed_firm = admin.post("/users", data={"username": "fred", "role": "firm", "password": "long enough pw",
                                              "csrf_token": csrf})

    assert made.status_code == 302
    assert "dora" in text(admin.get("/users")) and "Xuhui District" in text(admin.get("/users"))
    assert unnamed_firm.status_code == 400
    assert "a firm's user, and only one, names its maintenance firm" in text(unnamed_firm)
    assert log_in(anonymous(app), "dora", "long enough pw").status_code == 302


# --- the audit log --------------------------------------------------------------------------------------------

def test_a_registry_change_is_in_the_audit_log_with_who_before_and_after(app, db, fleet):
    admin = app.test_client()

    assert admin.patch("/api/registry/equipment/EL-1", json={"address": "1 New Rd"}).status_code == 200

    entry = db.execute("SELECT actor, action, target, before, after FROM audit_log"
                       " WHERE action = 'registry.update'").fetchone()
    assert (entry["actor"], entry["target"]) == ("test-admin", "equipment EL-1")
    assert (entry["before"]["address"], entry["after"]["address"]) == ("", "1 New Rd")
    page = text(admin.get("/audit?action=registry.update"))
    assert "equipment EL-1" in page and "1 New Rd" in page


def test_user_and_token_changes_are_in_the_audit_log(app, db, fleet):
    client = anonymous(app)
    log_in(client, "alice")
    make_token(client, "nightly report")
    admin = app.test_client()
    admin.post("/users/alice/disable", data={"csrf_token": csrf_of(admin, "/users")})

    entries = db.execute("SELECT actor, action, target FROM audit_log ORDER BY id").fetchall()
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("alice", "token.create", "token 1 of alice"), ("test-admin", "user.disable", "user alice")]


def test_the_audit_csv_has_a_bom_a_header_and_the_changes_as_json(app, db, fleet):
    admin = app.test_client()
    admin.post("/api/registry/districts", json={"name": "=HYPERLINK(1)"})

    response = admin.get("/api/audit.csv")

    body = response.get_data(as_text=True)
    assert response.mimetype == "text/csv" and body.startswith("\ufeff")
    lines = body.lstrip("\ufeff").splitlines()
    assert lines[0] == "at,actor,action,target,before,after,remote_addr"
    assert lines[1].split(",", 1)[1] == (
        'test-admin,registry.create,districts =HYPERLINK(1),,"{""admin_code"": """", ""authority"": """", '
        '""email"": """", ""equipment_count"": 0, ""name"": ""=HYPERLINK(1)"", ""phone"": """"}",127.0.0.1')


def test_only_an_admin_reads_the_audit_log(app, fleet):
    assert signed_in(app, "alice").get("/api/audit.csv").status_code == 403


# --- the command line -----------------------------------------------------------------------------------------

def run(app: Flask, *args: str, stdin: str | None = None):
    env = {"SEMON_DATABASE_URL": app.config["SEMON"].database_url}
    return CliRunner().invoke(cli, ["users", *args], input=stdin, env=env, catch_exceptions=False)


def test_the_cli_adds_lists_disables_and_resets_users(app, db, fleet):
    added = run(app, "add", "fiona", "--role", "firm", "--firm", "Firm A", "--password-stdin",
                stdin="firm password\n")
    listed = run(app, "list")
    reset = run(app, "reset-password", "fiona", "--password-stdin", stdin="another password\n")
    disabled = run(app, "disable", "fiona")

    assert added.output == "added fiona (firm: Firm A)\n"
    assert "fiona\tfirm\tFirm A\tactive\t" in listed.output
    assert reset.exit_code == 0 and disabled.output == "disabled fiona\n"
    assert log_in(anonymous(app), "fiona", "another password").status_code == 401  # disabled
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE actor LIKE 'cli:%' ORDER BY id")]
    assert actions == ["user.add", "user.reset_password", "user.disable"]


def test_the_cli_says_in_one_line_what_is_wrong(app, fleet):
    result = run(app, "add", "gina", "--role", "firm", "--firm", "No Such Firm", "--password-stdin",
                 stdin="firm password\n")

    assert result.exit_code == 1
    assert result.output == "Error: no maintenance firm named 'No Such Firm' is registered\n"


def test_a_token_made_with_the_cli_works_until_revoked_with_the_cli(app, db, fleet):
    made = run(app, "token-create", "alice", "cron")
    token = made.stdout.strip()
    token_id = db.execute("SELECT id FROM api_tokens").fetchone()["id"]

    before = anonymous(app).get("/api/equipment", headers={"Authorization": f"Bearer {token}"}).status_code
    revoked = run(app, "token-revoke", str(token_id))
    after = anonymous(app).get("/api/equipment", headers={"Authorization": f"Bearer {token}"}).status_code

    assert (before, after) == (200, 401)
    assert revoked.output == f"revoked token {token_id} (cron) of alice\n"


# --- the demo's users -----------------------------------------------------------------------------------------

def test_the_demo_makes_one_user_per_role_and_new_passwords_on_each_run(app, db):
    from semon.demo import demo_users

    register_equipment(db, "EL-1", district="Xuhui District", firm="Firm A", use_unit="Block 1")
    first = demo_users(app.config["SEMON"])
    second = demo_users(app.config["SEMON"])

    assert [(u.username, u.role, u.parties) for u, _ in first] == [
        ("admin", "admin", "all (全部)"), ("inspector", "inspector", "Xuhui District"), ("firm", "firm", "Firm A"),
        ("unit", "use_unit", "Block 1")]
    assert [p for _, p in first] != [p for _, p in second]
    assert log_in(anonymous(app), "firm", second[2][1]).status_code == 302


def test_a_browser_session_writes_the_api_with_the_csrf_token_in_a_header(app, db, fleet):
    add_user(db, "root", "admin")
    client = anonymous(app)
    log_in(client, "root")

    answer = client.post("/api/registry/districts", json={"name": "New district"},
                         headers={"X-CSRFToken": csrf_of(client, "/tokens")})

    assert answer.status_code == 201


def test_the_signing_key_is_made_once_in_the_database_unless_a_setting_gives_it(app, db, fleet):
    log_in(anonymous(app), "alice")
    kept = db.execute("SELECT value FROM web_secrets").fetchall()
    given = create_app(app.config["SEMON"].replace(web_secret_key="s" * 40))
    given.testing = True
    try:
        db.execute("DELETE FROM web_secrets")
        assert log_in(anonymous(given), "alice").status_code == 302
        assert db.execute("SELECT count(*) AS n FROM web_secrets").fetchone()["n"] == 0
    finally:
        close_pool(given)

    assert len(kept) == 1 and len(kept[0]["value"]) == 64
    assert app.secret_key == kept[0]["value"] and given.secret_key == "s" * 40


def test_login_failures_are_limited_across_two_web_processes(config, fleet):
    # Two `semon web` processes, as a deployment behind a load balancer runs them: memory they do not share.
    ports = [free_port(), free_port()]
    env = os.environ | {"SEMON_DATABASE_URL": config.database_url}
    servers = [subprocess.Popen([sys.executable, "-m", "semon.cli", "web", "--host", "127.0.0.1", "--port", str(p)],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for p in ports]

    def attempt(port: int, password: str) -> int:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(f"http://127.0.0.1:{port}/login", timeout=10).read().decode()
        form = urllib.parse.urlencode({"username": "alice", "password": password,
                                       "csrf_token": _CSRF.search(page).group(1)}).encode()
        try:
            return opener.open(f"http://127.0.0.1:{port}/login", data=form, timeout=10).status
        except urllib.error.HTTPError as refused:
            return refused.code

    def answering(port: int) -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200
        except OSError:
            return False

    try:
        for port in ports:
            wait_until(lambda port=port: answering(port), timeout=30, message=f"semon web on port {port}")
        failures = [attempt(ports[i % 2], "wrong guess") for i in range(5)]  # the limit, split between the two

        assert failures == [401] * 5
        assert attempt(ports[1], TEST_PASSWORD) == 429
        assert attempt(ports[0], TEST_PASSWORD) == 429
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)


def test_every_write_route_refuses_a_session_without_its_csrf_token(app, db, fleet):
    # Every route from the url_map, so that a new form cannot be forgotten: an administrator's session, who may do
    # anything, is still refused without the token (the sign-in form, open to anyone, too).
    add_user(db, "root", "admin")
    client = anonymous(app)
    log_in(client, "root")
    before = db.execute("SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM api_tokens) AS tokens,"
                        " (SELECT count(*) FROM districts) AS districts, (SELECT count(*) FROM audit_log) AS audit"
                        ).fetchone()
    writes = [(rule, method) for rule in app.url_map.iter_rules()
              for method in sorted((rule.methods or set()) - {"GET", "HEAD", "OPTIONS"})]
    assert len(writes) >= 10

    for rule, method in writes:
        path = re.sub(r"<(?:[^<>:]+:)?([a-z_]+)>", lambda m: {"kind": "districts"}.get(m.group(1), "1"), rule.rule)
        body = {"json": {"name": "New district"}} if path.startswith("/api/") else {
            "data": {"name": "x", "username": "intruder", "role": "admin", "password": "a long password"}}
        response = client.open(path, method=method, **body)
        assert response.status_code == 400, f"{method} {path}: {response.status_code}"

    after = db.execute("SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM api_tokens) AS tokens,"
                       " (SELECT count(*) FROM districts) AS districts, (SELECT count(*) FROM audit_log) AS audit"
                       ).fetchone()
    assert after == before
