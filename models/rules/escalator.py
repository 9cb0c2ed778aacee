"""Escalator rules: handrail speed, overspeed, reversal, safety circuit and brake (docs/rules.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.rules.elevator import safety_circuit_open
from models.rules.rule import OUT_OF_SERVICE, STOPPING, TECHNICIAN, TRANSIENT, Hit, Rule, Verdict
from models.rules.settings import RuleSettings

_DIRECTIONS = ("up", "down")


class View:
    """One escalator sample as the rules read it."""

    __slots__ = ("running", "speed", "direction", "left", "right", "safety", "brake", "reversed_from", "rated_speed")


def observe(values: Mapping[str, Any], ts: float, mem: dict[str, Any], equipment: Any, s: RuleSettings) -> View:
    """Read one sample, updating the equipment's memory `mem` (JSON scalars only)."""
    get = values.get
    v = View()
    speed = get("speed_mps")
    running = get("running")
    if running is None and speed is not None:
        running = speed > s.moving_speed_mps
    direction = get("direction")
    v.running, v.speed, v.direction = running, speed, direction
    v.left, v.right = get("handrail_left_mps"), get("handrail_right_mps")
    v.safety, v.brake = get("safety_circuit_ok"), get("brake_ok")
    v.rated_speed = equipment.rated_speed_mps
    # The direction it started in is the one it is meant to run in until it stops; an operator reverses an
    # escalator only from standstill. Samples too far apart may hide a stop.
    v.reversed_from = None
    if running is False:
        mem.pop("dir", None)
    elif running and direction in _DIRECTIONS:
        started = mem.get("dir")
        if started is None or ts - mem["dt"] > s.sample_gap_s:
            mem["dir"] = direction
        elif direction != started:
            v.reversed_from = started
        mem["dt"] = ts
    return v


def _handrail_speed_deviation(v: View, s: RuleSettings) -> Verdict:
    if v.running is False:
        return False
    step = v.speed
    if v.running is None or step is None:
        return None
    if step <= s.moving_speed_mps:
        return False
    sides = [(side, speed) for side, speed in (("left", v.left), ("right", v.right)) if speed is not None]
    if not sides:
        return None
    side, speed = max(sides, key=lambda item: abs(item[1] - step))
    deviation = abs(speed - step) / step
    if deviation <= s.handrail_deviation_ratio:
        return False
    return Hit(s.handrail_deviation_s, {"side": side, "handrail_mps": speed, "step_mps": step,
                                        "deviation_pct": round(deviation * 100, 1),
                                        "threshold_pct": round(s.handrail_deviation_ratio * 100, 1)})


def _overspeed(v: View, s: RuleSettings) -> Verdict:
    rated = v.rated_speed
    if not rated:
        return False
    if v.speed is None:
        return None
    limit = rated * s.overspeed_ratio
    if v.speed <= limit:
        return False
    return Hit(0.0, {"speed_mps": v.speed, "rated_speed_mps": rated, "limit_mps": round(limit, 3)})


def _unintended_reversal(v: View, s: RuleSettings) -> Verdict:
    if v.reversed_from is not None:
        return Hit(0.0, {"direction": v.direction, "started": v.reversed_from, "speed_mps": v.speed})
    if v.running is None or (v.running and v.direction is None):
        return None
    return False


def _brake_not_released(v: View, s: RuleSettings) -> Verdict:
    if v.brake is None:
        return None
    if v.brake:
        return False
    return Hit(s.brake_not_released_s, {"running": v.running, "speed_mps": v.speed})


_NOT_SERVING = TECHNICIAN | OUT_OF_SERVICE

RULES: tuple[Rule, ...] = (
    Rule("overspeed", _overspeed,
         lambda f: f"{f['speed_mps']} m/s, above {f['limit_mps']} m/s ({f['rated_speed_mps']} m/s rated)",
         _NOT_SERVING, hysteresis=TRANSIENT),
    Rule("unintended_reversal", _unintended_reversal,
         lambda f: f"running {f['direction']} after starting {f['started']}, without a stop", _NOT_SERVING),
    Rule("safety_circuit_open", safety_circuit_open, lambda f: "safety circuit open", _NOT_SERVING | STOPPING),
    Rule("brake_not_released", _brake_not_released, lambda f: "brake reads not released", _NOT_SERVING),
    Rule("handrail_speed_deviation", _handrail_speed_deviation,
         lambda f: f"{f['side']} handrail {f['handrail_mps']} m/s against steps {f['step_mps']} m/s "
                   f"({f['deviation_pct']} %, limit {f['threshold_pct']} %)",
         _NOT_SERVING),
)
