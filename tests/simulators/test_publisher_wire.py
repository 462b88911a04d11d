"""MQTT 5.0 packet encoding/decoding of the lean publisher, against paho-mqtt's own bytes.

paho-mqtt is the reference: it connects for real to a loopback TCP socket this test
listens on, and the bytes it writes (CONNECT, QoS 1 PUBLISH) are compared with
``simulators.mqtt_wire``. PUBACK parsing is checked on packets written out from the
standard's layout (MQTT 5.0 3.4) and on every split of a stream across ``recv`` calls.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.mqtt_wire import (
    DISCONNECT_PACKET,
    ProtocolError,
    decode_connack,
    decode_varint,
    encode_connect,
    encode_publish,
    encode_publishes,
    encode_varint,
    parse_pubacks,
    reason_name,
)


def _read_packet(conn: socket.socket) -> bytes:
    """One whole MQTT packet from ``conn`` (fixed header + Remaining Length bytes)."""
    buf = b""
    while True:
        got = decode_varint(buf, 1) if len(buf) >= 2 else None
        if got is not None and len(buf) >= got[1] + got[0]:
            return buf[: got[1] + got[0]]
        chunk = conn.recv(65536)
        assert chunk, "paho closed the connection"
        buf += chunk


@contextmanager
def paho_wire(
    *, client_id: str, username: str | None = None, password: str | None = None
) -> Iterator[tuple[mqtt.Client, socket.socket, bytes]]:
    """A paho v5 client connected to a socket we accept: ``(client, server side, CONNECT)``."""
    server = socket.create_server(("127.0.0.1", 0))
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if username is not None:
        c.username_pw_set(username, password)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    c.connect("127.0.0.1", server.getsockname()[1], keepalive=30, clean_start=False,
              properties=props)  # fmt: skip
    conn, _ = server.accept()
    try:
        connect = _read_packet(conn)
        conn.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK: success, no properties
        c.loop(timeout=1.0)
        assert c.is_connected()
        yield c, conn, connect
    finally:
        c._sock_close()
        conn.close()
        server.close()


def test_connect_matches_paho() -> None:
    with paho_wire(client_id="sim-abc", username="sim", password="s3cret") as (_, _, connect):
        ours = encode_connect(
            "sim-abc", keepalive=30, clean_start=False, session_expiry=300,
            username="sim", password="s3cret",
        )  # fmt: skip
        assert ours == connect


@pytest.mark.parametrize("size", [0, 1, 90, 127, 2_000, 16_300, 16_384, 70_000])
def test_publish_matches_paho(size: int) -> None:
    """Same PUBLISH bytes for payloads across the 1-, 2- and 3-byte Remaining Lengths."""
    payload = bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8))
    topic = "city/centro/wearable/wear-00042/accel"
    with paho_wire(client_id="sim-pub") as (c, conn, _):
        info = c.publish(topic, payload, qos=1)
        theirs = _read_packet(conn)
    assert info.mid == 1
    assert encode_publish(topic, payload, 1) == theirs
    # DUP re-delivery differs only in the DUP bit of the first byte (3.3.1.1)
    dup = encode_publish(topic, payload, 1, dup=True)
    assert dup[0] == theirs[0] | 0x08 and dup[1:] == theirs[1:]


def test_bulk_encoding_is_the_concatenation() -> None:
    msgs = [(f"city/d/wearable/w{i}/vitals", b'{"ts":%d}' % i * (i % 7 + 1)) for i in range(50)]
    ids = [(i * 1_337) % 65_535 + 1 for i in range(50)]
    cache: dict[str, bytes] = {}
    bulk = encode_publishes(msgs, ids, cache)
    one_by_one = [encode_publish(t, p, i) for (t, p), i in zip(msgs, ids, strict=True)]
    assert bytes(bulk) == b"".join(one_by_one)
    assert len(cache) == 50


@pytest.mark.parametrize("topic", ["", "city/+/x", "city/#", "a\x00b"])
def test_invalid_topic_names_are_rejected(topic: str) -> None:
    with pytest.raises(ValueError, match="invalid MQTT topic"):
        encode_publish(topic, b"x", 1)


def test_packet_size_limit_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="maximum packet size 100"):
        encode_publishes([("city/a/b", b"x" * 200)], [1], {}, max_packet_size=100)


@given(st.integers(0, 268_435_455))
@settings(max_examples=200)
def test_varint_round_trip(n: int) -> None:
    enc = encode_varint(n)
    assert len(enc) == 1 + (n > 127) + (n > 16_383) + (n > 2_097_151)
    assert decode_varint(enc, 0) == (n, len(enc))
    assert decode_varint(enc[:-1], 0) is None


def test_connack_properties() -> None:
    # Mosquitto 2.0's CONNACK: session present 0, success, Topic Alias Maximum 10,
    # Receive Maximum 20 (as sent by the broker of this project's stack)
    ack = decode_connack(bytes.fromhex("00000622000a210014"))
    assert (ack.session_present, ack.reason_code, ack.receive_maximum) == (False, 0, 20)
    assert ack.maximum_packet_size is None and ack.maximum_qos == 2
    ack = decode_connack(bytes.fromhex("0187081f00056e6f706521"))
    assert ack.reason_code == 0x87 and ack.session_present
    assert ack.reason_string == "nope!"
    assert decode_connack(bytes.fromhex("000000")).receive_maximum == 65_535
    with pytest.raises(ProtocolError):
        decode_connack(bytes.fromhex("000003ff0000"))  # unknown property 0xFF


def puback(pid: int, reason: int | None = None, reason_string: str | None = None) -> bytes:
    """PUBACK laid out as in MQTT 5.0 3.4: short form, + reason code, + properties."""
    body = pid.to_bytes(2, "big")
    if reason is not None:
        body += bytes((reason,))
        if reason_string is not None:
            raw = reason_string.encode()
            prop = b"\x1f" + len(raw).to_bytes(2, "big") + raw
            body += encode_varint(len(prop)) + prop
    return b"\x40" + encode_varint(len(body)) + body


def test_pubacks_bulk_and_general_paths() -> None:
    # >= 512 bytes of one fixed-size form takes the numpy path
    short = b"".join(puback(i) for i in range(1, 201))
    used, got = parse_pubacks(bytearray(short + b"\x40\x02\x00"))  # last one cut off
    assert used == 800 and got.ack_ids.tolist() == list(range(1, 201))
    assert not got.ack_reasons.any()
    five = b"".join(puback(i, 0x10) for i in range(7, 157))  # "no matching subscribers"
    used, got = parse_pubacks(bytearray(five))
    assert used == 750 and got.ack_ids.tolist() == list(range(7, 157))
    assert set(got.ack_reasons.tolist()) == {0x10}
    # a bulk prefix, then other forms: the rest is parsed packet by packet, nothing left
    tail = puback(900) + puback(901, 0x97) + b"\xd0\x00"
    used, got = parse_pubacks(bytearray(five + tail))
    assert used == len(five + tail) and got.pingresps == 1
    assert got.ack_ids.tolist() == [*range(7, 157), 900, 901]
    assert got.ack_reasons.tolist()[-3:] == [0x10, 0, 0x97]
    mixed = puback(1) + puback(2, 0x87, "denied") + b"\xd0\x00" + puback(3, 0x97) + puback(4)
    used, got = parse_pubacks(bytearray(mixed + b"\xe0\x01\x8b"))
    assert used == len(mixed) + 3
    assert got.ack_ids.tolist() == [1, 2, 3, 4]
    assert got.ack_reasons.tolist() == [0, 0x87, 0x97, 0]
    assert got.pingresps == 1 and got.disconnect == 0x8B
    assert reason_name(0x87) == "0x87 not authorized"


@given(
    st.lists(st.tuples(st.integers(1, 65_535), st.sampled_from([None, 0x00, 0x10, 0x87, 0x99])),
             min_size=1, max_size=40),
    st.lists(st.integers(1, 40), max_size=8),
)  # fmt: skip
@settings(max_examples=60, deadline=None)
def test_pubacks_any_split_gives_the_same_acks(
    acks: list[tuple[int, int | None]], cuts: list[int]
) -> None:
    stream = b"".join(puback(pid, rc, "r" if rc == 0x99 else None) for pid, rc in acks)
    bounds = sorted({c * 7 % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    buf, ids, reasons = bytearray(), [], []
    for lo, hi in itertools.pairwise(bounds):  # one recv() per piece
        buf += stream[lo:hi]
        used, got = parse_pubacks(buf)
        del buf[:used]
        ids += got.ack_ids.tolist()
        reasons += got.ack_reasons.tolist()
    assert not buf
    assert ids == [pid for pid, _ in acks]
    assert reasons == [rc or 0 for _, rc in acks]


def test_disconnect_packet_layout() -> None:
    # DISCONNECT (3.14): reason 0x00, properties length 5, Session Expiry Interval (0x11) 0
    assert DISCONNECT_PACKET[0] == 0xE0 and DISCONNECT_PACKET[1] == len(DISCONNECT_PACKET) - 2
    assert DISCONNECT_PACKET[2:] == bytes.fromhex("0005110000 0000".replace(" ", ""))
