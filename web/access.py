"""Who may see what and who may do what (docs/access.md), each in one place:

- which equipment a request may see: current_scope(), from the signed-in user (semon.users.scope_of);
- which role may do which action: PERMISSIONS, and which action each route needs: ROUTES. The sign-in check
  (web/auth.py) refuses a route whose action the user's role lacks before its view runs, so views hold no checks.

Tests may narrow the app further with app.config[SCOPE_CONFIG]: it is intersected with the user's scope, never
widens it."""

from __future__ import annotations

from flask import current_app, g, request

from semon.audit import Actor
from semon.scope import Scope
from semon.users import ADMIN, FIRM, INSPECTOR, USE_UNIT, User, scope_of

SCOPE_CONFIG = "SEMON_SCOPE"

# The actions. Annotating has no route yet: the roles that may do it are named here so that a route added for it only
# has to say which action it is.
VIEW = "view"                          # equipment, alerts, the registry, fault codes: within the scope
VIEW_FIGURES = "view_figures"          # compliance figures and planning lists, the risk ranking: within the scope
EDIT_REGISTRY = "edit_registry"        # create and change registry entries
ACT_ON_ALERTS = "act_on_alerts"        # handle alerts, declare maintenance windows (within the scope)
RECORD_MAINTENANCE = "record_maintenance"
ANNOTATE = "annotate"
MANAGE_USERS = "manage_users"          # users and their passwords, anyone's sessions
VIEW_AUDIT = "view_audit"
MANAGE_ALERTING = "manage_alerting"    # who is told of alerts and when: escalation chains (docs/escalation.md)
OWN_ACCOUNT = "own_account"            # one's own API tokens, signing out everywhere
# A route no entry of ROUTES names: only an administrator may use it until it is given an action.
UNLISTED = "unlisted"

ACTIONS = (VIEW, VIEW_FIGURES, EDIT_REGISTRY, ACT_ON_ALERTS, RECORD_MAINTENANCE, ANNOTATE, MANAGE_USERS,
           VIEW_AUDIT, OWN_ACCOUNT, MANAGE_ALERTING, UNLISTED)

# Which role may do which action. A use unit is not given the figures: they are counted per district, type and
# firm (compliance_daily has no use unit), and the use units' role is to read their own equipment and alerts.
PERMISSIONS: dict[str, frozenset[str]] = {
    ADMIN: frozenset(ACTIONS),
    INSPECTOR: frozenset({VIEW, VIEW_FIGURES, ANNOTATE, OWN_ACCOUNT}),
    FIRM: frozenset({VIEW, VIEW_FIGURES, ACT_ON_ALERTS, RECORD_MAINTENANCE, OWN_ACCOUNT}),
    USE_UNIT: frozenset({VIEW, OWN_ACCOUNT}),
}

READ, WRITE = "read", "write"
# The action each route needs, by its blueprint and whether the method reads (GET, HEAD) or writes.
ROUTES: dict[tuple[str, str], str] = {
    ("equipment", READ): VIEW,
    ("hazards", READ): VIEW,
    ("alerts", READ): VIEW,
    ("alerts", WRITE): ACT_ON_ALERTS,       # and the alert's equipment within the scope (alerts/handling.py)
    ("silences", READ): VIEW,
    ("silences", WRITE): ACT_ON_ALERTS,     # maintenance windows: within the scope (alerts/silences.py)
    ("equipment", WRITE): RECORD_MAINTENANCE,  # a visit or inspection of an equipment within the scope
    ("registry", READ): VIEW,
    ("faultcodes", READ): VIEW,
    ("compliance", READ): VIEW_FIGURES,
    ("risk", READ): VIEW_FIGURES,
    ("ratings", READ): VIEW_FIGURES,   # firm ratings: within the scope, not a use unit's (docs/ratings.md)
    ("registry", WRITE): EDIT_REGISTRY,
    # Contacts hold addresses and secrets of every party, and routes decide who is told: administrators only.
    ("contacts", READ): EDIT_REGISTRY,
    ("contacts", WRITE): EDIT_REGISTRY,
    ("users", READ): MANAGE_USERS,
    ("users", WRITE): MANAGE_USERS,
    ("audit", READ): VIEW_AUDIT,
    ("tokens", READ): OWN_ACCOUNT,
    ("tokens", WRITE): OWN_ACCOUNT,
    ("auth", WRITE): OWN_ACCOUNT,   # signing out, here or everywhere
    ("escalation", READ): MANAGE_ALERTING,
    ("escalation", WRITE): MANAGE_ALERTING,
}


def action_of(endpoint: str | None, method: str) -> str:
    """The action a request to `endpoint` with `method` needs (UNLISTED for a route ROUTES does not name)."""
    blueprint = (endpoint or "").rpartition(".")[0]
    return ROUTES.get((blueprint, READ if method in ("GET", "HEAD", "OPTIONS") else WRITE), UNLISTED)


def may(role: str, action: str) -> bool:
    """Whether `role` may do `action`."""
    return action in PERMISSIONS.get(role, frozenset())


def current_user() -> User | None:
    """The user this request is signed in as (by session or API token), set by web/auth.py; None if nobody."""
    return g.get("semon_user")


def current_scope() -> Scope:
    """The equipment this request may see: the signed-in user's scope (nothing for nobody), narrowed further by
    app.config["SEMON_SCOPE"] when set."""
    user = current_user()
    scope = Scope.nothing() if user is None else scope_of(user)
    narrower = current_app.config.get(SCOPE_CONFIG)
    if narrower is None:
        return scope
    if not isinstance(narrower, Scope):  # never widen on a misconfiguration
        raise TypeError(f"app.config[{SCOPE_CONFIG!r}] must be a semon.scope.Scope, not {type(narrower).__name__}")
    return scope & narrower


def actor() -> Actor:
    """Who makes this request's changes, for the audit log."""
    user = current_user()
    if user is None:  # the sign-in check lets no change through without a user
        raise RuntimeError("a change was made with nobody signed in")
    return Actor(user.id, user.username, request.remote_addr or "")
