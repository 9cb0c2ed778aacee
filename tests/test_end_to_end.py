"""End to end: a simulated elevator publishes through the real broker, the real ingester stores it in the
real TimescaleDB, the fault it reports becomes an open alert as it is stored, and the hazards JSON endpoint lists
it."""

from __future__ import annotations

import threading

from ingest.service import Ingester
from semon.registry.importer import import_registry_csv
from simulators.run import run_simulation, write_scenario_registry
from tests.conftest import wait_until
from tests.mqtt_helpers import Publisher
from web import create_app

SCENARIO = """
name: one-elevator
utc_offset: "+08:00"
old_install_share: 0
districts:
  - name: Xuhui District
    code: D1
    equipment: {elevator: 1}
    sites:
      - {use_unit: "Tianping Garden Property Management", address: "88 Tianping Road", kind: residential,
         floors: 18, hosts: [elevator]}
firms:
  - {name: "Huasheng Elevator Maintenance Co., Ltd.", phone: "021-64321000", serves: [elevator]}
overdue_inspection: []
suspended: []
faults:
  - {at_s: 1, equipment: EL-D1-0001, fault: entrapment}
"""


def test_a_simulated_entrapment_becomes_an_open_hazard(config, db, tmp_path):
    scenario = tmp_path / "one-elevator.yaml"
    scenario.write_text(SCENARIO)
    registry = tmp_path / "registry.csv"
    assert write_scenario_registry(str(scenario), 7, registry) == 1
    import_registry_csv(config, registry, create_districts=True)

    ingester = Ingester(config)
    ingester.start()
    stop = threading.Event()
    simulator = threading.Thread(target=run_simulation, args=(config, str(scenario)),
                                 kwargs={"seed": 7, "interval_s": 0.5, "duration_s": 30, "stop_event": stop})
    simulator.start()
    try:
        event = wait_until(lambda: db.execute("SELECT * FROM events").fetchone(), timeout=20,
                           message="the entrapment event stored")
        assert (event["code"], event["state"]) == ("entrapment", "raised")
        # The ingester opens the alert in the transaction that stores the event: no job to wait for.
        alert = db.execute("SELECT * FROM alerts WHERE kind = 'entrapment'").fetchone()
        assert alert is not None and alert["sources"] == ["device"]
        trapped = wait_until(lambda: db.execute(
            "SELECT * FROM telemetry_elevator WHERE ts > %s ORDER BY ts LIMIT 1", (event["ts"],)).fetchone(),
            timeout=10, message="telemetry after the fault")
        assert trapped["occupied"] and trapped["door"] == "closed" and trapped["speed_mps"] == 0
    finally:
        stop.set()
        simulator.join(30)
        ingester.stop()
        clear = Publisher(config.mqtt_url)
        clear.publish("sem/v1/elevator/EL-D1-0001/status", b"", retain=True)  # leave the shared broker clean
        clear.close()

    hazards = create_app(config).test_client().get("/api/hazards").get_json()["items"]
    assert [(h["equipment_code"], h["kind"], h["severity"], h["state"]) for h in hazards] == [
        ("EL-D1-0001", "entrapment", "critical", "open")]
    assert hazards[0]["firm"] == "Huasheng Elevator Maintenance Co., Ltd."
