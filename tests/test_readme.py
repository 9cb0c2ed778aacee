"""What the README promises of `make demo` is what the demo scenario builds."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

from simulators.fleet import build_fleet
from simulators.scenario import load_scenario
from tests.conftest import REPO


def test_the_readme_counts_the_demo_fleet_as_it_is_built(base_config):
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    match = re.search(r"imports a simulated fleet \((\d+) equipment: (\d+) elevators, (\d+) escalators, (\d+) boilers"
                      r" and (\d+) pressure vessels, (\d+) of them suspended, in (\d+) districts with (\d+) maintenance"
                      r" firms; (\d+) overdue for periodic inspection", text)
    assert match, "the README no longer describes the demo fleet in the expected words"
    scenario = load_scenario("demo")
    fleet = build_fleet(scenario, base_config.simulate_seed, date(2026, 12, 1))
    types = Counter(e.type for e in fleet)
    built = (len(fleet), types["elevator"], types["escalator"], types["boiler"], types["pressure_vessel"],
             sum(e.status == "suspended" for e in fleet), len({e.district for e in fleet}),
             len({e.maintenance_firm for e in fleet}), len(scenario.overdue_inspection))
    assert tuple(int(n) for n in match.groups()) == built
