"""How busy a site is by local hour of day, day of the week and season; shared by the models so that a hospital
feels like one (docs/simulate.md)."""

from __future__ import annotations

import math
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

# How busy each local day of the week is against an ordinary weekday, Monday first: offices and factories empty at
# weekends, malls and hotels fill, hospitals keep their wards but not their clinics, homes are busier all day.
WEEKLY: dict[str, tuple[float, ...]] = {
    "office": (1.0, 1.0, 1.0, 1.0, 0.95, 0.3, 0.2),
    "residential": (1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.1),
    "hospital": (1.05, 1.0, 1.0, 1.0, 1.0, 0.65, 0.55),
    "mall": (0.8, 0.75, 0.75, 0.8, 0.95, 1.4, 1.35),
    "hotel": (0.85, 0.85, 0.9, 0.9, 1.05, 1.25, 1.0),
    "factory": (1.0, 1.0, 1.0, 1.0, 1.0, 0.55, 0.2),
}

# How far a site's heat demand swings with the seasons, peaking in mid-January: space heating dominates in homes,
# hotels, hospitals, offices and malls; a factory's process steam hardly follows the weather.
HEATING_SWING: dict[str, float] = {
    "office": 0.3, "residential": 0.35, "hospital": 0.25, "mall": 0.3, "hotel": 0.25, "factory": 0.08,
}
_COLDEST_DAY_OF_YEAR = 15


def calls_per_hour(kind: str, hour: float, weekday: int = 0) -> float:
    """Expected elevator calls per hour at a local hour of day on a local weekday (0: Monday)."""
    return TRAFFIC[kind][int(hour) % 24] * WEEKLY[kind][weekday]


def activity(kind: str, hour: float, weekday: int = 0) -> float:
    """How busy the site is at a local hour of a weekday (0: Monday), from 0 (empty) to 1 (its busiest hour of the
    week)."""
    profile, weekly = TRAFFIC[kind], WEEKLY[kind]
    return profile[int(hour) % 24] * weekly[weekday] / (max(profile) * max(weekly))


def heat_demand_factor(kind: str, day_of_year: int) -> float:
    """The season's multiplier of a site's heat demand on a local day of the year: above 1 in winter, below in
    summer."""
    return 1.0 + HEATING_SWING[kind] * math.cos(2 * math.pi * (day_of_year - _COLDEST_DAY_OF_YEAR) / 365.25)


def expected_calls(kind: str, since: datetime, until: datetime, tz: timezone) -> float:
    """Expected elevator calls between two moments, integrating the hourly profile on the local clock."""
    return max(0.0, _cumulative(kind, until, tz) - _cumulative(kind, since, tz))


def _cumulative(kind: str, moment: datetime, tz: timezone) -> float:
    profile, weekly = TRAFFIC[kind], WEEKLY[kind]
    local = moment.astimezone(tz)
    weeks, weekday = divmod(local.toordinal() - 1, 7)  # day 1 of year 1 was a Monday
    fraction = (local.minute * 60 + local.second + local.microsecond / 1e6) / 3600
    today = sum(profile[:local.hour]) + profile[local.hour] * fraction
    return (weeks * sum(weekly) + sum(weekly[:weekday])) * sum(profile) + weekly[weekday] * today
