"""MQTT 5.0 packet encoding and decoding for the simulator's QoS 1 publisher.

Only what a publish-only client needs, from the OASIS standard *MQTT Version 5.0*
(7 March 2019, https://docs.oasis-open.org/mqtt/mqtt/v5.0/mqtt-v5.0.html):

* 1.5.5 Variable Byte Integer, 1.5.4 UTF-8 string, 1.5.6 Binary Data;
* 2.1 fixed header, 2.2.1 Packet Identifier, 2.2.2 Properties (2.2.2.2 identifiers/types);
* 3.1 CONNECT, 3.2 CONNACK, 3.3 PUBLISH, 3.4 PUBACK, 3.12/3.13 PINGREQ/PINGRESP,
  3.14 DISCONNECT; 2.4 Reason Codes.

The hot path is :func:`encode_publishes`: a whole tick of QoS 1 PUBLISH packets written into
one ``bytearray`` (per message: a cached topic prefix, a tabled header and packet id, the
payload), and :func:`parse_pubacks`: PUBACKs parsed in bulk with numpy when the receive
buffer holds only the two fixed-size forms Mosquitto sends (``40 02 id id`` for success,
``40 03 id id rc`` with a reason code), with a general per-packet parser otherwise.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Control packet types (2.1.2), first byte of the fixed header.
CONNECT = 0x10
CONNACK = 0x20
PUBLISH_QOS1 = 0x32  # type 3, DUP 0, QoS 1, RETAIN 0 (3.3.1)
PUBLISH_QOS1_DUP = 0x3A  # DUP 1: a re-delivery (3.3.1.1)
PUBACK = 0x40
PINGREQ_PACKET = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT = 0xE0

#: Reason code names (2.4) for the codes a publisher can see.
REASON_NAMES: dict[int, str] = {
    0x00: "success",
    0x04: "disconnect with will message",
    0x10: "no matching subscribers",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9F: "connection rate exceeded",
}


def reason_name(code: int) -> str:
    """``0x87 not authorized`` style label of a reason code."""
    return f"0x{code:02X} {REASON_NAMES.get(code, 'unknown')}"


class ProtocolError(ValueError):
    """Bytes from the broker that do not follow MQTT 5.0 (message says what)."""


# -- primitives ---------------------------------------------------------------------------


def encode_varint(n: int) -> bytes:
    """Variable Byte Integer (1.5.5): 7 bits per byte, high bit = more bytes follow."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"variable byte integer out of range: {n}")
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """``(value, next position)``, or ``None`` if ``buf`` ends inside the integer."""
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, len(buf))):
        b = buf[i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) - pos >= 4:
        raise ProtocolError("variable byte integer longer than 4 bytes")
    return None


def encode_string(s: str) -> bytes:
    """UTF-8 Encoded String (1.5.4): 2-byte big-endian length, then the bytes."""
    raw = s.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("UTF-8 string longer than 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def encode_binary(b: bytes) -> bytes:
    """Binary Data (1.5.6): 2-byte length, then the bytes."""
    if len(b) > 0xFFFF:
        raise ValueError("binary data longer than 65,535 bytes")
    return struct.pack("!H", len(b)) + b


def topic_prefix(topic: str) -> bytes:
    """The Topic Name field of a PUBLISH (3.3.2.1), validated for publishing.

    Raises
    ------
    ValueError
        Empty, longer than 65,535 bytes, or containing a wildcard (``+``/``#``) or NUL,
        all forbidden in a Topic Name (4.7.1, 4.7.3, 1.5.4).
    """
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise ValueError(f"invalid MQTT topic name for PUBLISH: {topic!r}")
    return encode_string(topic)


# -- properties (2.2.2.2) -----------------------------------------------------------------

_BYTE = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})
_TWO = frozenset({0x13, 0x21, 0x22, 0x23})
_FOUR = frozenset({0x02, 0x11, 0x18, 0x27})
_VARINT = frozenset({0x0B})
_STRING = frozenset({0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F})
_BINARY = frozenset({0x09, 0x16})
_PAIR = 0x26


def decode_properties(buf: bytes | memoryview, pos: int, end: int) -> dict[int, Any]:
    """Properties from ``pos`` (at the Property Length) to ``end``; user properties as a list.

    Raises
    ------
    ProtocolError
        Unknown identifier or a property running past ``end``.
    """
    got = decode_varint(buf, pos)
    if got is None:
        raise ProtocolError("truncated property length")
    length, pos = got
    stop = pos + length
    if stop > end:
        raise ProtocolError("properties run past the packet")
    props: dict[int, Any] = {}
    while pos < stop:
        ident = buf[pos]
        pos += 1
        if ident in _BYTE:
            props[ident], pos = buf[pos], pos + 1
        elif ident in _TWO:
            props[ident], pos = int.from_bytes(buf[pos : pos + 2], "big"), pos + 2
        elif ident in _FOUR:
            props[ident], pos = int.from_bytes(buf[pos : pos + 4], "big"), pos + 4
        elif ident in _VARINT:
            v = decode_varint(buf, pos)
            if v is None:
                raise ProtocolError("truncated property")
            props[ident], pos = v
        elif ident in _STRING or ident in _BINARY:
            n = int.from_bytes(buf[pos : pos + 2], "big")
            raw = bytes(buf[pos + 2 : pos + 2 + n])
            props[ident] = raw.decode("utf-8", "replace") if ident in _STRING else raw
            pos += 2 + n
        elif ident == _PAIR:
            kn = int.from_bytes(buf[pos : pos + 2], "big")
            key = bytes(buf[pos + 2 : pos + 2 + kn]).decode("utf-8", "replace")
            pos += 2 + kn
            vn = int.from_bytes(buf[pos : pos + 2], "big")
            val = bytes(buf[pos + 2 : pos + 2 + vn]).decode("utf-8", "replace")
            pos += 2 + vn
            props.setdefault(ident, []).append((key, val))
        else:
            raise ProtocolError(f"unknown property identifier 0x{ident:02X}")
    if pos != stop:
        raise ProtocolError("property runs past the property length")
    return props


# -- CONNECT / CONNACK / DISCONNECT -------------------------------------------------------


def encode_connect(
    client_id: str,
    *,
    keepalive: int = 30,
    clean_start: bool = False,
    session_expiry: int = 0,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    """CONNECT (3.1) for MQTT 5.0, without a Will.

    ``session_expiry`` > 0 asks the broker to keep the session (3.1.2.11.2), so after a
    reconnect with ``clean_start=False`` the unacknowledged PUBLISHes are resent with
    their original packet ids (4.4).
    """
    flags = 0x02 if clean_start else 0x00
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    props = b"\x11" + struct.pack("!I", session_expiry) if session_expiry else b""
    variable = (
        encode_string("MQTT") + bytes((5, flags)) + struct.pack("!H", keepalive)
        + encode_varint(len(props)) + props
    )  # fmt: skip
    payload = encode_string(client_id)
    if username is not None:
        payload += encode_string(username)
    if password is not None:
        payload += encode_binary(password.encode("utf-8"))
    body = variable + payload
    return bytes((CONNECT,)) + encode_varint(len(body)) + body


@dataclass(frozen=True)
class ConnAck:
    """A decoded CONNACK (3.2): what the publisher must honour."""

    session_present: bool
    reason_code: int
    properties: dict[int, Any] = field(default_factory=dict)

    @property
    def receive_maximum(self) -> int:
        """Most unacknowledged QoS 1 PUBLISHes the broker accepts (3.2.2.3.3; absent 65,535)."""
        return int(self.properties.get(0x21, 65_535))

    @property
    def maximum_packet_size(self) -> int | None:
        """Largest packet the broker accepts (3.2.2.3.6), ``None`` if unlimited."""
        v = self.properties.get(0x27)
        return None if v is None else int(v)

    @property
    def maximum_qos(self) -> int:
        """Highest QoS the broker supports (3.2.2.3.4; absent 2)."""
        return int(self.properties.get(0x24, 2))

    @property
    def server_keepalive(self) -> int | None:
        """Keep alive the broker imposes (3.2.2.3.14), if any."""
        v = self.properties.get(0x13)
        return None if v is None else int(v)

    @property
    def reason_string(self) -> str | None:
        return self.properties.get(0x1F)


def decode_connack(body: bytes | memoryview) -> ConnAck:
    """The variable header of a CONNACK (everything after the fixed header)."""
    if len(body) < 2:
        raise ProtocolError("CONNACK shorter than 2 bytes")
    props = decode_properties(body, 2, len(body)) if len(body) > 2 else {}
    return ConnAck(bool(body[0] & 0x01), body[1], props)


#: DISCONNECT (3.14) with reason 0x00 and Session Expiry Interval 0 (3.14.2.2.2): a clean
#: end, and the broker may drop the session at once instead of keeping it until expiry.
DISCONNECT_PACKET = b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00"


# -- PUBLISH ------------------------------------------------------------------------------

#: Packet Identifier (2.2.1) + Property Length 0 (3.3.2.3), per id 0..65535 (0 unused).
_PID_PROPS: list[bytes] = [struct.pack("!HB", i, 0) for i in range(65_536)]
_HEADERS: dict[int, list[bytes]] = {
    first: [bytes((first,)) + encode_varint(n) for n in range(16_384)]
    for first in (PUBLISH_QOS1, PUBLISH_QOS1_DUP)
}


def encode_publish(topic: str, payload: bytes, packet_id: int, *, dup: bool = False) -> bytes:
    """One QoS 1 PUBLISH (3.3) without properties (reference form of the bulk encoder)."""
    return bytes(encode_publishes([(topic, payload)], [packet_id], {}, dup=dup))


def encode_publishes(
    messages: Sequence[tuple[str, bytes]],
    packet_ids: Sequence[int],
    topic_cache: dict[str, bytes],
    *,
    dup: bool = False,
    max_packet_size: int | None = None,
) -> bytearray:
    """QoS 1 PUBLISH packets (3.3) for ``messages``, concatenated, ready for one ``sendall``.

    ``topic_cache`` maps a topic to its encoded Topic Name (device topics repeat every
    second); it is filled here. Raises ``ValueError`` for an invalid topic or a packet
    larger than ``max_packet_size``.
    """
    first = PUBLISH_QOS1_DUP if dup else PUBLISH_QOS1
    headers = _HEADERS[first]
    pid_props = _PID_PROPS
    out = bytearray()
    for (topic, payload), pid in zip(messages, packet_ids, strict=True):
        tp = topic_cache.get(topic)
        if tp is None:
            tp = topic_cache[topic] = topic_prefix(topic)
        rl = len(tp) + 3 + len(payload)  # topic, packet id (2), property length (1), payload
        if max_packet_size is not None and rl + 5 > max_packet_size:
            raise ValueError(
                f"PUBLISH to {topic} is {rl} bytes, over the broker's maximum packet size "
                f"{max_packet_size}"
            )
        out += headers[rl] if rl < 16_384 else bytes((first,)) + encode_varint(rl)
        out += tp
        out += pid_props[pid]
        out += payload
    return out


# -- reading ------------------------------------------------------------------------------


@dataclass
class Received:
    """What one pass over the receive buffer found."""

    #: Packet ids acknowledged and their PUBACK reason codes (0 = success).
    ack_ids: np.ndarray
    ack_reasons: np.ndarray
    pingresps: int = 0
    #: Reason code of a DISCONNECT sent by the broker, if one arrived.
    disconnect: int | None = None
    #: Other packets ``(first byte, body)`` (e.g. a CONNACK during the handshake).
    other: list[tuple[int, bytes]] = field(default_factory=list)


_EMPTY = np.zeros(0, dtype=np.int64)
_BULK_BYTES = 512  # below this, the per-packet parser is cheaper than numpy's call overhead


def _uniform_pubacks(buf: bytearray, size: int) -> tuple[int, np.ndarray, np.ndarray] | None:
    """Bulk path: the longest prefix of ``size``-byte PUBACKs (4: success, 5: + reason)."""
    n = len(buf) // size
    if n == 0:
        return None
    a = np.frombuffer(buf, dtype=np.uint8, count=n * size).reshape(n, size)
    if not ((a[:, 0] == PUBACK).all() and (a[:, 1] == size - 2).all()):
        return None
    ids = (a[:, 2].astype(np.int64) << 8) | a[:, 3]
    reasons = a[:, 4].astype(np.int64) if size == 5 else np.zeros(n, dtype=np.int64)
    return n * size, ids, reasons


def parse_pubacks(buf: bytearray) -> tuple[int, Received]:
    """Parse every complete packet at the start of ``buf``; returns ``(bytes used, found)``.

    PUBACK (3.4): ``0x40``, Remaining Length, Packet Identifier, then Reason Code
    (omitted when Remaining Length is 2, meaning 0x00 success, 3.4.2.1) and properties
    (omitted when Remaining Length < 4, 3.4.2.2). The caller drops the used bytes and keeps
    the rest (a packet cut by the end of a ``recv``).
    """
    for size in (4, 5) if len(buf) >= _BULK_BYTES else ():
        bulk = _uniform_pubacks(buf, size)
        if bulk is not None:
            used, ids, reasons = bulk
            more, rest = _parse_general(memoryview(buf)[used:])
            if len(rest.ack_ids):
                rest.ack_ids = np.concatenate([ids, rest.ack_ids])
                rest.ack_reasons = np.concatenate([reasons, rest.ack_reasons])
            else:
                rest.ack_ids, rest.ack_reasons = ids, reasons
            return used + more, rest
    return _parse_general(buf)


def _parse_general(buf: bytearray | memoryview) -> tuple[int, Received]:
    """Packet by packet: any PUBACK form, PINGRESP, DISCONNECT, others kept."""
    ids_l: list[int] = []
    reasons_l: list[int] = []
    got = Received(_EMPTY, _EMPTY)
    pos, end = 0, len(buf)
    while pos + 2 <= end:
        first = buf[pos]
        rl = decode_varint(buf, pos + 1)
        if rl is None:
            break
        length, start = rl
        stop = start + length
        if stop > end:
            break
        kind = first & 0xF0
        if kind == PUBACK:
            if length < 2:
                raise ProtocolError("PUBACK shorter than 2 bytes")
            ids_l.append((buf[start] << 8) | buf[start + 1])
            reasons_l.append(buf[start + 2] if length > 2 else 0)
        elif kind == PINGRESP:
            got.pingresps += 1
        elif kind == DISCONNECT:
            got.disconnect = buf[start] if length else 0
        else:
            got.other.append((first, bytes(buf[start:stop])))
        pos = stop
    if ids_l:
        got.ack_ids = np.array(ids_l, dtype=np.int64)
        got.ack_reasons = np.array(reasons_l, dtype=np.int64)
    return pos, got
