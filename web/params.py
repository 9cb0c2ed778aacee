"""Query-string parameters parsed into typed values; a bad value is a 400 that names the parameter."""

from __future__ import annotations

from collections.abc import Mapping

from werkzeug.exceptions import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def text(args: Mapping[str, str], name: str) -> str | None:
    """A free-text parameter; empty counts as absent because the HTML filter form sends empty fields."""
    value = args.get(name, "").strip()
    return value or None


def choice(args: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """A parameter that must be one of `choices`, or absent."""
    value = text(args, name)
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def integer(args: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """A whole-number parameter within bounds, or `default` when absent."""
    value = text(args, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadRequest(f"{name} must be {bounds}, not {number}")
    return number


def page(args: Mapping[str, str]) -> tuple[int, int]:
    """(limit, offset) of a paginated list."""
    return (integer(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT), integer(args, "offset", 0, 0))


def like_pattern(value: str) -> str:
    """An ILIKE pattern matching `value` anywhere, with its own % and _ taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
