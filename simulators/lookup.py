"""The registry as the ingester sees it for a simulated fleet, so that its messages can be parsed without a database
(benchmarks and tests that feed the simulators' telemetry straight to the rules)."""

from __future__ import annotations

from ingest.messages import Equipment, FaultCode, Lookup
from semon.vocabulary import EQUIPMENT_TYPES
from simulators.simulation import FleetSimulation


class FleetLookup(Lookup):
    """The registry after importing the fleet's CSV: ids in the fleet's order, every fault name known."""

    def __init__(self, simulation: FleetSimulation):
        self.known = {e.code: Equipment(i, e.code, e.type) for i, e in enumerate(simulation.fleet_all, 1)}

    def equipment(self, code: str) -> Equipment | None:
        return self.known.get(code)

    def fault_code(self, name_or_number: str | int) -> FaultCode | None:
        # The simulators only send fault names the migration seeds (tests/test_simulators.py checks that).
        return FaultCode(str(name_or_number), None, EQUIPMENT_TYPES)
