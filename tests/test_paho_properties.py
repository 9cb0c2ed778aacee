"""The shared-table Properties must behave exactly like paho's own for what the ingester receives."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from semon import paho_properties
from semon.paho_properties import SharedTableProperties


def test_it_is_installed_where_paho_decodes_publish():
    import paho.mqtt._packet as paho_packet
    import paho.mqtt.client as paho_client

    paho_properties.install()
    assert paho_packet.Properties is SharedTableProperties
    assert paho_client.Properties is SharedTableProperties


def test_it_packs_and_unpacks_like_paho():
    sent = Properties(PacketTypes.PUBLISH)
    sent.MessageExpiryInterval = 30
    sent.UserProperty = [("site", "Xuhui"), ("unit", "3")]
    sent.ContentType = "application/json"
    packed = sent.pack()
    mine, theirs = SharedTableProperties(PacketTypes.PUBLISH), Properties(PacketTypes.PUBLISH)
    assert mine.unpack(packed)[1] == theirs.unpack(packed)[1] == len(packed)
    assert mine.json() == theirs.json()
    assert mine.UserProperty == [("site", "Xuhui"), ("unit", "3")]
    # Unpacking an empty property list clears what an earlier unpack set, as paho's does.
    mine.unpack(b"\x00")
    assert mine.json() == {} and not hasattr(mine, "ContentType")
    # Instances share the tables but not the values.
    other = SharedTableProperties(PacketTypes.PUBLISH)
    assert other.json() == {} and other.names is mine.names
