"""The rule engine: it advances one equipment's rules over its new samples, from a JSON-serialisable state, and says
which derived faults were raised and cleared (docs/rules.md). Pure: no database, no MQTT, no clock of its own.

Per rule and equipment the state holds a pending dwell (since when the condition holds, in how many samples), whether
the fault is open, since when its condition is gone (the hysteresis before it clears), and for transient faults
when it last cleared (repeats within rule_repeat_dedup_s are the same alert). Rules with nothing going on have no
state at all, so an equipment's state stays a few hundred bytes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from models.rules import boiler, elevator, escalator
from models.rules.rule import COMPLETE, NORMAL, SLOW, TRANSIENT, Hit, Rule
from models.rules.settings import RuleSettings

# A state of another version is dropped and the rules start afresh (at worst a dwell starts again).
STATE_VERSION = 1
# Timestamps are epoch seconds as floats; differences may be off by a fraction of a microsecond, and the contract's
# resolution is a millisecond.
_EPS = 1e-3
_IDLE: dict[str, Any] = {}


@dataclass(frozen=True)
class EquipmentInfo:
    """What the rules need from the registry."""

    id: int
    type: str  # elevator, escalator, boiler, pressure_vessel
    rated_speed_mps: float | None = None
    floors: int | None = None
    rated_pressure_mpa: float | None = None


@dataclass(frozen=True)
class Sample:
    """One stored telemetry message: the monitor's ts (aware), its seq, and its fields as typed by the ingester
    (a field not sent is absent)."""

    ts: datetime
    seq: int
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Change:
    """A derived fault raised or cleared."""

    kind: str                 # the fault code (docs/mqtt.md)
    event: str                # raised or cleared
    at: datetime              # ts of the deciding sample, or when a dwell completed while the monitor was silent
    severity: str             # the fault code's default severity
    message: str
    detail: Mapping[str, Any]  # JSON-serialisable facts


@dataclass(frozen=True)
class TypeRules:
    """An equipment type's rules and how one of its samples is read for them."""

    observe: Callable[[Mapping[str, Any], float, dict[str, Any], EquipmentInfo, RuleSettings], Any]
    rules: tuple[Rule, ...]


REGISTRY: dict[str, TypeRules] = {
    "elevator": TypeRules(elevator.observe, elevator.RULES),
    "escalator": TypeRules(escalator.observe, escalator.RULES),
    "boiler": TypeRules(boiler.observe, boiler.BOILER_RULES),
    "pressure_vessel": TypeRules(boiler.observe, boiler.VESSEL_RULES),
}


def _fresh() -> dict[str, Any]:
    return {"v": STATE_VERSION, "t": None, "q": None, "mode": "normal", "m": {}, "r": {}}


def load_state(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """A working copy of a stored state (the caller's is never changed); None or another version: a fresh one."""
    if not state or state.get("v") != STATE_VERSION:
        return _fresh()
    return {"v": STATE_VERSION, "t": state["t"], "q": state["q"], "mode": state["mode"], "m": dict(state["m"]),
            "r": {code: dict(rs) for code, rs in state["r"].items()}}


def _iso(epoch: float, like: datetime) -> str:
    return datetime.fromtimestamp(epoch, like.tzinfo).isoformat(timespec="milliseconds")


def _order(sample: Sample) -> tuple[datetime, int]:
    return sample.ts, sample.seq


class _Plan:
    """One type's rules arranged for speed: per mode, the rules to check and the suppressed ones."""

    def __init__(self, type_rules: TypeRules):
        self.observe = type_rules.observe
        self.rules = type_rules.rules
        self.by_code = {rule.code: rule for rule in type_rules.rules}
        self._modes: dict[str, tuple[tuple[Rule, bool], ...]] = {}

    def for_mode(self, mode: str) -> tuple[tuple[Rule, bool], ...]:
        plan = self._modes.get(mode)
        if plan is None:
            plan = self._modes[mode] = tuple((rule, mode in rule.suppressed_in) for rule in self.rules)
        return plan


class Detector:
    """Derives fault codes from telemetry with the given settings; severities and labels: fault code -> its default
    severity and how it reads (the fault_codes table)."""

    def __init__(self, settings: RuleSettings, severities: Mapping[str, str], labels: Mapping[str, str]):
        codes = {rule.code for type_rules in REGISTRY.values() for rule in type_rules.rules}
        missing = sorted(codes - (set(severities) & set(labels)))
        if missing:
            raise ValueError(f"no severity or label for fault code(s) {', '.join(missing)}: the fault_codes table "
                             "lacks them")
        self.settings = settings
        self.severities = dict(severities)
        self.labels = dict(labels)
        self._plans = {kind: _Plan(type_rules) for kind, type_rules in REGISTRY.items()}
        self._clear_s = {NORMAL: settings.clear_s, TRANSIENT: settings.transient_clear_s, SLOW: settings.slow_clear_s}

    def _plan(self, equipment: EquipmentInfo) -> _Plan:
        plan = self._plans.get(equipment.type)
        if plan is None:
            raise ValueError(f"equipment {equipment.id}: no rules for equipment type {equipment.type!r}")
        return plan

    def evaluate(self, equipment: EquipmentInfo, state: Mapping[str, Any] | None,
                 samples: Sequence[Sample]) -> tuple[dict[str, Any], list[Change]]:
        """Advance one equipment's rules over its new samples; returns the new state (JSON-serialisable) and the
        changes. Samples not after the state's last processed (ts, seq) are ignored: a late sample does not rewind
        a dwell."""
        plan = self._plan(equipment)
        st = load_state(state)
        changes: list[Change] = []
        for sample in (samples if len(samples) < 2 else sorted(samples, key=_order)):
            ts = sample.ts.timestamp()
            last_t = st["t"]
            if last_t is not None and (ts < last_t or (ts == last_t and sample.seq <= st["q"])):
                continue
            self._step(plan, equipment, st, sample, ts, changes)
            st["t"], st["q"] = ts, sample.seq
        return st, changes

    def expire(self, equipment: EquipmentInfo, state: Mapping[str, Any] | None, silent_since: datetime,
               now: datetime) -> tuple[dict[str, Any], list[Change]]:
        """Decide on the server's clock what no sample has come to decide: the monitor's last message was received
        at `silent_since`, it is `now`. A pending entrapment or stop-outside-door-zone dwell whose condition held
        at the last sample completes once the time held before plus the silence reaches its dwell (a car whose
        monitor lost power still holds its passenger). Nothing else changes: other dwells wait for samples (a gap
        longer than rule_silence_s restarts them), open faults stay open. Safe to call at any time and again."""
        plan = self._plan(equipment)
        st = load_state(state)
        last = st["t"]
        changes: list[Change] = []
        if last is None:
            return st, changes
        silent_s = max(0.0, (now - silent_since).total_seconds())
        for code, rs in st["r"].items():
            if rs["s"] is None or rs["r"] or rs.get("h") != last:
                continue
            rule = plan.by_code.get(code)
            if rule is None or rule.on_silence != COMPLETE:
                continue
            before = last - rs["s"]
            dwell = rs["d"]
            if before + silent_s + _EPS >= dwell:
                rs["r"] = True
                at = silent_since + timedelta(seconds=max(0.0, dwell - before))
                facts = {**rs["f"], "silent_since": silent_since.isoformat(timespec="milliseconds"),
                         "completed_while_silent": True}
                changes.append(self._raised(rule, rs, facts, dwell, dwell, at, last + dwell - before,
                                            " (no message since; completed on the server's clock)"))
        return st, changes

    @staticmethod
    def pending(state: Mapping[str, Any] | None) -> bool:
        """Whether expire() may have something to decide: a dwell that completes on the server's clock is running."""
        if not state or state.get("v") != STATE_VERSION:
            return False
        last = state["t"]
        return any(rs["s"] is not None and not rs["r"] and rs.get("h") == last for rs in state["r"].values())

    def _step(self, plan: _Plan, equipment: EquipmentInfo, st: dict[str, Any], sample: Sample, ts: float,
              changes: list[Change]) -> None:
        s = self.settings
        values = sample.values
        rstates = st["r"]
        mode = values.get("mode")
        if mode is None:
            mode = st["mode"]
        elif mode != st["mode"]:
            st["mode"] = mode
            # A mode switch cancels every pending dwell: what held before the switch does not count after it.
            self._restart(plan, rstates, every=True)
        if st["t"] is not None and ts - st["t"] > s.silence_s:
            # Nothing is known of the gap: only a dwell that holds on through a silence, as its last sample showed,
            # is kept.
            self._restart(plan, rstates, every=False, last=st["t"])
        view = plan.observe(values, ts, st["m"], equipment, s)
        for rule, suppressed in plan.for_mode(mode):
            rs = rstates.get(rule.code)
            if suppressed:
                verdict: Hit | bool | None = False  # the mode explains it: taken as absent
            else:
                verdict = rule.check(view, s)
                if verdict is None:
                    continue
                if verdict is not False and rule.explained_by and any(
                        rstates.get(code, _IDLE).get("a") for code in rule.explained_by):
                    verdict = False
            if verdict is False:
                if rs is not None:
                    self._gone(rule, rs, rstates, sample, ts, changes)
                continue
            if rs is None:
                rs = rstates[rule.code] = {"a": False, "s": None, "n": 0, "r": False}
            self._held(rule, rs, verdict, sample, ts, changes)

    @staticmethod
    def _restart(plan: _Plan, rstates: dict[str, Any], every: bool, last: float | None = None) -> None:
        for code, rs in list(rstates.items()):
            if rs["s"] is None or rs["r"]:
                continue
            rule = plan.by_code.get(code)
            if every or rule is None or rule.on_silence != COMPLETE or rs.get("h") != last:
                rs["s"], rs["n"] = None, 0
                if not rs["a"] and rs.get("c") is None:
                    del rstates[code]

    def _held(self, rule: Rule, rs: dict[str, Any], hit: Hit, sample: Sample, ts: float,
              changes: list[Change]) -> None:
        if rs["s"] is None or hit.fresh:
            rs["s"], rs["n"], rs["r"] = ts, 0, False
        rs["n"] += 1
        if "g" in rs:
            del rs["g"]  # back before it cleared: the same fault goes on
        if rule.on_silence == COMPLETE:
            if hit.through_silence:
                rs["h"], rs["d"], rs["f"] = ts, hit.dwell, hit.facts
            else:
                rs.pop("h", None)
        if rs["r"]:
            return
        held = ts - rs["s"]
        if hit.corroborated or (held + _EPS >= hit.dwell and rs["n"] >= hit.confirm):
            rs["r"] = True
            if rs["a"] and rule.hysteresis == SLOW:
                rs["k"] += 1  # swinging with each firing cycle: counted, reported when it clears
                return
            changes.append(self._raised(rule, rs, hit.facts, held, hit.dwell, sample.ts, ts, ""))

    def _raised(self, rule: Rule, rs: dict[str, Any], facts: Mapping[str, Any], held: float, dwell: float,
                at: datetime, ts: float, note: str) -> Change:
        detail = {**facts, "held_s": round(held, 1), "dwell_s": dwell}
        name = self.labels[rule.code]
        if rs["a"]:
            # It came back before it cleared: a repeat of the open fault, counted on its alert.
            rs["k"] += 1
            detail.update(repeat=True, occurrence=rs["k"])
            note += f" (occurrence {rs['k']})"
        else:
            rs["a"], rs["k"] = True, 1
            cleared = rs.pop("c", None)
            if cleared is not None and ts - cleared <= self.settings.repeat_dedup_s + _EPS:
                detail.update(repeat=True, previous_cleared_at=_iso(cleared, at))
                note += " (repeat)"
        duration = f", for {held:.0f} s" if held >= 1 else ""
        message = f"{name}: {rule.describe(facts)}{duration}{note}"
        return Change(rule.code, "raised", at, self.severities[rule.code], message, detail)

    def _gone(self, rule: Rule, rs: dict[str, Any], rstates: dict[str, Any], sample: Sample, ts: float,
              changes: list[Change]) -> None:
        if rs["s"] is not None:
            rs["s"], rs["n"], rs["r"] = None, 0, False
        if not rs["a"]:
            cleared = rs.get("c")
            if cleared is None or ts - cleared > self.settings.repeat_dedup_s:
                del rstates[rule.code]
            return
        gone = rs.get("g")
        if gone is None:
            rs["g"] = gone = ts
        clear_s = self._clear_s[rule.hysteresis]
        if ts - gone + _EPS < clear_s:
            return
        detail = {"gone_s": round(ts - gone, 1), "clear_s": clear_s, "occurrences": rs["k"]}
        message = f"{self.labels[rule.code]}: cleared, its condition gone for {ts - gone:.0f} s"
        changes.append(Change(rule.code, "cleared", sample.ts, self.severities[rule.code], message, detail))
        if rule.hysteresis == TRANSIENT:
            rstates[rule.code] = {"a": False, "s": None, "n": 0, "r": False, "c": ts}
        else:
            del rstates[rule.code]
