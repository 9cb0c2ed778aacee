"""Elevator rules: what a car's telemetry shows of entrapment, door, speed, circuit and position faults
(docs/rules.md). Floors are numbered 1 (the lowest landing) to the registry's `floors`, as monitors report them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.rules.rule import (
    COMPLETE,
    FIRE,
    OUT_OF_SERVICE,
    STOPPING,
    TECHNICIAN,
    TRANSIENT,
    Hit,
    Rule,
    Verdict,
    where,
)
from models.rules.settings import RuleSettings

# The lowest storey height a floor jump is judged by: a car cannot pass more landings than its speed allows.
MIN_STOREY_M = 2.5
_MOVING_DIRECTIONS = ("up", "down")


class View:
    """One sample as the rules read it: the fields sent, and what follows from them and earlier samples."""

    __slots__ = ("speed", "direction", "moving", "door", "zone", "occupied", "occupied_raw", "safety", "lock",
                 "floor", "last_floor", "relocated", "floor_missing", "jump", "door_moved", "cycles_since_run",
                 "arrived", "rated_speed", "floors")


def observe(values: Mapping[str, Any], ts: float, mem: dict[str, Any], equipment: Any, s: RuleSettings) -> View:
    """Read one sample, updating the equipment's memory `mem` (JSON scalars only)."""
    get = values.get
    v = View()
    speed = get("speed_mps")
    direction = get("direction")
    # A monitor without a speed reading says the car moves by its direction.
    moving = speed > s.moving_speed_mps if speed is not None else (
        None if direction is None else direction in _MOVING_DIRECTIONS)
    v.speed, v.direction, v.moving = speed, direction, moving
    door = v.door = get("door")
    v.zone = get("door_zone")
    # Arrived: stopped after a run with the door not yet opened. A car parked with its door shut has not arrived.
    if moving:
        mem["run"] = 1
    elif moving is False and mem.pop("run", None):
        mem["arr"] = 1
    if (door is not None and door != "closed") or moving:
        mem.pop("arr", None)
    v.arrived = "arr" in mem
    v.safety = get("safety_circuit_ok")
    v.lock = get("door_lock_ok")
    v.rated_speed = equipment.rated_speed_mps
    v.floors = equipment.floors

    # PIR sensors flicker: nobody vanishes from a closed car, so a false shortly after a true is still occupied.
    occupied = get("occupied")
    v.occupied_raw = occupied
    if occupied:
        mem["ot"] = ts
        v.occupied = True
    elif occupied is None:
        v.occupied = None
    else:
        last = mem.get("ot")
        v.occupied = last is not None and ts - last < s.occupancy_debounce_s

    # Door cycles since the car last ran or its door last rested closed (closed, and no cycle since the sample
    # before): a run shows in run_count, a moving sample or a change of floor (a short run may fall between two
    # samples). A counter that steps back is a restarted monitor: counting starts again.
    cycles = get("door_cycles")
    moved = None
    if cycles is not None:
        before = mem.get("dc")
        if before is None or cycles < before:
            mem["db"] = cycles
            moved = False
        else:
            moved = cycles > before
        mem["dc"] = cycles
    runs = get("run_count")
    floor = get("floor")
    last_floor = mem.get("fl")
    ran = bool(moving) or (floor is not None and last_floor is not None and floor != last_floor)
    if runs is not None:
        ran = ran or (mem.get("rc") is not None and runs != mem["rc"])
        mem["rc"] = runs
    if cycles is not None and (ran or (door == "closed" and not moved)):
        mem["db"] = cycles
    v.door_moved = moved
    v.cycles_since_run = None if cycles is None else cycles - mem["db"]

    # Floor position: missing from a monitor that reports floors (in a report that gives the car's motion and door
    # zone, so not a monitor that only sends what changed), or jumping further than the car can travel.
    v.floor, v.last_floor, v.floor_missing, v.jump = floor, last_floor, False, None
    # A new floor means the car has moved since the last sample, even if no sample caught it moving.
    v.relocated = floor is not None and last_floor is not None and floor != last_floor
    if floor is None:
        v.floor_missing = bool(mem.get("fs")) and moving is not None and v.zone is not None
    else:
        mem["fs"] = 1
        if last_floor is not None and floor != last_floor and v.rated_speed:
            gap = ts - mem["ft"]
            if gap <= s.sample_gap_s:
                fastest = max(v.rated_speed * s.overspeed_ratio, speed or 0.0, mem.get("sp") or 0.0)
                if abs(floor - last_floor) > 1 + fastest * gap / MIN_STOREY_M:
                    v.jump = (last_floor, floor)
        mem["fl"] = floor
        mem["ft"] = ts
    mem["sp"] = speed
    return v


def _entrapment(v: View, s: RuleSettings) -> Verdict:
    door = v.door
    if v.moving or v.relocated or v.occupied is False or (door is not None and door != "closed"):
        return False
    if door is None or v.moving is None or v.occupied is None:
        return None
    # Without a door-zone reading the car is taken to be at a floor, where nearly all stops are.
    between = v.zone is False
    # Only a car between floors, its PIR seeing someone in the last sample, holds its passenger through a silence: at
    # a landing a passenger opens the door and walks out, unseen while the monitor is silent.
    return Hit(s.entrapment_s if between else s.entrapment_at_floor_s,
               {"floor": v.floor, "door_zone": v.zone, "occupied": v.occupied_raw, "between_floors": between},
               through_silence=between and v.occupied_raw is True)


def _describe_entrapment(f: Mapping[str, Any]) -> str:
    place = "between floors" if f.get("between_floors") else "at a landing"
    return f"car stopped {place}{where(f)} with a passenger, door closed"


def _stop_outside_door_zone(v: View, s: RuleSettings) -> Verdict:
    if v.zone or v.moving or v.relocated:
        return False
    if v.zone is None or v.moving is None:
        return None
    return Hit(s.stop_outside_door_zone_s, {"floor": v.floor, "door_zone": False, "door": v.door,
                                            "occupied": v.occupied_raw})


def _door_open_while_moving(v: View, s: RuleSettings) -> Verdict:
    door = v.door
    if door == "closed" or v.moving is False:
        return False
    if door is None or v.moving is None:
        return None
    if v.zone:
        # In the door zone a car may re-level or open its doors early at low speed.
        if v.speed is None:
            return None
        if v.speed <= s.relevel_speed_mps:
            return False
    # One sample may be a glitch of the door contact; an open lock circuit in the same sample corroborates it.
    return Hit(0.0, {"floor": v.floor, "door": door, "door_zone": v.zone, "speed_mps": v.speed,
                     "door_lock_ok": v.lock}, confirm=s.door_open_moving_samples, corroborated=v.lock is False)


def _overspeed(v: View, s: RuleSettings) -> Verdict:
    rated = v.rated_speed
    if not rated:
        return False  # no rated speed in the registry: nothing to compare with
    if v.speed is None:
        return None
    limit = rated * s.overspeed_ratio
    if v.speed <= limit:
        return False
    return Hit(0.0, {"speed_mps": v.speed, "rated_speed_mps": rated, "limit_mps": round(limit, 3),
                     "direction": v.direction, "floor": v.floor})


def safety_circuit_open(v: Any, s: RuleSettings) -> Verdict:
    """The safety circuit reads open (elevators and escalators)."""
    ok = v.safety
    if ok is None:
        return None
    if ok:
        return False
    return Hit(0.0, {"floor": getattr(v, "floor", None), "speed_mps": v.speed})


def _door_lock_circuit_open(v: View, s: RuleSettings) -> Verdict:
    if v.lock is None:
        return None
    if v.lock:
        return False
    door = v.door
    if door is not None and door != "closed":
        return False  # an open door opens its lock: at a landing that is normal, while moving another rule's fault
    if v.moving or v.direction in _MOVING_DIRECTIONS:
        return Hit(0.0, {"floor": v.floor, "door": door, "moving": True, "speed_mps": v.speed})
    # A lock makes just after its door closes: a short dwell, so that the sample in between is not a fault.
    return Hit(s.door_lock_s, {"floor": v.floor, "door": door, "moving": False})


def _door_open_too_long(v: View, s: RuleSettings) -> Verdict:
    # A door that reopens counts cycles: it is reopening, not held open (and a sample may catch it open each time).
    # A cycle counted is evidence even in a sample whose door reading is missing.
    if v.door_moved or v.moving:
        return False
    door = v.door
    if door is None:
        return None
    if door != "open":
        return False
    # Open at a new floor: the car ran and opened its door since the last sample, so it has been open from now on.
    return Hit(s.door_open_too_long_s, {"floor": v.floor, "door_zone": v.zone}, fresh=v.relocated)


def _repeated_door_reopen(v: View, s: RuleSettings) -> Verdict:
    count = v.cycles_since_run
    if count is None:
        return None
    if count < s.door_reopen_count:
        return False
    return Hit(0.0, {"floor": v.floor, "door_cycles_since_run": count, "threshold": s.door_reopen_count})


def _door_close_failure(v: View, s: RuleSettings) -> Verdict:
    if v.door_moved or v.moving:
        return False
    door = v.door
    if door is None:
        return None
    if door != "closing":
        return False
    return Hit(s.door_close_failure_s, {"floor": v.floor, "door": door, "door_lock_ok": v.lock})


def _door_open_failure(v: View, s: RuleSettings) -> Verdict:
    if v.door_moved or v.moving:
        return False
    door = v.door
    if door is None:
        return None
    if door == "opening":
        return Hit(s.door_open_failure_s, {"floor": v.floor, "door": door})
    # A car that brought a passenger to a landing opens its door; one that stays shut on them has failed to open.
    # (A passenger waiting in a car parked at a landing with its door shut is no door fault.)
    if door == "closed" and v.arrived and v.occupied and v.zone:
        return Hit(s.door_open_failure_s, {"floor": v.floor, "door": door, "occupied": True})
    return False


def _describe_door_open_failure(f: Mapping[str, Any]) -> str:
    if f.get("door") == "opening":
        return f"door still opening{where(f)}"
    return f"door stays closed on a passenger after the car arrived{where(f)}"


def _run_timeout(v: View, s: RuleSettings) -> Verdict:
    if v.moving is None:
        return None
    if not v.moving:
        return False
    return Hit(s.run_timeout_s, {"floor": v.floor, "direction": v.direction, "speed_mps": v.speed})


def _overtravel(top: bool):
    def check(v: View, s: RuleSettings) -> Verdict:
        floors = v.floors
        if not floors:
            return False  # no floor count in the registry: nothing to compare with
        floor = v.floor
        if floor is None:
            return None
        terminal = floors if top else 1
        beyond = floor > floors if top else floor < 1
        # Monitors that clamp the floor to the shaft show an overtravel as the car stopped at the terminal landing,
        # outside its door zone, with the final limit switch's opening of the safety circuit.
        if beyond or (floor == terminal and v.zone is False and v.moving is False and v.safety is False):
            return Hit(s.overtravel_s, {"floor": floor, "floors": floors, "door_zone": v.zone,
                                        "safety_circuit_ok": v.safety})
        return False

    return check


def _describe_overtravel(f: Mapping[str, Any]) -> str:
    floor, floors = f["floor"], f["floors"]
    if 1 <= floor <= floors:
        return f"car stopped past terminal floor {floor} of {floors}, outside the door zone, safety circuit open"
    return f"floor {floor} reported, the building has floors 1-{floors}"


def _floor_position_lost(v: View, s: RuleSettings) -> Verdict:
    if v.jump is not None:
        return Hit(0.0, {"from_floor": v.jump[0], "to_floor": v.jump[1], "speed_mps": v.speed})
    if v.floor_missing:
        return Hit(s.floor_lost_s, {"last_floor": v.last_floor})
    if v.floor is None:
        return None
    return False


def _describe_floor_position_lost(f: Mapping[str, Any]) -> str:
    if "to_floor" in f:
        return f"floor jumped from {f['from_floor']} to {f['to_floor']}, further than the car can travel"
    return f"no floor reported (last floor {f.get('last_floor')})"


_NOT_SERVING = TECHNICIAN | OUT_OF_SERVICE

# In evaluation order: a rule's explained_by names rules evaluated before it.
RULES: tuple[Rule, ...] = (
    Rule("overspeed", _overspeed,
         lambda f: f"{f['speed_mps']} m/s, above {f['limit_mps']} m/s ({f['rated_speed_mps']} m/s rated)",
         _NOT_SERVING, hysteresis=TRANSIENT),
    Rule("door_open_while_moving", _door_open_while_moving,
         lambda f: f"door {f['door']} while the car moves at {f['speed_mps']} m/s{where(f)}",
         _NOT_SERVING, hysteresis=TRANSIENT),
    Rule("safety_circuit_open", safety_circuit_open, lambda f: f"safety circuit open{where(f)}",
         _NOT_SERVING | STOPPING),
    Rule("door_lock_circuit_open", _door_lock_circuit_open,
         lambda f: f"door lock circuit open with the door closed{' while the car moves' if f['moving'] else ''}"
                   f"{where(f)}",
         _NOT_SERVING | {"emergency_power"}),
    Rule("overtravel_top", _overtravel(top=True), _describe_overtravel, _NOT_SERVING),
    Rule("overtravel_bottom", _overtravel(top=False), _describe_overtravel, _NOT_SERVING),
    # A trapped passenger is trapped whatever the mode says, unless a technician or firefighter is the one inside.
    Rule("entrapment", _entrapment, _describe_entrapment, TECHNICIAN | {"firefighter"}, on_silence=COMPLETE),
    Rule("stop_outside_door_zone", _stop_outside_door_zone, lambda f: f"car stopped outside the door zone{where(f)}",
         _NOT_SERVING | STOPPING, on_silence=COMPLETE, explained_by=("overtravel_top", "overtravel_bottom")),
    # A car whose safety circuit is open does not work its doors: that fault explains a door staying shut.
    Rule("door_open_failure", _door_open_failure, _describe_door_open_failure, _NOT_SERVING | {"firefighter"},
         explained_by=("safety_circuit_open",)),
    Rule("door_close_failure", _door_close_failure, lambda f: f"door still closing{where(f)}",
         _NOT_SERVING | {"firefighter"}),
    Rule("door_open_too_long", _door_open_too_long, lambda f: f"door held open{where(f)}",
         _NOT_SERVING | FIRE | STOPPING),
    Rule("repeated_door_reopen", _repeated_door_reopen,
         lambda f: f"{f['door_cycles_since_run']} door cycles without a run{where(f)}", _NOT_SERVING),
    Rule("run_timeout", _run_timeout, lambda f: f"car moving without a stop{where(f)}", _NOT_SERVING,
         explained_by=("overspeed", "door_open_while_moving")),
    Rule("floor_position_lost", _floor_position_lost, _describe_floor_position_lost, _NOT_SERVING),
)
