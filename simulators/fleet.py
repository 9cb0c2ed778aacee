"""The simulated fleet: equipment generated from a scenario and a seed, its registry CSV, and the inspection and
maintenance records CSV (its history) written next to it."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

from models.compliance import Rule, add_months, next_due, rule_index, rules_from_config

# The column order `semon import-equipment` reads; an empty cell means "not given".
from semon.registry.fields import COLUMNS as REGISTRY_COLUMNS
from semon.registry.fields import DEFECT_SEPARATOR, RECORD_COLUMNS
from semon.vocabulary import EQUIPMENT_TYPES
from simulators.scenario import Scenario, Site, equipment_code

# Elevator rated loads by building kind: hospitals need bed lifts, homes rarely more than 1000 kg.
_ELEVATOR_LOADS_KG = {
    "office": (1000, 1050, 1350), "residential": (800, 1000), "hospital": (1000, 1600),
    "mall": (1000, 1350, 1600), "hotel": (1000, 1350), "factory": (1000, 2000),
}
_BOILER_CAPACITIES_TPH = {"hospital": (4.0, 6.0, 10.0), "hotel": (2.0, 4.0), "factory": (4.0, 6.0, 10.0, 20.0)}

# TSG T5002: elevators and escalators are maintained at least every 15 days.
MAINTAINED_TYPES = ("elevator", "escalator")
# Maintenance history is kept for this window before the last visit: a year of visits is enough for the
# compliance rules, and the load fleet's file stays in the tens of megabytes.
MAINTENANCE_WINDOW_DAYS = 365
_INSTITUTES = {"elevator": "Special Equipment Inspection Institute",
               "escalator": "Special Equipment Inspection Institute",
               "boiler": "Boiler and Pressure Vessel Inspection Institute",
               "pressure_vessel": "Boiler and Pressure Vessel Inspection Institute"}
_INSPECTORS = ("Wang Lei", "Li Na", "Zhang Wei", "Liu Yang", "Chen Jing", "Zhao Min", "Huang Tao", "Zhou Qiang")
_TECHNICIANS = ("Sun Hao", "Ma Jun", "Zhu Gang", "Hu Bin", "Guo Peng", "He Ming", "Lin Feng", "Luo Yong",
                "Gao Jian", "Xu Kai")
_DEFECTS = {
    "elevator": ("door lock contact worn", "car door gap over 6 mm", "brake lining worn", "emergency lighting failed",
                 "levelling error over 10 mm", "buffer oil level low", "alarm bell inaudible at duty room",
                 "machine room ventilation insufficient"),
    "escalator": ("comb plate teeth broken", "handrail speed deviation over 2 %", "step to skirt gap over 4 mm",
                  "skirt deflector brush missing", "emergency stop label missing"),
    "boiler": ("water level gauge glass fouled", "safety valve test lever seized", "scale over 1 mm in drum",
               "pressure gauge past verification date", "blowdown valve leaking"),
    "pressure_vessel": ("pressure gauge past verification date", "surface corrosion on shell",
                        "safety valve lead seal missing", "nameplate illegible"),
}
# The other checks each equipment owes (models/compliance.py): who does them, their report prefix, and what a
# pass after rectification found. History is kept for a year before today (at least the latest one), so the
# load fleet's file stays small: one or two records of the rarer checks.
CHECK_WINDOW_DAYS = 365
_OTHER_CHECKS = {
    "governor_calibration": ("Special Equipment Inspection Institute", "XS",
                             ("governor tripping speed out of tolerance", "governor rope groove worn")),
    "rescue_drill": (None, "YJ", ("rescue tools incomplete", "drill response over 30 minutes")),
    "water_quality_test": ("Boiler Water Quality Testing Centre", "SZ",
                           ("feedwater hardness over limit", "boiler water alkalinity low")),
    "safety_valve_calibration": ("Safety Valve Calibration Station", "AF",
                                 ("set pressure out of tolerance", "valve seat leaking")),
    "pressure_gauge_verification": ("Metrology Verification Institute", "YL",
                                    ("gauge pointer does not return to zero", "gauge dial illegible")),
}
# The last periodic inspection is a pass (with or without rectification): a failed one would have stopped the
# equipment. Earlier ones sometimes failed and were re-inspected weeks later.
_RESULT_WEIGHTS = (("pass", 0.85), ("pass_after_rectification", 0.12), ("fail", 0.03))


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
    commissioning_date: date | None = None
    # Not registry columns: where the generated history ends and the seed it is drawn with.
    last_maintenance_on: date | None = None
    history_seed: int = 0

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
    # Histories draw from their own stream, so that adding them left every fleet as it was before.
    history_rng = random.Random(f"{seed}/history")
    maintenance_overdue = _maintenance_overdue(scenario, history_rng)
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
            interval = _inspection_months(kind)
            if code in scenario.overdue_inspection:
                # One to seven months past due (13-19 months for a yearly inspection).
                months_ago = interval + rng.randint(1, 7)
                last_inspection = add_months(today, -months_ago) - timedelta(days=rng.randint(1, 27))
                # A vessel six years past its inspection must have been commissioned (at most 90 days after
                # installation) before it; yearly-inspected equipment, at least two years old, always was.
                age_days = max(age_days, (today - last_inspection).days + 91)
            else:
                # Up to 355 days ago, so a few fall due within the next days ("due soon").
                last_inspection = today - timedelta(days=rng.randint(10, 355))
            status = "suspended" if code in scenario.suspended else "in_use"
            install = today - timedelta(days=age_days)
            fleet.append(Equipment(
                code=code, type=kind, district=district.name, address=site.address, use_unit=site.use_unit,
                maintenance_firm=firm.name, maintenance_firm_phone=firm.phone,
                install_date=install, status=status,
                last_inspection_on=last_inspection, site_kind=site.kind,
                # Installation, then the acceptance inspection, then the use registration: weeks to months.
                commissioning_date=install + timedelta(days=history_rng.randint(20, 90)),
                last_maintenance_on=_last_maintenance(kind, status, code in maintenance_overdue, today, history_rng),
                history_seed=history_rng.getrandbits(32),
                **_ratings(kind, site, rng),
            ))
    return fleet


_DEFAULT_RULES = rule_index()  # the default intervals, which `semon import-records` applies unless configured


def _inspection_months(kind: str) -> int:
    return _DEFAULT_RULES[(kind, "periodic_inspection")].months


def _maintenance_overdue(scenario: Scenario, rng: random.Random) -> set[str]:
    """A few in-use elevators and escalators (3 %, at least 2) whose last maintenance visit is overdue."""
    eligible = [code for code, kind in scenario.equipment_codes().items()
                if kind in MAINTAINED_TYPES and code not in scenario.suspended]
    return set(rng.sample(eligible, min(len(eligible), max(2, round(0.03 * len(eligible))))))


def _last_maintenance(kind: str, status: str, overdue: bool, today: date, rng: random.Random) -> date | None:
    if kind not in MAINTAINED_TYPES:
        return None
    if status != "in_use":
        return today - timedelta(days=rng.randint(30, 180))  # visits stopped when it was taken out of use
    if overdue:
        return today - timedelta(days=rng.randint(17, 45))
    return today - timedelta(days=rng.randint(0, 14))  # next visit due within 15 days: in date


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


def write_registry_csv(fleet: list[Equipment], path: Path, today: date | None = None, records: bool = True) -> int:
    """Write the fleet as a registry CSV (UTF-8, header row) and, unless told not to, its records CSV next to it
    (`records_path`); `today` is the day the fleet was built for. Returns the number of equipment rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=REGISTRY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for equipment in fleet:
            writer.writerow(equipment.registry_row())
    if records:
        write_records_csv(fleet, records_path(path), today or date.today())
    return len(fleet)


@dataclass(frozen=True)
class Record:
    """One row of the records CSV: an inspection, test or maintenance visit."""

    code: str
    check: str
    date: date
    result: str
    organisation: str
    person: str
    report_number: str
    defects: str = ""

    def csv_row(self) -> dict[str, str]:
        return {"code": self.code, "check": self.check, "date": self.date.isoformat(), "result": self.result,
                "organisation": self.organisation, "person": self.person, "report_number": self.report_number,
                "defects": self.defects}


def equipment_records(equipment: Equipment, today: date) -> list[Record]:
    """The equipment's inspections over its life and its maintenance visits over the last year, by date."""
    rng = random.Random(f"{equipment.history_seed}/{equipment.code}")
    commissioned = equipment.commissioning_date or equipment.install_date
    records = _periodic_inspections(equipment, commissioned, rng)
    if equipment.type == "boiler":
        records += _internal_inspections(equipment, commissioned, today, rng)
    if equipment.last_maintenance_on is not None:
        records += _maintenance_visits(equipment, equipment.last_maintenance_on, commissioned, rng)
    if equipment.status == "in_use":
        # From their own stream: the inspections and visits above are those drawn before these checks existed.
        checks_rng = random.Random(f"{equipment.history_seed}/{equipment.code}/checks")
        for rule in _rules():
            if rule.equipment_type == equipment.type and rule.check_name in _OTHER_CHECKS:
                records += _other_checks(equipment, rule, commissioned, today, checks_rng)
    return sorted(records, key=lambda r: (r.date, r.check))


def _periodic_inspections(equipment: Equipment, commissioned: date, rng: random.Random) -> list[Record]:
    months = _inspection_months(equipment.type)
    # Backwards from the registry's last inspection, each one done up to 20 days before it fell due.
    dates = [equipment.last_inspection_on]
    while (earlier := add_months(dates[-1], -months) + timedelta(days=rng.randint(0, 20))) > commissioned:
        dates.append(earlier)
    if equipment.type == "pressure_vessel":
        # TSG 21: the first inspection within 3 years of commissioning, even when the cycle is 6 years.
        first = add_months(commissioned, _DEFAULT_RULES[("pressure_vessel", "periodic_inspection")].first_months)
        if dates[-1] > first:
            dates.append(first - timedelta(days=rng.randint(5, 60)))
    records = []
    institute = _INSTITUTES[equipment.type]
    for day in reversed(dates):
        last = day == equipment.last_inspection_on
        result = _result(rng, can_fail=not last)
        defects = _defects(equipment.type, rng) if result != "pass" else ""
        records.append(Record(equipment.code, "periodic_inspection", day, result, institute, rng.choice(_INSPECTORS),
                              f"DJ-{day:%Y%m%d}-{equipment.code}", defects))
        if result == "fail":
            again = day + timedelta(days=rng.randint(14, 40))
            records.append(Record(equipment.code, "periodic_inspection", again, "pass_after_rectification",
                                  institute, rng.choice(_INSPECTORS), f"FJ-{again:%Y%m%d}-{equipment.code}",
                                  defects))
    return records


def _internal_inspections(equipment: Equipment, commissioned: date, today: date, rng: random.Random) -> list[Record]:
    # TSG 11: the first internal inspection one year after start-up, then every two years.
    records = []
    day = add_months(commissioned, 12) - timedelta(days=rng.randint(0, 30))
    while day < today:
        result = _result(rng, can_fail=False)
        records.append(Record(equipment.code, "internal_inspection", day, result, _INSTITUTES["boiler"],
                              rng.choice(_INSPECTORS), f"NJ-{day:%Y%m%d}-{equipment.code}",
                              _defects("boiler", rng) if result != "pass" else ""))
        day = add_months(day, 24) - timedelta(days=rng.randint(0, 20))
    return records


def _maintenance_visits(equipment: Equipment, last: date, commissioned: date, rng: random.Random) -> list[Record]:
    technician = rng.choice(_TECHNICIANS)  # a lift usually has its own technician
    start = max(commissioned, last - timedelta(days=MAINTENANCE_WINDOW_DAYS))
    records = []
    day = last
    while day >= start:
        fixed = rng.random() < 0.05
        person = technician if rng.random() < 0.9 else rng.choice(_TECHNICIANS)
        records.append(Record(equipment.code, "maintenance", day, "pass_after_rectification" if fixed else "pass",
                              equipment.maintenance_firm, person, f"WB-{day:%Y%m%d}-{equipment.code}",
                              _defects(equipment.type, rng, most=1) if fixed else ""))
        day -= timedelta(days=rng.randint(12, 15))  # never more than 15 days apart: all in date
    return records


@cache
def _rules() -> tuple[Rule, ...]:
    return rules_from_config()


def _due(rule: Rule, equipment: Equipment, day: date) -> date:
    """When the check passed on `day` falls due again: the compliance rules' due date (models.compliance)."""
    due = next_due(_DEFAULT_RULES, rule.check_name, {"type": equipment.type, "install_date": equipment.install_date,
                                                     "commissioning_date": equipment.commissioning_date}, day)
    assert due is not None
    return due


def _months(rule: Rule, equipment: Equipment, day: date) -> int:
    """The interval in months that applies to a check passed on `day` (an old governor's is shorter)."""
    due = _due(rule, equipment, day) - timedelta(days=rule.days)
    return (due.year - day.year) * 12 + due.month - day.month


def _other_checks(equipment: Equipment, rule: Rule, commissioned: date, today: date,
                  rng: random.Random) -> list[Record]:
    """The check's records over the last CHECK_WINDOW_DAYS (at least the latest), each done a little before it
    fell due, the latest in date today."""
    # The latest: some time within the last interval (not before commissioning), so that it is due on or after
    # today; a few fall due within the next days ("due soon").
    span = min((today - commissioned).days, (_due(rule, equipment, today) - today).days)
    day = today - timedelta(days=rng.randint(1, max(1, span - 1)))
    while _due(rule, equipment, day) < today:
        day += timedelta(days=1)
    dates = [day]
    # Backwards, each done up to 20 days before the next one fell due.
    while True:
        jitter = timedelta(days=rng.randint(0, 20) - rule.days)
        earlier = add_months(dates[-1], -rule.months) + jitter
        if _months(rule, equipment, earlier) != rule.months:
            earlier = add_months(dates[-1], -_months(rule, equipment, earlier)) + jitter
        while _due(rule, equipment, earlier) < dates[-1]:
            earlier += timedelta(days=1)
        if earlier <= commissioned or (today - earlier).days > CHECK_WINDOW_DAYS:
            break
        dates.append(earlier)
    organisation, prefix, defects = _OTHER_CHECKS[rule.check_name]
    records = []
    for day in reversed(dates):
        result = _result(rng, can_fail=False)
        person = rng.choice(_TECHNICIANS if organisation is None else _INSPECTORS)
        records.append(Record(equipment.code, rule.check_name, day, result, organisation or equipment.maintenance_firm,
                              person, f"{prefix}-{day:%Y%m%d}-{equipment.code}",
                              rng.choice(defects) if result != "pass" else ""))
    return records


def _result(rng: random.Random, can_fail: bool) -> str:
    draw = rng.random()
    for result, weight in _RESULT_WEIGHTS:
        if draw < weight and (can_fail or result != "fail"):
            return result
        draw -= weight
    return "pass_after_rectification"


def _defects(kind: str, rng: random.Random, most: int = 2) -> str:
    return DEFECT_SEPARATOR.join(rng.sample(_DEFECTS[kind], rng.randint(1, most)))


def records_path(registry_path: Path) -> Path:
    """Where the records CSV of a registry CSV goes: `registry.csv` -> `registry-records.csv`."""
    return registry_path.with_name(f"{registry_path.stem}-records{registry_path.suffix or '.csv'}")


def write_records_csv(fleet: list[Equipment], path: Path, today: date) -> int:
    """Write the fleet's inspection and maintenance records (`semon import-records`); return the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=RECORD_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for equipment in fleet:
            for record in equipment_records(equipment, today):
                writer.writerow(record.csv_row())
                count += 1
    return count
