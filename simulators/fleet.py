"""The simulated fleet: equipment generated from a scenario and a seed, and its registry CSV."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

# The column order `semon import-equipment` reads; an empty cell means "not given".
from semon.registry import COLUMNS as REGISTRY_COLUMNS
from semon.registry import add_months
from semon.vocabulary import EQUIPMENT_TYPES
from simulators.scenario import Scenario, Site, equipment_code

# Elevator rated loads by building kind: hospitals need bed lifts, homes rarely more than 1000 kg.
_ELEVATOR_LOADS_KG = {
    "office": (1000, 1050, 1350), "residential": (800, 1000), "hospital": (1000, 1600),
    "mall": (1000, 1350, 1600), "hotel": (1000, 1350), "factory": (1000, 2000),
}
_BOILER_CAPACITIES_TPH = {"hospital": (4.0, 6.0, 10.0), "hotel": (2.0, 4.0), "factory": (4.0, 6.0, 10.0, 20.0)}


@dataclass(frozen=True)
class Equipment:
    """One registry row, plus the site kind that shapes its simulated traffic (not in the registry)."""

    code: str
    type: str
    district: str
    address: str
    use_unit: str
    maintenance_firm: str
    maintenance_firm_phone: str
    install_date: date
    status: str
    last_inspection_on: date
    rated_speed_mps: float | None = None
    rated_load_kg: int | None = None
    floors: int | None = None
    rated_pressure_mpa: float | None = None
    rated_capacity_tph: float | None = None
    site_kind: str = "office"

    def registry_row(self) -> dict[str, str]:
        """The equipment as registry CSV cells."""
        row = {}
        for column in REGISTRY_COLUMNS:
            value = getattr(self, column)
            if value is None:
                row[column] = ""
            elif isinstance(value, date):
                row[column] = value.isoformat()
            elif isinstance(value, float):
                row[column] = f"{value:g}"
            else:
                row[column] = str(value)
        return row


def build_fleet(scenario: Scenario, seed: int, today: date) -> list[Equipment]:
    """The scenario's equipment; the same scenario, seed and day always give the same fleet."""
    rng = random.Random(f"{seed}/fleet")
    fleet = []
    for district in scenario.districts:
        for kind, number in ((k, n) for k in EQUIPMENT_TYPES for n in range(1, district.counts.get(k, 0) + 1)):
            code = equipment_code(kind, district.code, number)
            site = rng.choice([s for s in district.sites if kind in s.hosts])
            firm = rng.choice([f for f in scenario.firms if kind in f.serves])
            if rng.random() < scenario.old_install_share:
                # Old equipment matters: TSG T7001 tightens governor checks after 15 years.
                age_days = rng.randint(15 * 365 + 30, 25 * 365)
            else:
                age_days = rng.randint(2 * 365, 14 * 365)
            if code in scenario.overdue_inspection:
                last_inspection = add_months(today, -rng.randint(13, 19)) - timedelta(days=rng.randint(1, 27))
            else:
                # Up to 355 days ago, so a few fall due within the next days ("due soon").
                last_inspection = today - timedelta(days=rng.randint(10, 355))
            fleet.append(Equipment(
                code=code, type=kind, district=district.name, address=site.address, use_unit=site.use_unit,
                maintenance_firm=firm.name, maintenance_firm_phone=firm.phone,
                install_date=today - timedelta(days=age_days),
                status="suspended" if code in scenario.suspended else "in_use",
                last_inspection_on=last_inspection, site_kind=site.kind,
                **_ratings(kind, site, rng),
            ))
    return fleet


def _ratings(kind: str, site: Site, rng: random.Random) -> dict[str, float | int]:
    if kind == "elevator":
        floors = site.floors
        if floors <= 6:
            speed = 1.0
        elif floors <= 12:
            speed = rng.choice((1.5, 1.6))
        elif floors <= 20:
            speed = rng.choice((1.75, 2.0))
        else:
            speed = rng.choice((2.5, 3.0))
        return {"rated_speed_mps": speed, "rated_load_kg": rng.choice(_ELEVATOR_LOADS_KG[site.kind]),
                "floors": floors}
    if kind == "escalator":
        return {"rated_speed_mps": rng.choice((0.5, 0.5, 0.65))}
    if kind == "boiler":
        capacity = rng.choice(_BOILER_CAPACITIES_TPH.get(site.kind, (2.0, 4.0)))
        pressure = rng.choice((1.0, 1.25)) if capacity <= 4 else rng.choice((1.6, 2.5))
        return {"rated_pressure_mpa": pressure, "rated_capacity_tph": capacity}
    return {"rated_pressure_mpa": rng.choice((0.8, 1.0, 1.6))}


def write_registry_csv(fleet: list[Equipment], path: Path) -> int:
    """Write the fleet as a registry CSV (UTF-8, header row); return the number of equipment rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=REGISTRY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for equipment in fleet:
            writer.writerow(equipment.registry_row())
    return len(fleet)
