"""The query parameters of every endpoint (docs/api.md): each view declares the ones it takes with `accepts`, and
one check before every request refuses what no view can use — an undeclared or repeated parameter, a NUL, text
longer than any registry name, bad percent-encoding — with a 400 that names the parameter, before the database
sees anything. The views read their values with the parsers below, which carry each value's bounds."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest

from semon.registry.fields import MAX_TEXT

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# No text a filter compares with can be longer than a registry name, so a longer value is a mistake.
MAX_LENGTH = MAX_TEXT
# PostgreSQL's bigint: the largest number a LIMIT or OFFSET (or any integer parameter) can be.
MAX_INTEGER = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# Where a view's declaration is kept, for the check below and for the route walk and docs tests.
DECLARED = "accepted_parameters"

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Param:
    """A declared query parameter; `repeatable` ones may be given more than once (status=a&status=b)."""

    name: str
    repeatable: bool = False


PAGE = (Param("limit"), Param("offset"))


def accepts(*names: str | Param) -> Callable[[View], View]:
    """Declare the query parameters a view takes; any other is a 400 naming it. A view without a declaration takes
    none."""
    parameters = tuple(p if isinstance(p, Param) else Param(p) for p in names)

    def declare(view: View) -> View:
        setattr(view, DECLARED, {p.name: p for p in parameters})
        return view
    return declare


def declared(view: Callable[..., Any]) -> dict[str, Param]:
    """The parameters a view declared, by name (none when it declared nothing)."""
    return getattr(view, DECLARED, {})


def register(app: Flask) -> None:
    """Check every request's parameters and path before its view runs."""
    app.before_request(_check_request)


def shown(value: str, width: int = 40) -> str:
    """A value as an error message quotes it: repr, cut short (a 100 kB value must not make a 100 kB message)."""
    return repr(value if len(value) <= width else value[:width] + "…")


def checked(name: str, value: str, what: str = "parameter") -> str:
    """`value` if it is text a query may carry, else a 400 naming `name`."""
    if "\x00" in value:
        raise BadRequest(f"{what} {name} contains a NUL character")
    if len(value) > MAX_LENGTH:
        raise BadRequest(f"{what} {name} is longer than {MAX_LENGTH} characters ({len(value)})")
    return value


def _raw_parts() -> tuple[bytes, bytes]:
    """(path, query string) as the client sent them, still percent-encoded."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:  # a server that does not keep the raw URI: only the query string is still encoded
        return b"", environ.get("QUERY_STRING", "").encode("latin-1")
    path, _, query = raw.encode("latin-1").partition(b"?")
    return path, query


def _decoded(raw: bytes) -> str | None:
    """Percent-encoded UTF-8 as text; None if it is not that."""
    if _BAD_ESCAPE.search(raw):
        return None
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _query_pairs(query: bytes) -> Iterator[tuple[str, str]]:
    """The (name, value) pairs of a raw query string; a pair that is not percent-encoded UTF-8 is a 400."""
    for pair in query.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.replace(b"+", b" ").partition(b"=")
        name, value = _decoded(raw_name), _decoded(raw_value)
        if name is None:
            raise BadRequest(f"a parameter name ({shown(raw_name.decode('latin-1'))}) is not percent-encoded UTF-8")
        if value is None:
            raise BadRequest(f"parameter {shown(name)} is not percent-encoded UTF-8")
        yield name, value


def _check_request() -> None:
    path, query = _raw_parts()
    if _decoded(path) is None:
        raise BadRequest("the path is not percent-encoded UTF-8")
    pairs = list(_query_pairs(query))
    if request.url_rule is None:  # no such route or method: the 404 or 405 follows
        return
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            checked(name, value, "path segment")
    accepted = declared(current_app.view_functions[request.endpoint])
    unknown = list(dict.fromkeys(name for name, _ in pairs if name not in accepted))
    if unknown:
        takes = ", ".join(accepted) or "no parameters"
        raise BadRequest(f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(shown(n) for n in unknown)} ({request.path} takes {takes})")
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen and not accepted[name].repeatable:
            raise BadRequest(f"parameter {name} is given more than once")
        seen.add(name)
        checked(name, value)


def text(args: Mapping[str, str], name: str) -> str | None:
    """A free-text parameter; empty counts as absent because the HTML filter form sends empty fields."""
    value = checked(name, args.get(name, "")).strip()
    return value or None


def choice(args: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """A parameter that must be one of `choices`, or absent."""
    value = text(args, name)
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {shown(value)}")
    return value


def integer(args: Mapping[str, str], name: str, default: int, minimum: int, maximum: int = MAX_INTEGER) -> int:
    """A whole number (ASCII digits) between `minimum` and `maximum`, or `default` when absent."""
    value = text(args, name)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value):
        raise BadRequest(f"{name} must be a whole number, not {shown(value)}")
    number = int(value)
    if minimum <= number <= maximum:
        return number
    if maximum != MAX_INTEGER:
        bounds = f"between {minimum} and {maximum}"
    else:  # the bigint bound is only worth naming to whoever passes it
        bounds = f"at least {minimum}" if number < minimum else f"at most {maximum}"
    raise BadRequest(f"{name} must be {bounds}, not {number}")


def page(args: Mapping[str, str]) -> tuple[int, int]:
    """(limit, offset) of a paginated list."""
    return (integer(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT), integer(args, "offset", 0, 0))


def like_pattern(value: str) -> str:
    """An ILIKE pattern matching `value` anywhere, with its own % and _ taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
