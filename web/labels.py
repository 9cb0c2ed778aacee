"""Every label the pages show for a code, in one place: one label per status, the same on every page.

Inspectors and firms know these by their Chinese names; the English leads for everyone else. The values are the
vocabulary's (semon/vocabulary.py); a value without a label shows as itself, with spaces for underscores.
"""

from __future__ import annotations

import math
from typing import Any

from models.compliance import ALERT_PREFIX as OVERDUE_ALERT
from models.compliance import NO_RECORDS, PERIODIC_INSPECTION
from models.figures import CHECKS
from models.presence import ALERT_KIND as OFFLINE_ALERT
from models.risk import LEVELS as RISK_LEVELS
from models.risk import OVERDUE_FACTOR, WEAR_PREFIX, WINDOW_DAYS
from models.wear.features import COMPONENTS as WEAR_COMPONENTS
from semon.users import ROLES
from semon.vocabulary import (
    ALERT_SOURCES,
    ALERT_STATES,
    COMPLIANCE_STATUSES,
    CONNECTION_STATES,
    EQUIPMENT_STATUSES,
    EQUIPMENT_TYPES,
    INSPECTION_RESULTS,
    INSPECTION_STATUSES,
    SEVERITIES,
    fault_label,
)

TYPE_LABELS = {
    "elevator": "Elevator (电梯)",
    "escalator": "Escalator (自动扶梯)",
    "boiler": "Boiler (锅炉)",
    "pressure_vessel": "Pressure vessel (压力容器)",
}
# The checks of the compliance rules (docs/compliance.md), by their regulator names.
CHECK_LABELS = {
    PERIODIC_INSPECTION: "Periodic inspection (定期检验)",
    "maintenance": "Maintenance (维护保养)",
    "governor_calibration": "Governor calibration (限速器校验)",
    "rescue_drill": "Rescue drill (应急救援演练)",
    "internal_inspection": "Internal inspection (内部检验)",
    "water_quality_test": "Water quality test (水质检测)",
    "safety_valve_calibration": "Safety valve calibration (安全阀校验)",
    "pressure_gauge_verification": "Pressure gauge verification (压力表检定)",
}
# What an overdue check is called: each check in its own words (docs/compliance-figures.md). 超期未检 ("overdue,
# not inspected", the regulators' 飘红) is the periodic inspection's alone; 超期未维保 is maintenance's; the others
# name the check and say 超期.
OVERDUE_WORDS = {
    PERIODIC_INSPECTION: "超期未检",
    "maintenance": "超期未维保",
    "governor_calibration": "限速器校验超期",
    "rescue_drill": "应急救援演练超期",
    "internal_inspection": "内部检验超期",
    "water_quality_test": "水质检测超期",
    "safety_valve_calibration": "安全阀校验超期",
    "pressure_gauge_verification": "压力表检定超期",
}
# Each check's figure (models/figures.py): in-use equipment with the check overdue / in-use equipment owing it.
# The periodic inspection's is 超期未检率, the figure regulators quote.
OVERDUE_RATE_LABELS = {check: f"{CHECK_LABELS[check].partition(' (')[0]} overdue rate ({words}率)"
                       for check, words in OVERDUE_WORDS.items()}
# The status of checks in general (a filter over all of them). 超期 alone names no check: a check's own status
# reads its own words (CHECK_STATUS_LABELS, check_status()).
COMPLIANCE_LABELS = {
    "ok": "OK (在有效期内)",
    "due_soon": "Due soon (即将到期)",
    "overdue": "Overdue (超期)",
    "never_recorded": "Never recorded (无记录)",
}
CHECK_STATUS_LABELS = {check: COMPLIANCE_LABELS | {"overdue": f"Overdue ({words})"}
                       for check, words in OVERDUE_WORDS.items()}
CHECK_STATUS_LABELS[PERIODIC_INSPECTION]["never_recorded"] = "Never recorded (无检验记录)"
PERIODIC_INSPECTION_LABELS = CHECK_STATUS_LABELS[PERIODIC_INSPECTION]
# The equipment list's status is the periodic inspection's (docs/compliance.md), so it reads the same words.
INSPECTION_LABELS = {
    "ok": PERIODIC_INSPECTION_LABELS["ok"],
    "due_soon": PERIODIC_INSPECTION_LABELS["due_soon"],
    "overdue": PERIODIC_INSPECTION_LABELS["overdue"],
    "no_record": PERIODIC_INSPECTION_LABELS["never_recorded"],
    "not_required": "Not in use (停用/报废)",
}
CONNECTION_LABELS = {
    "online": "Online (在线)",
    "offline": "Offline (离线)",
    "no_data": "No data (无数据)",
}
SEVERITY_LABELS = {
    "critical": "Critical",
    "high": "High",
    "medium": "Medium",
    "low": "Low",
}
ALERT_SOURCE_LABELS = {
    "device": "Reported by the monitor (设备上报)",
    "rule": "Derived from telemetry (遥测推断)",
    "anomaly": "Wear model (磨损预警)",
    "compliance": "Compliance rules (合规检查)",
    "presence": "Presence (在线监测)",
}
ALERT_STATE_LABELS = {
    "open": "Open (未处理)",
    "acknowledged": "Acknowledged (已确认)",
    "on_site": "On site (已到场)",
    "resolved": "Resolved (已解决)",
}
EQUIPMENT_STATUS_LABELS = {
    "in_use": "In use (在用)",
    "suspended": "Suspended (停用)",
    "scrapped": "Scrapped (报废)",
}
INSPECTION_RESULT_LABELS = {
    "pass": "Pass (合格)",
    "pass_after_rectification": "Pass after rectification (整改后合格)",
    "fail": "Fail (不合格)",
}
# The risk levels of models/risk.py (风险分级, docs/risk.md).
RISK_LEVEL_LABELS = {
    "high": "High risk (高风险)",
    "medium": "Medium risk (中风险)",
    "low": "Low risk (低风险)",
}

# The web app's roles (docs/access.md).
ROLE_LABELS = {
    "admin": "管理员 Administrator",
    "inspector": "监察员 Inspector",
    "firm": "维保单位 Maintenance firm",
    "use_unit": "使用单位 Use unit",
}

# Vocabulary name (the template filter's argument) -> (labels, the values that must each have one).
VOCABULARIES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "type": (TYPE_LABELS, EQUIPMENT_TYPES),
    "check": (CHECK_LABELS, CHECKS),
    "check_overdue": (OVERDUE_WORDS, CHECKS),
    "overdue_rate": (OVERDUE_RATE_LABELS, CHECKS),
    "compliance": (COMPLIANCE_LABELS, COMPLIANCE_STATUSES),
    "inspection": (INSPECTION_LABELS, INSPECTION_STATUSES),
    "connection": (CONNECTION_LABELS, CONNECTION_STATES),
    "severity": (SEVERITY_LABELS, SEVERITIES),
    "alert_state": (ALERT_STATE_LABELS, ALERT_STATES),
    "alert_source": (ALERT_SOURCE_LABELS, ALERT_SOURCES),
    "equipment_status": (EQUIPMENT_STATUS_LABELS, EQUIPMENT_STATUSES),
    "inspection_result": (INSPECTION_RESULT_LABELS, INSPECTION_RESULTS),
    "risk_level": (RISK_LEVEL_LABELS, RISK_LEVELS),
    "role": (ROLE_LABELS, ROLES),
}
_missing = [f"{name}: {value}" for name, (labels, values) in VOCABULARIES.items() for value in values
            if value not in labels]
if _missing:  # a value added to the vocabulary without its label; caught at import, not on some page
    raise RuntimeError(f"no label for {', '.join(_missing)}")

# The alert kinds that are not fault codes: the compliance job's overdue:<check> and no_records, the presence
# job's offline, and the wear models' wear:<component> (docs/wear.md).
NO_RECORDS_LABEL = "No records (无检验维保记录)"
WEAR_LABEL = "wear (磨损预警)"


def label(value: str | None, vocabulary: str) -> str:
    """The display label of a vocabulary value; unknown values show as themselves."""
    if value is None:
        return ""
    return VOCABULARIES[vocabulary][0].get(value, value.replace("_", " "))


def check_status(status: str | None, check: str | None) -> str:
    """The label of a check's compliance status, in the check's own words (超期未检 only for the periodic
    inspection, 超期未维保 for maintenance, ...)."""
    if status is None:
        return ""
    labels = CHECK_STATUS_LABELS.get(check or "", COMPLIANCE_LABELS)
    return labels.get(status, status.replace("_", " "))


def alert_kind(kind: str | None, description: str | None = None, name_zh: str | None = None) -> str:
    """What an alert kind means: a fault code's name (fault_label), "<check> — overdue" for a compliance alert,
    "Offline" for a silent monitor, "<component> — wear" for a wear model's; blank when nothing is known."""
    if description:
        return fault_label(description, name_zh or "")
    if kind is None:
        return ""
    if kind.startswith(OVERDUE_ALERT):
        check = kind.removeprefix(OVERDUE_ALERT)
        return f"{label(check, 'check')} — {check_status('overdue', check)}"
    if kind == OFFLINE_ALERT:
        return CONNECTION_LABELS["offline"]
    if kind == NO_RECORDS:
        return NO_RECORDS_LABEL
    if kind.startswith(WEAR_PREFIX):
        component = kind.removeprefix(WEAR_PREFIX)
        return f"{WEAR_COMPONENTS.get(component, component.replace('_', ' '))} — {WEAR_LABEL}"
    return ""


def _floored(value: float, digits: int) -> float:
    # Shown rounded down: a share of 14.96 % must not read "15 %" beside a tier of 15 % it did not reach.
    scale = 10 ** digits
    return math.floor(value * scale + 1e-9) / scale


def _times(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def risk_fact(reason: dict[str, Any]) -> str:
    """What one reason of a risk score says (models/risk.py gives its factor, points and facts), in the words an
    inspector uses: "Periodic inspection overdue 45 days (超期未检45天)"."""
    factor = reason["factor"]
    if factor.startswith(OVERDUE_FACTOR):
        check, days = reason["check"], reason["days"]
        return f"{label(check, 'check').partition(' (')[0]} overdue {_times(days, 'day', 'days')} " \
               f"({OVERDUE_WORDS.get(check, check)}{days}天)"
    if factor == "entrapments":
        count = reason["count"]
        return f"{_times(count, 'entrapment', 'entrapments')} in the last {WINDOW_DAYS} days " \
               f"(近{WINDOW_DAYS}天困人{count}次)"
    if factor == "faults":
        count = reason["count"]
        severities = ", ".join(f"{reason[s]} {s}" for s in SEVERITIES if reason.get(s))
        return f"{_times(count, 'fault', 'faults')} in the last {WINDOW_DAYS} days: {severities} " \
               f"(近{WINDOW_DAYS}天故障{count}次)"
    if factor == "age":
        years = reason["years"]
        return f"Installed {reason['install_date']}: {_times(years, 'year', 'years')} old (已使用{years}年)"
    if factor == "wear":
        components = reason["components"]
        named = ", ".join(WEAR_COMPONENTS.get(c, c.replace("_", " ")) for c in components)
        count = len(components)
        return f"{_times(count, 'open wear alert', 'open wear alerts')}: {named} (磨损预警{count}项)"
    if factor == "firm_maintenance":
        share = f"{_floored(reason['overdue'] * 100 / reason['owing'], 1):g} %"
        return f"Firm: {share} of its elevators and escalators overdue for maintenance, {reason['overdue']} of " \
               f"{reason['owing']} (维保单位超期未维保率{share})"
    if factor == "firm_faults":
        rate = _floored(reason["faults"] / reason["equipment"], 2)
        faults = "fault" if rate == 1 else "faults"
        return f"Firm: {rate:g} {faults} per equipment in the last {WINDOW_DAYS} days, {reason['faults']} on " \
               f"{reason['equipment']} (维保单位近{WINDOW_DAYS}天台均故障{rate:g}次)"
    return factor.replace("_", " ")
