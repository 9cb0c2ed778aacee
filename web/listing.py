"""Filtered, paginated listings (docs/web.md): each query parameter declared once (how it parses, what it is
compared with), the WHERE clause and parameters they make with the request's scope, the count and page queries,
the links to the previous and next pages, and the district and firm choices of a filter form."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import url_for
from werkzeug.exceptions import BadRequest

from semon.scope import Scope, equipment_condition, related_condition
from web import params
from web.db import fetch_all, fetch_one

Condition = tuple[str, dict[str, Any]]

# The filters that name a registry entry: kind -> (table, what it is called, equipment's column referring to it).
NAMED = {"district": ("districts", "district", "district_id"),
         "firm": ("maintenance_firms", "maintenance firm", "firm_id")}


def named_id(kind: str, name: str | None, scope: Scope) -> int | None:
    """The id of the district or firm named (None for no name); one unknown, or outside the scope, is a 400, the
    same on every endpoint."""
    if name is None:
        return None
    table, what, column = NAMED[kind]
    related, scoped = related_condition(scope, "t", column)
    row = fetch_one(f"SELECT t.id FROM {table} t WHERE t.name = %(name)s{related}", {"name": name} | scoped)
    if row is None:
        # A typo must not give an empty list (or planning file) that looks like "nothing to do".
        raise BadRequest(f"no {what} named {params.shown(name)}")
    return row["id"]


@dataclass(frozen=True)
class Filter:
    """One query parameter: free text, or one of `choices` (else a 400); compared for equality with the SQL
    expression `column`, or turned into a condition of its own by `condition(value)`. A `named` filter names a
    registry entry (a key of NAMED) that must exist within the scope; `absent` is the condition when not given."""

    name: str
    column: str | None = None
    choices: tuple[str, ...] | None = None
    condition: Callable[[str], Condition] | None = None
    named: str | None = None
    absent: Condition | None = None

    def parse(self, args: Mapping[str, str]) -> str | None:
        """The parameter's value, None when absent or empty; a value not among the choices is a 400."""
        if self.choices is not None:
            return params.choice(args, self.name, self.choices)
        return params.text(args, self.name)

    def where(self, value: str) -> Condition:
        """The SQL condition for `value` and its parameters."""
        if self.condition is not None:
            return self.condition(value)
        return f"{self.column or self.name} = %({self.name})s", {self.name: value}


def search(name: str, *columns: str) -> Filter:
    """A text parameter found anywhere in any of `columns`, ignoring case, its % and _ taken literally."""
    def condition(value: str) -> Condition:
        return "(" + " OR ".join(f"{c} ILIKE %({name})s" for c in columns) + ")", {name: params.like_pattern(value)}
    return Filter(name, condition=condition)


def by_equipment(alias: str) -> Callable[[Scope], Condition]:
    """A listing of equipment (or of rows of one equipment) narrowed on `alias`'s district_id and firm_id."""
    return partial(equipment_condition, alias=alias, prefix="")


def by_related(alias: str, equipment_column: str) -> Callable[[Scope], Condition]:
    """A listing of a registry table narrowed to the rows visible equipment refers to by `equipment_column`."""
    return partial(related_condition, alias=alias, equipment_column=equipment_column, prefix="")


@dataclass(frozen=True)
class Query:
    """A listing's parsed query string: each filter's value (None: not given), limit and offset. Templates read
    a value as an attribute (flt.district)."""

    values: Mapping[str, str | None] = field(default_factory=dict)
    limit: int | None = params.DEFAULT_LIMIT  # None: every row (a CSV export)
    offset: int = 0

    def __getitem__(self, name: str) -> str | None:
        return self.values[name]

    def filters(self) -> dict[str, str]:
        """The query-string arguments of the filters alone (for a CSV of the whole list)."""
        return {k: v for k, v in self.values.items() if v}

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query-string arguments that reproduce this query, with `changes`, for links to other pages of it."""
        current: dict[str, Any] = {**self.values, "offset": self.offset}
        if self.limit != params.DEFAULT_LIMIT:
            current["limit"] = self.limit
        current.update(changes)
        return {k: v for k, v in current.items() if v not in (None, "", 0)}


@dataclass(frozen=True)
class Page:
    """One page of a listing: the query, how many rows match it in all, and this page's rows."""

    query: Query
    total: int
    rows: list[dict[str, Any]]

    def links(self, endpoint: str) -> dict[str, str | None]:
        """prev_url and next_url of the neighbouring pages at `endpoint`, None at either end."""
        q = self.query
        limit = q.limit or len(self.rows)
        prev_url = url_for(endpoint, **q.args(offset=max(q.offset - limit, 0))) if q.offset > 0 else None
        more = q.offset + len(self.rows) < self.total
        return {"prev_url": prev_url, "next_url": url_for(endpoint, **q.args(offset=q.offset + limit)) if more
                else None}

    def template_args(self, endpoint: str) -> dict[str, Any]:
        """What a list page's template and its pager macro take: flt, rows, total, prev_url, next_url."""
        return {"flt": self.query, "rows": self.rows, "total": self.total, **self.links(endpoint)}

    def body(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The API's answer for a list: {"total", "limit", "offset", "items"}."""
        return {"total": self.total, "limit": self.query.limit, "offset": self.query.offset, "items": items}


@dataclass(frozen=True)
class Listing:
    """A listing: the SELECT of its rows (a WHERE is appended), its filters, its order, and how a scope narrows
    it (by_equipment or by_related: every listing must say)."""

    select: str
    filters: tuple[Filter, ...]
    order: str
    narrow: Callable[[Scope], Condition]

    @property
    def parameters(self) -> tuple[params.Param, ...]:
        """The query parameters of a page of the listing (its filters, limit and offset), for params.accepts."""
        return self.filter_parameters + params.PAGE

    @property
    def filter_parameters(self) -> tuple[params.Param, ...]:
        """The query parameters of its filters alone (a CSV of the whole listing)."""
        return tuple(params.Param(f.name) for f in self.filters)

    def parse(self, args: Mapping[str, str], paged: bool = True) -> Query:
        """The query string's filters, limit and offset (with paged=False: every row); a bad value is a 400 naming
        the parameter."""
        values = {f.name: f.parse(args) for f in self.filters}
        if not paged:
            return Query(values, None, 0)
        limit, offset = params.page(args)
        return Query(values, limit, offset)

    def where(self, query: Query, scope: Scope) -> Condition:
        """The WHERE clause (or "") of the query's filters and the scope, and its parameters; a named filter's
        entry unknown within the scope is a 400."""
        for f in self.filters:
            if f.named is not None:
                named_id(f.named, query[f.name], scope)
        conditions = [f.where(query[f.name]) if query[f.name] is not None else f.absent for f in self.filters]
        conditions = [c for c in conditions if c is not None]
        conditions.append(self.narrow(scope))
        values: dict[str, Any] = {}
        for _, extra in conditions:
            values |= extra
        clauses = [sql for sql, _ in conditions if sql]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), values

    def fetch(self, query: Query, scope: Scope, values: Mapping[str, Any] | None = None) -> Page:
        """The total matching and the requested page, in the listing's order; `values` are the SELECT's own
        parameters."""
        where, filter_values = self.where(query, scope)
        bound = {**(values or {}), **filter_values}
        total = fetch_one(f"SELECT count(*) AS n FROM ({self.select}{where}) matching", bound)
        rows = fetch_all(f"{self.select}{where} ORDER BY {self.order} LIMIT %(limit)s OFFSET %(offset)s",
                         bound | {"limit": query.limit, "offset": query.offset})
        return Page(query, total["n"] if total else 0, rows)


def names(table: str, equipment_column: str, scope: Scope) -> list[str]:
    """The names in a registry table (districts, maintenance_firms) that the scope's equipment refers to, sorted:
    the choices of a filter form."""
    related, values = related_condition(scope, "t", equipment_column, prefix=" WHERE ")
    return [r["name"] for r in fetch_all(f"SELECT t.name FROM {table} t{related} ORDER BY t.name", values)]


def district_and_firm_choices(scope: Scope) -> dict[str, list[str]]:
    """{"districts", "firms"}: the names a filter form offers, those of the equipment the scope lets through."""
    return {"districts": names("districts", "district_id", scope),
            "firms": names("maintenance_firms", "firm_id", scope)}
