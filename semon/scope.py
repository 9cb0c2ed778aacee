"""Scope: which equipment a user may see, and the one SQL condition that narrows a query to it (docs/web.md).

The rule: an equipment is visible when it is in one of the scope's districts (if the scope names districts) AND
maintained by one of its firms (if it names firms). Within one list any member will do; across the two lists
both must hold, so a scope of firms {A} and districts {X} is firm A's equipment in district X. A list left None
does not narrow; an empty one lets nothing through. Scope.everything() names neither and narrows nothing.

A user with several roles (an inspector of two districts, a firm with three branches) is one scope with several
ids; a role that is a union of unrelated grants would be a list of scopes, OR-ed, should one ever be needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Parameter names the condition uses; no query of semon uses them for anything else.
_DISTRICTS_PARAM = "scope_district_ids"
_FIRMS_PARAM = "scope_firm_ids"


@dataclass(frozen=True)
class Scope:
    """The districts and maintenance firms whose equipment a user may see; None: not narrowed by that."""

    district_ids: frozenset[int] | None = None
    firm_ids: frozenset[int] | None = None

    @classmethod
    def everything(cls) -> Scope:
        """Every equipment: the scope of a regulator, and of every request until roles exist."""
        return cls()

    @classmethod
    def of(cls, *, districts: Iterable[int] | None = None, firms: Iterable[int] | None = None) -> Scope:
        """The equipment in any of `districts` and maintained by any of `firms` (None: any)."""
        return cls(None if districts is None else frozenset(districts), None if firms is None else frozenset(firms))

    @property
    def is_everything(self) -> bool:
        """Whether nothing is narrowed."""
        return self.district_ids is None and self.firm_ids is None


def equipment_condition(scope: Scope, alias: str = "e", *, prefix: str = " AND ") -> tuple[str, dict[str, Any]]:
    """(SQL, parameters) narrowing rows of `alias` (equipment, or any row with district_id and firm_id columns) to
    the scope, `prefix` first; ("", {}) for everything, so that the query is the one it would be without scope."""
    if scope.is_everything:
        return "", {}
    conditions, values = [], {}
    if scope.district_ids is not None:
        conditions.append(f"{alias}.district_id = ANY(%({_DISTRICTS_PARAM})s)")
        values[_DISTRICTS_PARAM] = sorted(scope.district_ids)
    if scope.firm_ids is not None:
        conditions.append(f"{alias}.firm_id = ANY(%({_FIRMS_PARAM})s)")
        values[_FIRMS_PARAM] = sorted(scope.firm_ids)
    return prefix + "(" + " AND ".join(conditions) + ")", values


def related_condition(scope: Scope, alias: str, equipment_column: str, *,
                      prefix: str = " AND ") -> tuple[str, dict[str, Any]]:
    """(SQL, parameters) narrowing rows of a registry table `alias` (districts, firms, use units) to those that
    visible equipment refers to by `equipment_column`; ("", {}) for everything."""
    condition, values = equipment_condition(scope, "scoped")
    if not condition:
        return "", {}
    return (f"{prefix}EXISTS (SELECT FROM equipment scoped WHERE scoped.{equipment_column} = {alias}.id"
            f"{condition})"), values
