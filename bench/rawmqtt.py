"""A minimal MQTT 3.1.1 client on a plain socket: the benchmark's load generator and the broker's own ceiling.

Why not paho for the load: on this 2-core machine a paho QoS 1 publisher manages 5,400-8,000 messages/s with
a whole core, so at 10,000 messages/s the load generator would take the CPU the ingester needs and the
benchmark would measure the generator. Pipelining PUBLISH packets and reading PUBACKs in bulk costs a few
microseconds a message (about 150,000 messages/s from one process into Mosquitto).

Why a raw subscriber: it drains a persistent session as fast as Mosquitto can deliver, which tells whether a
ceiling is the broker's or the MQTT client library's.

Only what the benchmark needs: CONNECT, PUBLISH at QoS 1 (no retransmission: a broken connection is an
error here, not something to ride out), PUBACK, SUBSCRIBE, DISCONNECT.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable, Iterable

_CONNECT, _CONNACK, _PUBLISH, _PUBACK, _SUBSCRIBE, _SUBACK, _DISCONNECT = 0x10, 0x20, 0x30, 0x40, 0x82, 0x90, 0xE0


class MqttError(Exception):
    """The broker refused, closed the connection or sent something unexpected."""


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def _split_packets(buf: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """(first byte, body start, body end) of each complete packet in buf, and where the incomplete rest starts."""
    packets = []
    pos, size = 0, len(buf)
    while pos + 2 <= size:
        i, length, mult = pos + 1, 0, 1
        while True:
            if i >= size:
                return packets, pos
            byte = buf[i]
            length += (byte & 127) * mult
            mult *= 128
            i += 1
            if not byte & 128:
                break
        if i + length > size:
            break
        packets.append((buf[pos], i, i + length))
        pos = i + length
    return packets, pos


class RawConnection:
    """One MQTT 3.1.1 connection."""

    def __init__(self, host: str, port: int, client_id: str, *, clean_session: bool = True):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Keep-alive 0: the benchmark's connections are busy or short; no PINGREQ bookkeeping needed.
        flags = 0x00 if not clean_session else 0x02
        body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 0) + _string(client_id)
        self.sock.sendall(bytes([_CONNECT]) + _remaining_length(len(body)) + body)
        self._buf = b""
        header, body = self.read_packet()
        if header != _CONNACK or len(body) != 2 or body[1] != 0:
            raise MqttError(f"broker refused the connection of {client_id!r}: {header:#x} {body!r}")
        self.session_present = bool(body[0] & 1)
        # Blocking from here on: reads that must not wait say so with MSG_DONTWAIT (with a socket timeout
        # set, Python would poll for readability before every recv, MSG_DONTWAIT or not).
        self.sock.settimeout(None)

    def read_packet(self) -> tuple[int, bytes]:
        """The next whole packet (blocking)."""
        while True:
            packets, rest = _split_packets(self._buf)
            if packets:
                header, start, end = packets[0]
                packet = self._buf[start:end]
                self._buf = self._buf[end:]
                return header, packet
            data = self.sock.recv(65536)
            if not data:
                raise MqttError("the broker closed the connection")
            self._buf += data

    def subscribe(self, topic: str, qos: int = 1) -> None:
        body = struct.pack("!H", 1) + _string(topic) + bytes([qos])
        self.sock.sendall(bytes([_SUBSCRIBE]) + _remaining_length(len(body)) + body)
        header, reply = self.read_packet()
        if header != _SUBACK or reply[-1] > 2:
            raise MqttError(f"subscription to {topic} refused: {reply!r}")

    def disconnect(self) -> None:
        try:
            self.sock.sendall(bytes([_DISCONNECT, 0]))
        finally:
            self.sock.close()


class RawPublisher(RawConnection):
    """Publishes at QoS 1 with at most `window` messages not yet acknowledged by the broker."""

    def __init__(self, host: str, port: int, client_id: str, window: int = 2000):
        super().__init__(host, port, client_id, clean_session=True)
        if not 0 < window < 65535:
            raise ValueError("window must leave packet ids free: 0 < window < 65535")
        self.window = window
        self.published = 0
        self.acked = 0
        self._mid = 0
        self._unacked: set[int] = set()

    def publish_many(self, messages: Iterable[tuple[bytes, bytes]]) -> None:
        """Send (topic, payload) pairs at QoS 1, in one write per window's worth, reading PUBACKs as they come."""
        chunk: list[bytes] = []
        for topic, payload in messages:
            while len(self._unacked) + len(chunk) >= self.window:
                if chunk:
                    self._send(chunk)
                    chunk = []
                self._read_acks(block=True)
            self._mid = self._mid % 65535 + 1
            self._unacked.add(self._mid)
            body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", self._mid) + payload
            chunk.append(b"\x32" + _remaining_length(len(body)) + body)
        if chunk:
            self._send(chunk)
        self._read_acks(block=False)

    def _send(self, chunk: list[bytes]) -> None:
        self.sock.sendall(b"".join(chunk))
        self.published += len(chunk)

    def _read_acks(self, block: bool) -> None:
        try:
            data = self.sock.recv(65536) if block else self.sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not data:
            raise MqttError("the broker closed the connection")
        self._buf += data
        packets, rest = _split_packets(self._buf)
        for header, start, end in packets:
            if header != _PUBACK or end - start != 2:
                raise MqttError(f"unexpected packet {header:#x} from the broker")
            mid = (self._buf[start] << 8) | self._buf[start + 1]
            if mid not in self._unacked:
                raise MqttError(f"PUBACK for unknown packet id {mid}")
            self._unacked.discard(mid)
            self.acked += 1
        self._buf = self._buf[rest:]

    def wait_acked(self, timeout_s: float) -> bool:
        """True once the broker acknowledged everything published."""
        deadline = time.monotonic() + timeout_s
        while self._unacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if select.select([self.sock], [], [], remaining)[0]:
                self._read_acks(block=True)
        return True


def prime_session(host: str, port: int, client_id: str, topic: str) -> None:
    """Create a persistent session subscribed to topic at QoS 1, then leave it to collect messages."""
    conn = RawConnection(host, port, client_id, clean_session=False)
    conn.subscribe(topic, qos=1)
    conn.disconnect()


def drain_session(host: str, port: int, client_id: str, expected: int, timeout_s: float,
                  on_connected: Callable[[], None] = lambda: None) -> int:
    """Resume the persistent session and acknowledge messages until `expected` arrived; returns the count."""
    conn = RawConnection(host, port, client_id, clean_session=False)
    on_connected()
    if not conn.session_present:
        raise MqttError(f"the broker has no session for {client_id}")
    sock, count, buf = conn.sock, 0, conn._buf
    deadline = time.monotonic() + timeout_s
    sock.settimeout(5)
    while count < expected and time.monotonic() < deadline:
        data = sock.recv(1 << 20)
        if not data:
            raise MqttError("the broker closed the connection")
        buf = buf + data if buf else data
        packets, rest = _split_packets(buf)
        acks = []
        for header, start, _end in packets:
            if header & 0xF0 == _PUBLISH:
                count += 1
                if header & 0x06:  # QoS 1: acknowledge with the packet id that follows the topic
                    topic_len = (buf[start] << 8) | buf[start + 1]
                    acks.append(b"\x40\x02" + buf[start + 2 + topic_len:start + 4 + topic_len])
        buf = buf[rest:]
        if acks:
            sock.sendall(b"".join(acks))
    conn.disconnect()
    return count


def discard_session(host: str, port: int, client_id: str) -> None:
    """Remove a persistent session (a clean-session connect replaces it) so it stops collecting messages."""
    RawConnection(host, port, client_id, clean_session=True).disconnect()
