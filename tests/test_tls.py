"""TLS on the broker's listener (docs/monitors.md): the simulated fleet's stream goes over mqtts:// end to end, and a
client that does not trust the broker's CA, or speaks plain MQTT, gets nowhere."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bench.services import BrokerTls
from ingest.service import Ingester
from semon.registry.importer import import_registry_csv
from semon.tls import LocalCa, endpoint, make_local_ca
from simulators.run import run_simulation, write_scenario_registry
from tests.conftest import Broker, wait_until
from tests.mqtt_helpers import SIMULATOR, Publisher

SCENARIO = """
name: tls-fleet
utc_offset: "+08:00"
old_install_share: 0
districts:
  - name: Xuhui District
    code: T1
    equipment: {elevator: 2, boiler: 1}
    sites:
      - {use_unit: "Tianping Garden Property Management", address: "88 Tianping Road", kind: residential,
         floors: 18, hosts: [elevator, boiler]}
firms:
  - {name: "Huasheng Elevator Maintenance Co., Ltd.", phone: "021-64321000", serves: [elevator, boiler]}
overdue_inspection: []
suspended: []
faults: []
"""


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory) -> LocalCa:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tls_broker(tmp_path, local_ca) -> Iterator[Broker]:
    (tmp_path / "broker").mkdir()
    server = Broker(tmp_path / "broker", tls=BrokerTls(local_ca.server_cert, local_ca.server_key))
    server.start()
    yield server
    server.stop()


def test_the_simulated_stream_is_stored_over_tls_end_to_end(config, db, tls_broker, local_ca, tmp_path):
    scenario = tmp_path / "tls-fleet.yaml"
    scenario.write_text(SCENARIO)
    registry = tmp_path / "registry.csv"
    assert write_scenario_registry(str(scenario), 7, registry) == 3
    import_registry_csv(config, registry, create_districts=True)
    over_tls = config.replace(mqtt_url=tls_broker.address, mqtt_tls_ca_file=str(local_ca.ca_cert),
                              simulate_mqtt_username=SIMULATOR[0], simulate_mqtt_password=SIMULATOR[1])
    assert tls_broker.address.startswith("mqtts://")
    assert endpoint(over_tls, "ingester").tls and endpoint(over_tls, "simulator").tls

    ingester = Ingester(over_tls)
    ingester.start()
    stop = threading.Event()
    simulator = threading.Thread(target=run_simulation, args=(over_tls, str(scenario)),
                                 kwargs={"seed": 7, "interval_s": 0.2, "duration_s": 30, "stop_event": stop})
    simulator.start()
    try:
        assert ingester.wait_connected(10), "the ingester did not connect over TLS"
        wait_until(lambda: {r["code"] for r in db.execute(
            "SELECT DISTINCT e.code FROM telemetry_elevator t JOIN equipment e ON e.id = t.equipment_id")}
            == {"EL-T1-0001", "EL-T1-0002"} and db.execute("SELECT 1 FROM telemetry_boiler").fetchone(),
            timeout=20, message="telemetry of every simulated monitor stored over TLS")
    finally:
        stop.set()
        simulator.join(30)
        ingester.stop()
    assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0


def test_a_client_that_does_not_trust_the_brokers_ca_is_refused(tls_broker):
    # No CA given: the system's CAs, which never signed the local CA's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        Publisher(tls_broker.url)


def test_plain_mqtt_gets_no_answer_from_a_tls_listener(tls_broker, local_ca):
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    plain.username_pw_set(*SIMULATOR)
    answers: list[object] = []
    plain.on_connect = lambda client, userdata, flags, reason_code, properties: answers.append(reason_code)
    plain.connect("127.0.0.1", tls_broker.port)
    plain.loop_start()
    time.sleep(1.5)
    plain.loop_stop()
    assert answers == [] and not plain.is_connected()
    trusted = Publisher(tls_broker.url, ca_file=str(local_ca.ca_cert))
    trusted.publish("sem/v1/elevator/EL-T9-0001/status", "online")
    assert trusted.client.is_connected()
    trusted.close()


def test_make_local_ca_will_not_replace_a_ca_in_use(local_ca):
    from semon.config import ConfigError

    with pytest.raises(ConfigError, match="exists: choose an empty directory"):
        make_local_ca(Path(local_ca.directory))
    assert local_ca.server_key.stat().st_mode & 0o777 == 0o600


def test_a_broker_requiring_client_certificates_lets_in_only_clients_that_present_one(config, tmp_path, local_ca):
    (tmp_path / "broker").mkdir()
    server = Broker(tmp_path / "broker", tls=BrokerTls(local_ca.server_cert, local_ca.server_key,
                                                       client_ca_file=local_ca.ca_cert))
    server.start()
    over_tls = config.replace(mqtt_url=server.address, mqtt_tls_ca_file=str(local_ca.ca_cert))
    without = Ingester(over_tls)
    with_cert = Ingester(over_tls.replace(mqtt_tls_cert_file=str(local_ca.client_cert),
                                          mqtt_tls_key_file=str(local_ca.client_key),
                                          mqtt_client_id=over_tls.mqtt_client_id + "-cert"))
    try:
        without.start()
        with_cert.start()
        assert with_cert.wait_connected(10)
        assert not without.wait_connected(2)
    finally:
        with_cert.stop()
        without.stop(timeout=1)
        server.stop()
