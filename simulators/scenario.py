"""Scenario files: the fleet to simulate (districts, sites, firms, counts) and its fault timeline."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from semon.config import ConfigError
from semon.vocabulary import EQUIPMENT_TYPES
from simulators.devices import supported_faults
from simulators.monitor import MonitorMix, parse_monitors
from simulators.operation import Operation, parse_operation
from simulators.wear import RepeatingWear, ScheduledWear, check_wear, parse_wear, parse_wear_repeat

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
CODE_PREFIXES = {"elevator": "EL", "escalator": "ES", "boiler": "BL", "pressure_vessel": "PV"}
SITE_KINDS = ("office", "residential", "hospital", "mall", "hotel", "factory")


class ScenarioError(ConfigError):
    """A scenario is unknown or its file cannot be used (reported like a bad setting)."""


@dataclass(frozen=True)
class Site:
    """A building or plant that hosts equipment: its use unit (使用单位), address and kind."""

    use_unit: str
    address: str
    kind: str
    floors: int
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class District:
    """A district, the short code used in its equipment codes, its equipment counts and sites."""

    name: str
    code: str
    counts: Mapping[str, int]
    sites: tuple[Site, ...]


@dataclass(frozen=True)
class Firm:
    """A maintenance firm (维保单位) and the equipment types it maintains."""

    name: str
    phone: str
    serves: tuple[str, ...]


@dataclass(frozen=True)
class ScheduledFault:
    """One fault injected at a fixed time after the simulation starts; cleared later unless clear_at_s is None."""

    at_s: float
    clear_at_s: float | None
    equipment: str
    fault: str


@dataclass(frozen=True)
class RepeatingFaults:
    """Every every_s, a random fault on random in-use equipment, lasting a random time in duration_s."""

    first_at_s: float
    every_s: float
    duration_s: tuple[float, float]
    faults: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Scenario:
    """A parsed, validated scenario file."""

    name: str
    tz: timezone
    districts: tuple[District, ...]
    firms: tuple[Firm, ...]
    overdue_inspection: tuple[str, ...]
    suspended: tuple[str, ...]
    old_install_share: float
    faults: tuple[ScheduledFault, ...]
    repeat: RepeatingFaults | None
    monitors: MonitorMix = MonitorMix()  # how the monitors deliver (simulators/monitor.py)
    wear: tuple[ScheduledWear, ...] = ()  # gradual wear ending in a fault (simulators/wear.py)
    wear_repeat: RepeatingWear | None = None
    operation: Operation = Operation()  # visits, lingering passengers, burner purge (simulators/operation.py)

    def equipment_codes(self) -> dict[str, str]:
        """Every equipment code of the fleet, mapped to its type, in registry order."""
        return {equipment_code(kind, district.code, n): kind
                for district in self.districts for kind in EQUIPMENT_TYPES
                for n in range(1, district.counts.get(kind, 0) + 1)}


def equipment_code(equipment_type: str, district_code: str, number: int) -> str:
    """The registry code of the number-th equipment of a type in a district, e.g. EL-D1-0001."""
    return f"{CODE_PREFIXES[equipment_type]}-{district_code}-{number:04d}"


def scenario_names() -> list[str]:
    """The scenarios shipped with the simulator, loadable by name."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def scenario_path(scenario: str) -> Path:
    """The file of a scenario given by name (e.g. "demo") or by path to a YAML file."""
    if scenario.endswith((".yaml", ".yml")) or "/" in scenario or "\\" in scenario:
        path = Path(scenario)
        if not path.is_file():
            raise ScenarioError(f"scenario file {scenario} not found")
        return path
    path = SCENARIO_DIR / f"{scenario}.yaml"
    if not path.is_file():
        known = ", ".join(scenario_names()) or "none"
        raise ScenarioError(f"unknown scenario {scenario!r} (known: {known}; or give the path of a YAML file)")
    return path


def load_scenario(scenario: str) -> Scenario:
    """Load and validate a scenario by name or path; a bad file raises ScenarioError naming the problem."""
    path = scenario_path(scenario)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    try:
        return _parse(data, default_name=path.stem)
    except KeyError as exc:
        raise ScenarioError(f"{path}: missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def _parse(data: Any, default_name: str) -> Scenario:
    root = _mapping(data, "the scenario")
    districts = tuple(_district(d, i) for i, d in enumerate(_list(root, "districts")))
    firms = tuple(_firm(f, i) for i, f in enumerate(_list(root, "firms")))
    share = float(root.get("old_install_share", 0.2))
    if not 0 <= share <= 1:
        raise ValueError("old_install_share must be between 0 and 1")
    scenario = Scenario(
        name=str(root.get("name", default_name)),
        tz=_utc_offset(root.get("utc_offset", "+00:00")),
        districts=districts,
        firms=firms,
        overdue_inspection=tuple(str(c) for c in root.get("overdue_inspection") or ()),
        suspended=tuple(str(c) for c in root.get("suspended") or ()),
        old_install_share=share,
        faults=tuple(_scheduled_fault(f, i) for i, f in enumerate(root.get("faults") or ())),
        repeat=_repeat(root["repeat"]) if root.get("repeat") else None,
        monitors=parse_monitors(root.get("monitors")),
        operation=parse_operation(root.get("operation")),
    )
    # Wear needs the fleet's codes and types to check its kinds and faults, so it is parsed last.
    scenario = replace(scenario, wear=parse_wear(root.get("wear"), scenario.equipment_codes()),
                       wear_repeat=parse_wear_repeat(root.get("wear_repeat")))
    _check(scenario)
    return scenario


def _check(scenario: Scenario) -> None:
    if not scenario.districts:
        raise ValueError("a scenario needs at least one district")
    if len({d.code for d in scenario.districts}) != len(scenario.districts):
        raise ValueError("district codes must be unique")
    codes = scenario.equipment_codes()
    for district in scenario.districts:
        for kind, count in district.counts.items():
            if count and not any(kind in s.hosts for s in district.sites):
                raise ValueError(f"district {district.name}: no site hosts its {count} {kind}(s)")
    for kind in set(codes.values()):
        if not any(kind in f.serves for f in scenario.firms):
            raise ValueError(f"no maintenance firm serves {kind}")
    for field in ("overdue_inspection", "suspended"):
        for code in getattr(scenario, field):
            if code not in codes:
                raise ValueError(f"{field}: no equipment {code} in the fleet")
    by_equipment: dict[str, list[ScheduledFault]] = {}
    for fault in scenario.faults:
        kind = codes.get(fault.equipment)
        if kind is None:
            raise ValueError(f"faults: no equipment {fault.equipment} in the fleet")
        if fault.fault not in supported_faults(kind):
            raise ValueError(f"faults: {kind} {fault.equipment} cannot simulate {fault.fault!r}")
        if fault.equipment in scenario.suspended:
            raise ValueError(f"faults: {fault.equipment} is suspended and does not run")
        for other in by_equipment.setdefault(fault.equipment, []):
            if _overlap(fault, other):
                raise ValueError(f"faults: two faults overlap on {fault.equipment} (one fault at a time)")
        by_equipment[fault.equipment].append(fault)
    if scenario.repeat:
        for kind, names in scenario.repeat.faults.items():
            unknown = set(names) - supported_faults(kind)
            if unknown:
                raise ValueError(f"repeat: {kind} cannot simulate {', '.join(sorted(unknown))}")
    check_wear(scenario.wear, scenario.faults, scenario.suspended)


def _overlap(a: ScheduledFault, b: ScheduledFault) -> bool:
    a_end = float("inf") if a.clear_at_s is None else a.clear_at_s
    b_end = float("inf") if b.clear_at_s is None else b.clear_at_s
    return a.at_s <= b_end and b.at_s <= a_end


def _district(data: Any, index: int) -> District:
    where = f"districts[{index}]"
    item = _mapping(data, where)
    code = str(item["code"])
    if not re.fullmatch(r"[A-Za-z0-9]{1,8}", code):
        raise ValueError(f"{where}: code {code!r} must be 1-8 letters or digits")
    counts = {str(k): int(v) for k, v in _mapping(item.get("equipment") or {}, f"{where}.equipment").items()}
    for kind, count in counts.items():
        if kind not in EQUIPMENT_TYPES:
            raise ValueError(f"{where}.equipment: unknown equipment type {kind!r}")
        if not 0 <= count <= 9999:
            raise ValueError(f"{where}.equipment.{kind}: count must be between 0 and 9999")
    sites = tuple(_site(s, f"{where}.sites[{i}]") for i, s in enumerate(_list(item, "sites")))
    return District(name=str(item["name"]), code=code, counts=counts, sites=sites)


def _site(data: Any, where: str) -> Site:
    item = _mapping(data, where)
    kind = str(item.get("kind", "office"))
    if kind not in SITE_KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(SITE_KINDS)}")
    hosts = tuple(str(h) for h in item["hosts"])
    unknown = set(hosts) - set(EQUIPMENT_TYPES)
    if unknown:
        raise ValueError(f"{where}: unknown equipment type(s) {', '.join(sorted(unknown))}")
    floors = int(item.get("floors", 6))
    if floors < 2:
        raise ValueError(f"{where}: floors must be at least 2")
    return Site(use_unit=str(item["use_unit"]), address=str(item["address"]), kind=kind, floors=floors,
                hosts=hosts)


def _firm(data: Any, index: int) -> Firm:
    item = _mapping(data, f"firms[{index}]")
    serves = tuple(str(s) for s in item.get("serves") or EQUIPMENT_TYPES)
    return Firm(name=str(item["name"]), phone=str(item.get("phone", "")), serves=serves)


def _scheduled_fault(data: Any, index: int) -> ScheduledFault:
    item = _mapping(data, f"faults[{index}]")
    at_s = float(item["at_s"])
    clear_at_s = None if item.get("clear_at_s") is None else float(item["clear_at_s"])
    if at_s < 0 or (clear_at_s is not None and clear_at_s <= at_s):
        raise ValueError(f"faults[{index}]: needs 0 <= at_s < clear_at_s")
    return ScheduledFault(at_s=at_s, clear_at_s=clear_at_s, equipment=str(item["equipment"]),
                          fault=str(item["fault"]))


def _repeat(data: Any) -> RepeatingFaults:
    item = _mapping(data, "repeat")
    low, high = (float(v) for v in item.get("duration_s", (60, 300)))
    every_s = float(item["every_s"])
    if every_s <= 0 or not 0 < low <= high:
        raise ValueError("repeat: needs every_s > 0 and 0 < duration_s[0] <= duration_s[1]")
    faults = {str(k): tuple(str(f) for f in v) for k, v in _mapping(item["faults"], "repeat.faults").items()}
    for kind in faults:
        if kind not in EQUIPMENT_TYPES:
            raise ValueError(f"repeat.faults: unknown equipment type {kind!r}")
    return RepeatingFaults(first_at_s=float(item.get("first_at_s", every_s)), every_s=every_s,
                           duration_s=(low, high), faults=faults)


def _utc_offset(value: Any) -> timezone:
    # Accepts "+08:00" or whole hours (8); the local clock drives traffic and the ts offset.
    if isinstance(value, int):
        return timezone(timedelta(hours=value))
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", str(value))
    if not match:
        raise ValueError(f"utc_offset {value!r} must look like +08:00")
    sign = 1 if match[1] == "+" else -1
    return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping")
    return value


def _list(mapping: Mapping[str, Any], key: str) -> list[Any]:
    value = mapping.get(key) or []
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    return value

