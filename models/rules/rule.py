"""What a rule is: a fault code and a small condition over one sample, with how modes, hysteresis and a silent
monitor treat it (docs/rules.md). Adding a rule is adding a Rule to its type's RULES."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from models.rules.settings import RuleSettings

# How long a fault's condition must stay gone before it clears (docs/rules.md, "Hysteresis").
NORMAL = "normal"        # rule_clear_s
TRANSIENT = "transient"  # rule_transient_clear_s; a repeat soon after it cleared is the same alert
SLOW = "slow"            # rule_slow_clear_s: signals that swing with the firing, read by slow analysers

# What a pending dwell does when the monitor falls silent (Detector.expire).
COMPLETE = "complete"  # it goes on on the server's clock: the condition is taken to hold still
ABANDON = "abandon"    # it is dropped: silence is no evidence that the condition lasts

# Modes in which a technician works on the equipment: faults they cause on purpose are explained.
TECHNICIAN = frozenset({"inspection", "maintenance"})
OUT_OF_SERVICE = frozenset({"out_of_service"})
# Modes that stop the car where it is or at the nearest landing, and may leave its circuits unpowered.
STOPPING = frozenset({"earthquake", "emergency_power"})
# Modes in which doors stand open at landings or are worked by hand (fire service).
FIRE = frozenset({"fire_return", "firefighter"})



class Hit:
    """The condition holds in this sample: the dwell it needs (s), the consecutive samples that confirm it, whether
    another signal corroborates it at once (no dwell or confirmation needed), and facts for the message."""

    __slots__ = ("dwell", "confirm", "corroborated", "facts", "fresh", "through_silence")

    def __init__(self, dwell: float, facts: dict[str, Any], confirm: int = 1, corroborated: bool = False,
                 fresh: bool = False, through_silence: bool = True):
        self.dwell = dwell
        self.confirm = confirm
        self.corroborated = corroborated
        self.facts = facts
        self.fresh = fresh  # the condition starts anew at this sample: a dwell running before it does not count
        # For a rule that completes on the server's clock (COMPLETE): whether what this sample shows may be taken to
        # hold on if the monitor falls silent now.
        self.through_silence = through_silence


# A condition's verdict on one sample: a Hit, False (it does not hold), or None (the fields it needs were not sent:
# nothing is decided, a dwell or a clear in progress goes on).
Verdict = Hit | bool | None


@dataclass(frozen=True)
class Rule:
    """One derived fault: `check(view, settings)` judges a sample, `describe(facts)` says what was seen."""

    code: str
    check: Callable[[Any, RuleSettings], Verdict]
    describe: Callable[[Mapping[str, Any]], str]
    suppressed_in: frozenset[str] = frozenset()  # modes that explain the fault: it is taken as absent
    hysteresis: str = NORMAL
    on_silence: str = ABANDON
    explained_by: tuple[str, ...] = ()           # open faults that explain this one's condition (checked earlier)


def where(facts: Mapping[str, Any]) -> str:
    """' at floor 5' or ' near floor 5', when the floor is known."""
    floor = facts.get("floor")
    if floor is None:
        return ""
    return f" {'near' if facts.get('door_zone') is False else 'at'} floor {floor}"
