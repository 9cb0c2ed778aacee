"""How busy a site is by local hour of day; shared by the models so that a hospital feels like one."""

from __future__ import annotations

from datetime import datetime, timezone

# Elevator calls per hour, by local hour, for a car of average busyness.
TRAFFIC: dict[str, tuple[float, ...]] = {
    "office": (1, 1, 0, 0, 0, 1, 4, 30, 60, 35, 20, 25, 45, 35, 20, 20, 25, 50, 45, 15, 8, 5, 3, 2),
    "residential": (3, 1, 1, 1, 1, 3, 12, 40, 35, 15, 10, 10, 15, 12, 10, 12, 18, 30, 40, 35, 25, 18, 10, 5),
    "hospital": (5, 4, 3, 3, 4, 6, 15, 40, 55, 60, 55, 50, 45, 50, 55, 50, 40, 35, 25, 20, 15, 10, 8, 6),
    "mall": (0, 0, 0, 0, 0, 0, 0, 2, 5, 15, 30, 40, 45, 40, 35, 35, 40, 45, 50, 50, 40, 25, 5, 0),
    "hotel": (6, 4, 2, 2, 2, 4, 12, 30, 35, 25, 18, 15, 18, 15, 15, 18, 22, 25, 28, 30, 28, 22, 15, 10),
    "factory": (2, 1, 1, 1, 1, 2, 8, 25, 30, 20, 18, 18, 25, 18, 18, 18, 25, 25, 10, 6, 4, 3, 2, 2),
}


def calls_per_hour(kind: str, hour: float) -> float:
    """Expected elevator calls per hour at a local hour of day."""
    return TRAFFIC[kind][int(hour) % 24]


def activity(kind: str, hour: float) -> float:
    """How busy the site is at a local hour, from 0 (empty) to 1 (its busiest hour)."""
    profile = TRAFFIC[kind]
    return profile[int(hour) % 24] / max(profile)


def expected_calls(kind: str, since: datetime, until: datetime, tz: timezone) -> float:
    """Expected elevator calls between two moments, integrating the hourly profile on the local clock."""
    return max(0.0, _cumulative(kind, until, tz) - _cumulative(kind, since, tz))


def _cumulative(kind: str, moment: datetime, tz: timezone) -> float:
    profile = TRAFFIC[kind]
    local = moment.astimezone(tz)
    fraction = (local.minute * 60 + local.second + local.microsecond / 1e6) / 3600
    return local.toordinal() * sum(profile) + sum(profile[:local.hour]) + profile[local.hour] * fraction
