"""Scope: which equipment a user may see, and the one SQL condition that narrows a query to it (docs/web.md).

The rule: an equipment is visible when it is in one of the scope's districts (if the scope names districts) AND
maintained by one of its firms (if it names firms) AND used by one of its use units (if it names use units). Within
one list any member will do; across the lists each must hold, so a scope of firms {A} and districts {X} is firm A's
equipment in district X. A list left None does not narrow; an empty one lets nothing through. Scope.everything()
names none and narrows nothing.

An equipment has several parties (its district, its maintenance firm, its use unit), and each party has many
equipment: a user's scope names the parties it belongs to (semon.users.scope_of, docs/access.md). A role that is a
union of unrelated grants would be a list of scopes, OR-ed, should one ever be needed.

Rows narrowed by use unit must carry use_unit_id; the daily figures (compliance_daily) do not, which is one reason
the use units' role is not given the figures (docs/access.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Parameter names the condition uses; no query of semon uses them for anything else.
_DISTRICTS_PARAM = "scope_district_ids"
_FIRMS_PARAM = "scope_firm_ids"
_USE_UNITS_PARAM = "scope_use_unit_ids"


@dataclass(frozen=True)
class Scope:
    """The districts, maintenance firms and use units whose equipment a user may see; None: not narrowed by that."""

    district_ids: frozenset[int] | None = None
    firm_ids: frozenset[int] | None = None
    use_unit_ids: frozenset[int] | None = None

    @classmethod
    def everything(cls) -> Scope:
        """Every equipment: the scope of an administrator and of an inspector of every district."""
        return cls()

    @classmethod
    def nothing(cls) -> Scope:
        """No equipment at all: the scope of a request nobody is signed in to."""
        return cls(district_ids=frozenset())

    @classmethod
    def of(cls, *, districts: Iterable[int] | None = None, firms: Iterable[int] | None = None,
           use_units: Iterable[int] | None = None) -> Scope:
        """The equipment in any of `districts`, maintained by any of `firms` and used by any of `use_units`
        (None: any)."""
        return cls(*(None if ids is None else frozenset(ids) for ids in (districts, firms, use_units)))

    @property
    def is_everything(self) -> bool:
        """Whether nothing is narrowed."""
        return self.district_ids is None and self.firm_ids is None and self.use_unit_ids is None

    def __and__(self, other: Scope) -> Scope:
        """The equipment both scopes let through."""
        def both(mine: frozenset[int] | None, theirs: frozenset[int] | None) -> frozenset[int] | None:
            return theirs if mine is None else mine if theirs is None else mine & theirs

        return Scope(both(self.district_ids, other.district_ids), both(self.firm_ids, other.firm_ids),
                     both(self.use_unit_ids, other.use_unit_ids))


def equipment_condition(scope: Scope, alias: str = "e", *, prefix: str = " AND ") -> tuple[str, dict[str, Any]]:
    """(SQL, parameters) narrowing rows of `alias` (equipment, or any row with district_id and firm_id columns, and
    use_unit_id when the scope names use units) to the scope, `prefix` first; ("", {}) for everything, so that the
    query is the one it would be without scope."""
    if scope.is_everything:
        return "", {}
    conditions, values = [], {}
    if scope.district_ids is not None:
        conditions.append(f"{alias}.district_id = ANY(%({_DISTRICTS_PARAM})s)")
        values[_DISTRICTS_PARAM] = sorted(scope.district_ids)
    if scope.firm_ids is not None:
        conditions.append(f"{alias}.firm_id = ANY(%({_FIRMS_PARAM})s)")
        values[_FIRMS_PARAM] = sorted(scope.firm_ids)
    if scope.use_unit_ids is not None:
        conditions.append(f"{alias}.use_unit_id = ANY(%({_USE_UNITS_PARAM})s)")
        values[_USE_UNITS_PARAM] = sorted(scope.use_unit_ids)
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
