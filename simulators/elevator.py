"""A traction elevator: trips driven by time-of-day traffic, door cycles, and signals that follow load and wear.

`safety_circuit_ok` and `door_lock_ok` report the health of those circuits (true in normal service, also
while the doors stand open at a landing); they go false only under a fault.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any

from simulators.base import Device, FaultBehaviour, clamp
from simulators.operation import boarding_wait
from simulators.traffic import calls_per_hour, expected_calls

if TYPE_CHECKING:
    from simulators.fleet import Equipment

FLOOR_HEIGHT_M = 3.2
ACCEL_MPS2 = 0.8
LEVELING_SPEED_MPS = 0.1  # the final approach speed, so a run always ends
RESCUE_SPEED_MPS = 0.3  # inspection speed a technician uses to bring a stopped car to a landing
DOOR_ZONE_M = 0.2  # EN 81-20 unlocking zone: at most 0.2 m either side of the landing
DOOR_OPEN_S = 2.0
DOOR_CLOSE_S = 3.0
PASSENGER_KG = 75.0  # design mass per person (GB/T 7588.1)
COUNTERWEIGHT_BALANCE = 0.45  # share of the rated load the counterweight balances
MAX_WAITING_CALLS = 6  # beyond this, people take the stairs
# Run count and run hours never exceed what is expected since installation times this margin (their
# ceiling) and start at it; so a restarted simulator, starting at the ceiling again, never reports less
# than before. Door cycles start there too but are not capped: a door fault's reopenings must all count
# (semon derives repeated_door_reopen from them), so after a restart they may step back a little.
COUNTER_MARGIN = 1.25
AMBIENT_C = 28.0
MOTOR_RISE_K = 55.0  # temperature rise of a motor at rated current, continuously
MOTOR_TAU_S = 1200.0
# What full wear (severity 1) does; severity rises from 0 over an episode (simulators/wear.py).
WORN_DOOR_SLOWDOWN = 1.2  # door operator: door motions take up to 2.2 times as long
WORN_DOOR_REOPEN = 0.6  # door operator: chance that a closing door reopens (weak closing force, misaligned sills)
WORN_BEARING_G = 0.05  # bearings / guide shoes: extra vibration while running at rated speed
WORN_BRAKE_MM = 12.0  # brake: extra spread and overshoot of the stopping position
WORN_MOTOR_K = 35.0  # motor: extra temperature rise (failing cooling fan, insulation ageing)


@dataclass
class Call:
    """Passengers waiting at one floor to go to another (floors counted from 0)."""

    origin: int
    destination: int
    persons: int


class Elevator(Device):
    """A simulated elevator monitor (GB/T 24476 real-time status)."""

    equipment_type = "elevator"

    def __init__(self, equipment: Equipment, seed: int, tz: timezone = UTC):
        super().__init__(equipment, seed, tz)
        self.floors = equipment.floors or 6
        self.rated_speed = equipment.rated_speed_mps or 1.0
        self.rated_load = equipment.rated_load_kg or 1000
        self.kind = equipment.site_kind
        self.capacity = max(1, int(self.rated_load // PASSENGER_KG))
        self.busyness = self.rng.uniform(0.5, 1.5)
        # Most cars are in good shape; squaring makes worn ones (more vibration, worse leveling) the few.
        self.wear = self.rng.random() ** 2
        power_w = self.rated_load * 9.81 * self.rated_speed * (1 - COUNTERWEIGHT_BALANCE) / 0.85
        self.rated_current = power_w / (math.sqrt(3) * 380 * 0.85)
        self.position = self.rng.randrange(self.floors) * FLOOR_HEIGHT_M
        self.velocity = 0.0
        self.accel = 0.0
        self.door = "closed"
        self.phase = "idle"
        self.phase_s = 0.0
        self.dwell_s = 0.0
        self.reopen_at: float | None = None  # when, into its closing, a worn door operator reopens the door
        self.calls: deque[Call] = deque()
        self.job: Call | None = None
        self.stage: str | None = None  # pickup, deliver, rescue
        self.target_floor = 0
        self.target_pos = self.position
        self.speed_limit = self.rated_speed
        self.next_leveling_mm = 0.0
        self.leveling_mm = round(self.rng.gauss(0, 2), 1)
        self.persons = 0
        self.safety_ok = True
        self.door_lock_ok = True
        self.motor_temp = AMBIENT_C + 2
        self.run_count = 0
        self.door_cycles = 0
        self.run_s = 0.0
        self.fault_s = 0.0
        self.hold_s = 0.0  # passengers just aboard keep the car this long at the landing, doors closed
        # A maintenance visit (simulators/operation.py): the technician's script, one step per tick, the mode the car
        # reports meanwhile, and a technician on the car roof, whom the load cell feels and the car's PIR does not.
        self.visit: Iterator[object] | None = None
        self.service_mode = "normal"
        self.technician_kg = 0.0
        self.dt = 0.0
        self.installed = datetime.combine(equipment.install_date, datetime.min.time(), tzinfo=tz)
        # A generous mean run (half the shaft), so run hours rarely reach their ceiling.
        self.mean_run_s = self.floors * FLOOR_HEIGHT_M / 2 / self.rated_speed + self.rated_speed / ACCEL_MPS2 + 2

    # Derived state.

    @property
    def top(self) -> float:
        """Height of the top landing above the bottom one, in metres."""
        return (self.floors - 1) * FLOOR_HEIGHT_M

    @property
    def nearest_floor(self) -> int:
        """The landing nearest the car, counted from 0."""
        return int(clamp(round(self.position / FLOOR_HEIGHT_M), 0, self.floors - 1))

    @property
    def in_door_zone(self) -> bool:
        """Whether the car is within the unlocking zone of a landing."""
        return abs(self.position - self.nearest_floor * FLOOR_HEIGHT_M) <= DOOR_ZONE_M

    @property
    def mode(self) -> str:
        """The GB/T 24476 service mode."""
        return self.service_mode if self.in_service else "out_of_service"

    @property
    def in_maintenance(self) -> bool:
        return self.visit is not None

    # Lifetime counters.

    def start(self, now: datetime) -> None:
        self.run_count, self.door_cycles, self.run_s = self._expected_use(self.installed, now, COUNTER_MARGIN)

    def skip(self, since: datetime, until: datetime) -> None:
        super().skip(since, until)
        if self.in_service:
            runs, doors, run_s = self._expected_use(since, until, 1.0)
            self.run_count += runs
            self.door_cycles += doors
            self.run_s += run_s
            self._keep_under_ceiling()

    def _expected_use(self, since: datetime, until: datetime, margin: float) -> tuple[int, int, float]:
        calls = expected_calls(self.kind, since, until, self.tz) * self.busyness * margin
        # A call is at most two runs (to the caller, then to the destination) and two door cycles, plus the
        # odd reopening.
        return int(2 * calls), int(2.1 * calls), 2 * calls * self.mean_run_s

    def _keep_under_ceiling(self) -> None:
        # Capping a non-decreasing counter by a non-decreasing ceiling keeps it non-decreasing.
        runs, _, run_s = self._expected_use(self.installed, self.now, COUNTER_MARGIN)
        self.run_count = min(self.run_count, runs)
        self.run_s = min(self.run_s, run_s)

    # Physics.

    def tick(self, dt: float, hour: float) -> None:
        runs = self.run_count
        behaviour = self.behaviour
        if self.in_service and (behaviour is None or self.fault in KEEPS_RUNNING):
            if self.visit is None and self.maintenance_requested and self._free():
                self.visit = self._visit()
            if self.visit is not None:
                self.dt = dt
                if next(self.visit, None) is _DONE:
                    self.visit = None
            else:
                if self.maintenance_requested:
                    self.calls.clear()  # the technician is waiting for the car: people take the stairs
                else:
                    self._arrivals(dt, hour)
                self._operate(dt)
        if behaviour is not None and behaviour.tick is not None:
            self.fault_s += dt
            behaviour.tick(self, dt)
        if self.velocity != 0.0:
            self.run_s += dt
        if self.velocity != 0.0 or runs != self.run_count:
            self._keep_under_ceiling()
        heat_target = (AMBIENT_C + MOTOR_RISE_K * (self._current() / self.rated_current) ** 2
                       + WORN_MOTOR_K * self.worn("motor_overheat"))
        self.motor_temp += (heat_target - self.motor_temp) * dt / MOTOR_TAU_S

    def _arrivals(self, dt: float, hour: float) -> None:
        rate = calls_per_hour(self.kind, hour, self.weekday) * self.busyness
        if self.rng.random() >= rate * dt / 3600 or len(self.calls) >= MAX_WAITING_CALLS:
            return
        top = self.floors - 1
        up_peak, down_peak = 7 <= hour < 10, 17 <= hour < 20
        if self.kind == "residential":
            # Residents leave in the morning and come home in the evening: the peaks are reversed.
            up_peak, down_peak = down_peak, up_peak
        r = self.rng.random()
        if (up_peak and r < 0.7) or (not up_peak and not down_peak and r < 0.3):
            origin, destination = 0, self.rng.randint(1, top)
        elif (down_peak and r < 0.7) or (not up_peak and not down_peak and r < 0.6):
            origin, destination = self.rng.randint(1, top), 0
        else:
            origin = self.rng.randint(0, top)
            destination = (origin + self.rng.randint(1, top)) % self.floors
        persons = 1 + min(int(self.rng.expovariate(1.2 if (up_peak or down_peak) else 1.8)), self.capacity - 1)
        self.calls.append(Call(origin, destination, persons))

    def _operate(self, dt: float) -> None:
        self.phase_s += dt
        if self.phase == "idle":
            self._next_move()
        elif self.phase == "running":
            if self._move_toward(self.target_pos, dt):
                self.leveling_mm = self.next_leveling_mm
                self._set_phase("door_opening")
                self.door = "opening"
        elif self.phase == "door_opening":
            if self.phase_s >= DOOR_OPEN_S * self._door_slowdown():
                self.door = "open"
                self._exchange_passengers()
        elif self.phase == "door_reopening":
            if self.phase_s >= DOOR_OPEN_S * self._door_slowdown():
                self.door = "open"
                self.dwell_s = 1.0 + self.rng.uniform(0, 1.5)
                self._set_phase("door_open")
        elif self.phase == "door_open":
            if self.phase_s >= self.dwell_s:
                self.door = "closing"
                self._set_phase("door_closing")
                self.reopen_at = self._draw_reopen()
        elif self.phase == "door_closing":
            if self.reopen_at is not None and self.phase_s >= self.reopen_at:
                # The door reverses before it locks; a reopening counts as a door cycle, as a monitor counts it.
                self.door = "opening"
                self.door_cycles += 1
                self._set_phase("door_reopening")
            elif self.phase_s >= DOOR_CLOSE_S * self._door_slowdown():
                self.door = "closed"
                self.door_cycles += 1
                self._set_phase("idle")

    def _door_slowdown(self) -> float:
        return 1.0 + WORN_DOOR_SLOWDOWN * self.worn("door_operator")

    def _draw_reopen(self) -> float | None:
        severity = self.worn("door_operator")
        if severity <= 0.0:
            return None  # no draw: a healthy car's random stream is the same as before wear existed
        if self.rng.random() >= WORN_DOOR_REOPEN * severity:
            return None
        return self.rng.uniform(0.3, 0.9) * DOOR_CLOSE_S * self._door_slowdown()

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_s = 0.0

    def _next_move(self) -> None:
        if self.stage is None:
            if not self.calls:
                return
            self.job = self.calls.popleft()
            self.stage = "pickup"
        if self.stage == "deliver" and self.phase_s < self.hold_s:
            return  # passengers still choosing their floor: the car waits at the landing, doors closed
        if self.stage == "rescue":
            floor = self.target_floor
        else:
            assert self.job is not None
            floor = self.job.origin if self.stage == "pickup" else self.job.destination
        if self.nearest_floor == floor and self.in_door_zone:
            self.door = "opening"
            self._set_phase("door_opening")
        else:
            self._start_run(floor, self.rated_speed)

    def _start_run(self, floor: int, speed_limit: float) -> None:
        self.target_floor = floor
        # A worn brake lets the car slide past the landing in its direction of travel, and less consistently.
        brake = self.worn("brake")
        direction = 1.0 if floor * FLOOR_HEIGHT_M >= self.position else -1.0
        limit = 15 + 2 * WORN_BRAKE_MM * brake
        self.next_leveling_mm = clamp(self.rng.gauss(direction * WORN_BRAKE_MM * brake,
                                                     2 + 4 * self.wear + WORN_BRAKE_MM * brake), -limit, limit)
        self.target_pos = floor * FLOOR_HEIGHT_M + self.next_leveling_mm / 1000
        self.speed_limit = speed_limit
        self.run_count += 1
        self.door = "closed"
        self._set_phase("running")

    def _move_toward(self, target: float, dt: float) -> bool:
        """Move with a trapezoidal speed profile; True once the car has arrived."""
        distance = abs(target - self.position)
        sign = 1.0 if target > self.position else -1.0
        speed = abs(self.velocity) if self.velocity * sign > 0 else 0.0
        wanted = max(LEVELING_SPEED_MPS, min(self.speed_limit, math.sqrt(2 * ACCEL_MPS2 * distance)))
        new_speed = min(wanted, speed + ACCEL_MPS2 * dt) if wanted > speed else wanted
        if new_speed * dt >= distance:
            self.position, self.velocity, self.accel = target, 0.0, 0.0
            return True
        self.accel = (new_speed - speed) / dt
        self.position += sign * new_speed * dt
        self.velocity = sign * new_speed
        return False

    def _exchange_passengers(self) -> None:
        moved = 0
        if self.stage == "pickup" and self.job is not None:
            moved = min(self.job.persons, self.capacity - self.persons)
            self.persons += moved
            self.stage = "deliver"
            self.hold_s = boarding_wait(self.operation, self.rng)
        else:
            # Delivered, or rescued: everyone gets out and the car is free for the next call.
            moved, self.persons = self.persons, 0
            self.job, self.stage = None, None
        self.dwell_s = 3.0 + 1.0 * moved + self.rng.uniform(0, 2)
        self._set_phase("door_open")

    def _current(self) -> float:
        if self.velocity == 0.0:
            return 0.0
        load = self.persons * PASSENGER_KG / self.rated_load
        imbalance = abs(load - COUNTERWEIGHT_BALANCE) / (1 - COUNTERWEIGHT_BALANCE)
        return self.rated_current * (0.3 + 0.7 * imbalance * abs(self.velocity) / self.rated_speed
                                     + 0.4 * abs(self.accel) / ACCEL_MPS2)

    # Reporting.

    def telemetry(self) -> dict[str, Any]:
        rng = self.rng
        moving = self.velocity != 0.0
        if moving:
            vibration = (0.006 + (0.014 + WORN_BEARING_G * self.worn("bearing")) * abs(self.velocity) / self.rated_speed
                         + 0.02 * self.wear)
        else:
            vibration = 0.0015 + (0.002 if self.door in ("opening", "closing") else 0.0)
        load_pct = (self.persons * PASSENGER_KG + self.technician_kg) / self.rated_load * 100
        data: dict[str, Any] = {
            "floor": self.nearest_floor + 1,
            "direction": "up" if self.velocity > 0 else "down" if self.velocity < 0 else "stop",
            "speed_mps": round(abs(self.velocity) * (1 + rng.gauss(0, 0.003)), 3) if moving else 0.0,
            "door": self.door,
            "door_zone": self.in_door_zone,
            "load_pct": round(max(0.0, load_pct + rng.gauss(0, 0.4)), 1),
            "occupied": self.persons > 0,
            "mode": self.mode,
            "safety_circuit_ok": self.safety_ok,
            "door_lock_ok": self.door_lock_ok,
            "run_count": self.run_count,
            "door_cycles": self.door_cycles,
            "run_hours": round(self.run_s / 3600, 4),
            "vibration_rms_g": round(vibration + abs(rng.gauss(0, 0.0015 if moving else 0.0004)), 4),
            "motor_current_a": round(self._current() * (1 + rng.gauss(0, 0.02)), 2) if moving else 0.0,
            "motor_temp_c": round(self.motor_temp + rng.gauss(0, 0.1), 1),
            "leveling_mm": round(self.leveling_mm, 1),
        }
        if self.fault == "floor_position_lost":
            del data["floor"]
        return data

    def fault_detail(self) -> dict[str, Any]:
        return {"floor": self.nearest_floor + 1, "door": self.door, "door_zone": self.in_door_zone,
                "speed_mps": round(abs(self.velocity), 3), "rated_speed_mps": self.rated_speed,
                "occupied": self.persons > 0}

    # A maintenance visit (TSG T5002 half-monthly maintenance). Each generator below advances one tick per step
    # (self.dt long); waits end early once the visit is over, and the car is then handed back at a landing.

    def _free(self) -> bool:
        return (self.stage is None and self.phase == "idle" and self.door == "closed" and self.velocity == 0.0
                and self.persons == 0)

    def _visit(self) -> Iterator[object]:
        self.service_mode = "maintenance"
        self._set_phase("maintenance")
        tasks: tuple[Callable[[], Iterator[None]], ...] = (
            self._landing_doors, self._car_roof, self._pit, self._car_inside, self._machine_room)
        while self.maintenance_requested:
            yield from self.rng.choice(tasks)()
        if not self.in_door_zone:
            yield from self._inspection_run(self.nearest_floor * FLOOR_HEIGHT_M)
        self.service_mode = "maintenance"
        yield from self._door_to("open", DOOR_OPEN_S)
        yield from self._for(self.rng.uniform(3, 10))
        yield from self._door_to("closed", DOOR_CLOSE_S)
        self.service_mode = "normal"
        self._set_phase("idle")
        yield _DONE

    def _for(self, seconds: float, until_visit_ends: bool = False) -> Iterator[None]:
        left = seconds
        while left > 0 and not (until_visit_ends and not self.maintenance_requested):
            yield
            left -= self.dt

    def _work(self, seconds: float) -> Iterator[None]:
        """The technician at work: over after `seconds`, or sooner once the visit is over."""
        return self._for(seconds, until_visit_ends=True)

    def _door_to(self, state: str, seconds: float) -> Iterator[None]:
        self.door = "opening" if state == "open" else "closing"
        yield from self._for(seconds)
        self.door = state
        if state == "closed":
            self.door_cycles += 1

    def _inspection_run(self, target: float) -> Iterator[None]:
        # On the inspection control: at most 0.63 m/s (EN 81-20), and the car stops wherever the button is let go.
        self.service_mode = "inspection"
        self.speed_limit = RESCUE_SPEED_MPS
        self.run_count += 1
        target = clamp(target, 0.0, self.top)
        while not self._move_toward(target, self.dt):
            yield

    def _landing_doors(self) -> Iterator[None]:
        # Doors, sills and light curtain at one landing: the door stands open for minutes and is cycled by hand.
        yield from self._inspection_run(self.rng.randrange(self.floors) * FLOOR_HEIGHT_M)
        self.service_mode = "maintenance"
        yield from self._door_to("open", DOOR_OPEN_S)
        for _ in range(self.rng.randint(1, 4)):
            yield from self._work(self.rng.uniform(30, 180))
            yield from self._door_to("closed", DOOR_CLOSE_S)
            yield from self._door_to("open", DOOR_OPEN_S)
        yield from self._work(self.rng.uniform(30, 180))
        yield from self._door_to("closed", DOOR_CLOSE_S)

    def _car_roof(self) -> Iterator[None]:
        # From the car roof: the car creeps between floors and stands there, doors closed, while the technician
        # works with the roof stop switch pressed (the safety circuit open).
        self.technician_kg = PASSENGER_KG
        for _ in range(self.rng.randint(1, 3)):
            floor = self.rng.randrange(self.floors - 1)
            yield from self._inspection_run(floor * FLOOR_HEIGHT_M + self.rng.uniform(0.6, FLOOR_HEIGHT_M - 0.6))
            self.safety_ok = False
            yield from self._work(self.rng.uniform(60, 600))
            self.safety_ok = True
            yield from self._for(self.rng.uniform(5, 30))
        yield from self._inspection_run(self.nearest_floor * FLOOR_HEIGHT_M)
        self.technician_kg = 0.0
        self.service_mode = "maintenance"

    def _pit(self) -> Iterator[None]:
        # The pit: the car is sent up a floor, the lowest landing door opened with the emergency key (its contact
        # opens the door lock circuit with the car standing elsewhere) and the pit stop switch pressed.
        yield from self._inspection_run(min(1, self.floors - 1) * FLOOR_HEIGHT_M)
        self.door_lock_ok = False
        yield from self._for(self.rng.uniform(10, 30))
        self.safety_ok = False
        yield from self._work(self.rng.uniform(300, 900))
        self.safety_ok = True
        yield from self._for(self.rng.uniform(10, 30))
        self.door_lock_ok = True
        self.service_mode = "maintenance"

    def _car_inside(self) -> Iterator[None]:
        # Inside the car, doors closed: the alarm button, intercom, lighting and car panel are tested.
        if not self.in_door_zone:
            yield from self._inspection_run(self.nearest_floor * FLOOR_HEIGHT_M)
        self.service_mode = "maintenance"
        yield from self._door_to("open", DOOR_OPEN_S)
        self.persons = 1
        yield from self._door_to("closed", DOOR_CLOSE_S)
        yield from self._work(self.rng.uniform(60, 300))
        yield from self._door_to("open", DOOR_OPEN_S)
        self.persons = 0
        yield from self._door_to("closed", DOOR_CLOSE_S)

    def _machine_room(self) -> Iterator[None]:
        # In the machine room (brake, sheave, controller): the car stands at its landing.
        yield from self._work(self.rng.uniform(300, 1200))

    def recover(self, fault: str) -> None:
        if fault in KEEPS_RUNNING:
            return
        self.safety_ok = self.door_lock_ok = True
        self.velocity = self.accel = 0.0
        self.fault_s = 0.0
        if not self.in_service:
            return
        # A technician brings the car to the nearest landing and lets everyone out before service resumes.
        self.job, self.stage = None, "rescue"
        self.target_floor = self.nearest_floor
        inside_shaft = 0.0 <= self.position <= self.top
        if self.in_door_zone and inside_shaft:
            if self.door == "open":
                self._exchange_passengers()
            else:
                self.door = "opening"
                self._set_phase("door_opening")
        else:
            self._start_run(self.nearest_floor, RESCUE_SPEED_MPS)


_DONE = object()  # what a visit yields last: the car is handed back


# Fault signatures. Each `enter` puts the car into the state a monitor would report for that fault.

def _halt(car: Elevator) -> None:
    """The drive stops the car wherever the fault caught it; doors in motion end closed."""
    car.velocity = car.accel = 0.0
    if car.door in ("opening", "closing"):
        car.door = "closed"
    car.job, car.stage = None, None
    car._set_phase("halted")


def _halt_between_floors(car: Elevator) -> None:
    _halt(car)
    car.door = "closed"
    if car.in_door_zone:
        offset = car.rng.uniform(0.5, 1.3)
        floor = car.nearest_floor
        car.position = floor * FLOOR_HEIGHT_M + (offset if floor < car.floors - 1 else -offset)


def _halt_at_landing(car: Elevator) -> None:
    _halt(car)
    if not car.in_door_zone:
        car.position = car.nearest_floor * FLOOR_HEIGHT_M + car.leveling_mm / 1000


def _entrapment(car: Elevator) -> None:
    # Stopped between floors with the door closed and someone inside: the 困人 signature.
    _halt_between_floors(car)
    car.persons = max(car.persons, 1 + car.rng.randrange(3))


def _door_close_failure(car: Elevator) -> None:
    _halt_at_landing(car)
    car.door = "closing"  # stuck part-way: the door never reaches closed and the lock cannot make
    car.door_lock_ok = False


def _door_open_failure(car: Elevator) -> None:
    # The operator stalls part-way open (a jammed sill, a failed motor): the door never reaches open, the lock stays
    # broken, and whoever is aboard stays aboard. A door that does not move at all is, with someone inside, an
    # entrapment at a landing, which the scenario injects as such.
    _halt_at_landing(car)
    car.door = "opening"
    car.door_lock_ok = False


def _door_open_too_long(car: Elevator) -> None:
    _halt_at_landing(car)
    car.door = "open"


def _repeated_door_reopen(car: Elevator) -> None:
    _halt_at_landing(car)
    car.door = "closing"


def _reopen_cycle(car: Elevator, dt: float) -> None:
    # Something in the doorway: closing 2 s, reopen 1.5 s, open 1.5 s, over and over.
    position = car.fault_s % 5.0
    door = "closing" if position < 2.0 else "opening" if position < 3.5 else "open"
    if door == "opening" and car.door == "closing":
        car.door_cycles += 1
    car.door = door


def _overspeed(car: Elevator) -> None:
    _halt(car)
    car.door = "closed"
    direction = -1.0 if car.position > FLOOR_HEIGHT_M else 1.0
    car.velocity = direction * car.rated_speed * car.rng.uniform(1.2, 1.3)


def _door_open_while_moving(car: Elevator) -> None:
    _halt(car)
    car.door = "open"
    car.door_lock_ok = False
    car.velocity = (-1.0 if car.position > FLOOR_HEIGHT_M else 1.0) * car.rated_speed * 0.5


def _unintended_movement(car: Elevator) -> None:
    _halt_at_landing(car)
    car.door = "open"
    car.door_lock_ok = False
    car.velocity = (-1.0 if car.position > FLOOR_HEIGHT_M else 1.0) * 0.1


def _drift(car: Elevator, dt: float) -> None:
    # The car keeps moving under the fault; the terminal buffers send it back rather than out of the shaft.
    car.position += car.velocity * dt
    if not 0.0 <= car.position <= car.top:
        car.position = clamp(car.position, 0.0, car.top)
        car.velocity = -car.velocity


def _safety_circuit_open(car: Elevator) -> None:
    _halt(car)
    car.safety_ok = False


def _door_lock_circuit_open(car: Elevator) -> None:
    _halt(car)
    car.door = "closed"
    car.door_lock_ok = False


def _overtravel(top: bool):
    def enter(car: Elevator) -> None:
        # The final limit switch opened the safety chain with the car past the terminal landing.
        _halt(car)
        car.door = "closed"
        car.position = car.top + 0.35 if top else -0.35
        car.safety_ok = False

    return enter


FAULTS: dict[str, FaultBehaviour[Elevator]] = {
    "safety_circuit_open": FaultBehaviour(_safety_circuit_open),
    "door_close_failure": FaultBehaviour(_door_close_failure),
    "door_open_failure": FaultBehaviour(_door_open_failure),
    "stop_outside_door_zone": FaultBehaviour(_halt_between_floors),
    "unintended_movement": FaultBehaviour(_unintended_movement, _drift),
    "run_time_limiter": FaultBehaviour(_halt),
    "floor_position_lost": FaultBehaviour(_halt),
    "rerun_prevention": FaultBehaviour(_halt),
    "alarm_button": FaultBehaviour(lambda car: None),
    "overtravel_bottom": FaultBehaviour(_overtravel(top=False)),
    "overtravel_top": FaultBehaviour(_overtravel(top=True)),
    "entrapment": FaultBehaviour(_entrapment),
    "door_open_while_moving": FaultBehaviour(_door_open_while_moving, _drift),
    "overspeed": FaultBehaviour(_overspeed, _drift),
    "power_failure": FaultBehaviour(_safety_circuit_open),
    "door_lock_circuit_open": FaultBehaviour(_door_lock_circuit_open),
    "door_open_too_long": FaultBehaviour(_door_open_too_long),
    "repeated_door_reopen": FaultBehaviour(_repeated_door_reopen, _reopen_cycle),
    "run_timeout": FaultBehaviour(_halt),
}
# Faults during which the car keeps serving calls (a pressed alarm button does not stop it).
KEEPS_RUNNING = frozenset({"alarm_button"})
Elevator.FAULTS = FAULTS
