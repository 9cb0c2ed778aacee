"""Who may see what: the request's scope (semon/scope.py), from one function, so that roles are added in one place.

There are no users yet: every request sees everything. Tests narrow the app with app.config[SCOPE_CONFIG]."""

from __future__ import annotations

from flask import current_app

from semon.scope import Scope

SCOPE_CONFIG = "SEMON_SCOPE"


def current_scope() -> Scope:
    """The equipment this request may see: app.config["SEMON_SCOPE"] when set, else everything."""
    scope = current_app.config.get(SCOPE_CONFIG)
    if scope is None:
        return Scope.everything()
    if not isinstance(scope, Scope):  # never widen to everything on a misconfiguration
        raise TypeError(f"app.config[{SCOPE_CONFIG!r}] must be a semon.scope.Scope, not {type(scope).__name__}")
    return scope
