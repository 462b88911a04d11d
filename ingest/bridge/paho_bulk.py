"""paho-mqtt 2.x client with a bulk receive path and batched PUBACKs.

paho reads one MQTT packet per ``loop_read`` step with three or four ``recv`` calls (the
fixed header byte by byte, then the rest), parses every PUBLISH's MQTT v5 properties into a
:class:`~paho.mqtt.properties.Properties` object (whose constructor builds several dicts),
wraps it in an :class:`~paho.mqtt.client.MQTTMessage` with its own condition variable, and
queues every PUBACK as a packet of its own, written with one ``send`` each. Profiled in the
bridge at district load, that was about 80 % of the MQTT process's CPU (about 110 µs per
message on the development machine), ten times what the bridge's own work costs there.

:class:`BulkClient` keeps paho for the session — CONNECT/CONNACK, authentication,
SUBSCRIBE, keepalive, DISCONNECT, reconnects, socket callbacks — and changes only the hot
path, in a subclass:

* :meth:`BulkClient.loop_read` reads everything the socket holds (up to ``max_read`` bytes)
  into one buffer and splits it into packets there (MQTT 5.0 §2.1 fixed header, §1.5.5
  Variable Byte Integer);
* a PUBLISH at QoS 0 or 1 without properties (property length 0, §3.3.2.3; what Mosquitto
  forwards from publishers that set none, such as the simulators and gateways here) is
  parsed in place — topic (§3.3.2.1), packet identifier (§3.3.2.2), payload — and handed
  over with the others of the same read in one call of ``on_publishes``;
* every other packet (CONNACK, SUBACK, PINGRESP, DISCONNECT, a PUBLISH with properties or at
  QoS 2, anything malformed) goes through paho's own handler, in its place in the stream:
  the publishes parsed before it are delivered first, so the order of the messages is the
  order on the wire;
* :meth:`BulkClient.ack_many` queues the PUBACKs of many messages as one write (each the
  4-byte form of §3.4.2.1: Reason Code 0x00 and no properties may be omitted), the same
  bytes paho's :meth:`~paho.mqtt.client.Client.ack` sends one by one.

Use it with paho's external-loop socket callbacks (``on_socket_open`` etc.) and
``manual_ack=True``; ``loop_start``/``loop_forever`` are not supported with it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

log = logging.getLogger(__name__)

#: ``(topic bytes, payload, packet id, QoS)`` of one received PUBLISH.
Publish = tuple[bytes, bytes | bytearray, int, int]
PublishSink = Callable[[list[Publish]], None]

_PUBLISH = 0x30
_PUBACK = 0x40
#: Default most bytes read per :meth:`BulkClient.loop_read` (then other callbacks run).
MAX_READ = 1 << 20
_RECV = 256 * 1024
_PUBACK_WORD = 0x4002_0000  # PUBACK fixed header (type 4, remaining length 2), then the id


def _in_packet(command: int = 0, packet: bytearray | None = None) -> Any:
    """paho's ``_in_packet`` holding one complete packet (idle without one), as its
    ``_packet_read`` leaves it before ``_packet_handle`` (and resets it after)."""
    packet = bytearray() if packet is None else packet
    return {
        "command": command,
        "have_remaining": int(command != 0),
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": len(packet),
        "packet": packet,
        "to_process": 0,
        "pos": 0,
    }


def encode_pubacks(mids: Sequence[int]) -> bytes:
    """The PUBACK packets (success, no properties) of ``mids``, back to back."""
    return struct.pack(f">{len(mids)}I", *[_PUBACK_WORD | mid for mid in mids])


class BulkClient(mqtt.Client):
    """A paho ``Client`` (MQTT v5) whose plain QoS 0/1 PUBLISHes are parsed in bulk.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`paho.mqtt.client.Client`.
    on_publishes
        Called on the reading thread with every batch of fast-path publishes. Publishes that
        paho itself handles go to ``on_message`` as usual.
    max_read
        Most bytes read from the socket per :meth:`loop_read` call; :attr:`read_more` says
        whether it stopped there with data possibly left (call again soon).
    """

    def __init__(
        self,
        *args: Any,
        on_publishes: PublishSink,
        max_read: int = MAX_READ,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_publishes = on_publishes
        self._max_read = max_read
        self._rbuf = bytearray()
        self._rsock: Any = None
        #: Whether the last :meth:`loop_read` stopped at ``max_read`` (more may be waiting,
        #: e.g. decrypted TLS data that select() does not report).
        self.read_more = False
        #: PUBLISH packets taken by the bulk path, and packets left to paho (for tests).
        self.bulk_publishes = 0
        self.paho_packets = 0

    # --- receive ----------------------------------------------------------------------
    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read what the socket holds and handle every complete packet in it.

        ``max_packets`` is accepted for paho's signature and ignored: the bound is
        ``max_read`` bytes.
        """
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        if sock is not self._rsock:
            # A new connection: bytes of a packet cut off on the old one are meaningless.
            self._rbuf.clear()
            self._rsock = sock
        self.read_more = False
        got = 0
        while got < self._max_read:
            try:
                data = self._sock_recv(min(_RECV, self._max_read - got))
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("MQTT socket read failed: %s", exc)
                return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            if not data:
                return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            self._rbuf += data
            got += len(data)
        else:
            self.read_more = True
        if got:
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
        return self._handle_buffer(sock)

    def _handle_buffer(self, sock: Any) -> MQTTErrorCode:
        buf = self._rbuf
        end_of_data = len(buf)
        pos = 0
        batch: list[Publish] = []
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while end_of_data - pos >= 2:
            command = buf[pos]
            # Remaining Length: a Variable Byte Integer of at most 4 bytes (§1.5.5).
            length = shift = 0
            i = pos + 1
            complete = False
            while i < end_of_data:
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    log.warning("MQTT packet with an invalid remaining length from the broker")
                    buf.clear()
                    return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_PROTOCOL)
            start, end = i, i + length
            if not complete or end > end_of_data:
                break  # the rest of the packet has not arrived yet
            qos = (command >> 1) & 0x03
            if command & 0xF0 == _PUBLISH and qos < 2 and length >= 3:
                topic_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
                props = topic_end + 2 * qos  # after the packet identifier (QoS 1 only)
                if props < end and buf[props] == 0:  # property length 0
                    mid = (buf[topic_end] << 8) | buf[topic_end + 1] if qos else 0
                    batch.append(
                        (bytes(buf[start + 2 : topic_end]), buf[props + 1 : end], mid, qos)
                    )
                    pos = end
                    continue
            # paho's own handling, in order: what was parsed before this packet goes first.
            if batch:
                self.bulk_publishes += len(batch)
                self._on_publishes(batch)
                batch = []
            rc = self._paho_handle(command, buf[start:end])
            pos = end
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is not sock:
                break
        if batch:
            self.bulk_publishes += len(batch)
            self._on_publishes(batch)
        if self._sock is not sock:
            buf.clear()  # the connection went away while handling: its bytes go with it
        else:
            del buf[:pos]
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return self._loop_rc_handle(rc)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _paho_handle(self, command: int, packet: bytearray) -> MQTTErrorCode:
        """Let paho handle one complete packet, as its ``_packet_read`` would."""
        self.paho_packets += 1
        self._in_packet = _in_packet(command, packet)
        try:
            rc = self._packet_handle()
        except mqtt.MalformedPacket as exc:
            log.warning("malformed MQTT packet from the broker: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = _in_packet()
        return rc

    def mark_alive(self) -> None:
        """Count the connection as alive now (for keepalive), without reading.

        For a caller that left the socket unread on purpose: whatever the broker sent, the
        PINGRESP included, waits behind the unread data, so paho's keepalive check must not
        take the silence for a dead connection.
        """
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()

    # --- acknowledge ------------------------------------------------------------------
    def ack_many(self, mids: Sequence[int]) -> MQTTErrorCode:
        """PUBACK every QoS 1 message of ``mids`` with one queued write (``manual_ack``)."""
        if not mids:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        return self._packet_queue(_PUBACK, encode_pubacks(mids), 0, 0)
