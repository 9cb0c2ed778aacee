"""Make paho's MQTT 5 Properties cheap to create: it is built for every PUBLISH received.

paho 2.x's ``Properties.__init__`` rebuilds its name and type tables (three dicts and a list) for each
instance, and ``unpack`` starts with a ``clear`` that probes all 27 property names: together a quarter of
the ingester's receive path, 26 µs of GIL per message (bench/RESULTS.md). The tables are read-only, so
instances can share one copy, and clearing only needs to look at what is set. The subclass copies
whatever attributes the real ``__init__`` sets, so a paho release that adds one still works; paho's own
code keeps working because every instance is still a ``Properties``.
"""

from __future__ import annotations

import paho.mqtt.client as paho_client
from paho.mqtt import _packet as paho_packet
from paho.mqtt.properties import Properties


class SharedTableProperties(Properties):
    """A Properties whose lookup tables are shared with a template instance instead of rebuilt."""

    _templates: dict[int, dict] = {}

    def __init__(self, packetType: int):
        template = self._templates.get(packetType)
        if template is None:
            probe = Properties.__new__(Properties)
            Properties.__init__(probe, packetType)
            template = self._templates[packetType] = dict(vars(probe))
        self.__dict__.update(template)

    def clear(self) -> None:
        """Remove every property set (paho's version tests all 27 names one by one, on every PUBLISH)."""
        template = self._templates[self.packetType]
        for name in [n for n in vars(self) if n not in template]:
            delattr(self, name)


def install() -> None:
    """Use SharedTableProperties wherever paho's client and packet decoder create Properties."""
    for module in (paho_client, paho_packet):
        if getattr(module, "Properties", None) is Properties:
            module.Properties = SharedTableProperties
