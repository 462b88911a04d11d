"""A lean, pipelined MQTT 5.0 QoS 1 publisher for the simulator's hot path.

paho-mqtt spends ~70-110 us of CPU per QoS 1 message here (a message object, a condition
variable, a lock round trip and a ``send`` per publish, plus its network thread), ten times
the simulator's own cost per message. This client does the same protocol work per *tick*:

* one TCP socket, no thread: the caller's thread encodes a tick's PUBLISH packets into one
  ``bytearray`` (:func:`~simulators.mqtt_wire.encode_publishes`) and sends it with one
  ``sendall``, then drains the PUBACKs already in the receive buffer without blocking and
  parses them in bulk (:func:`~simulators.mqtt_wire.parse_pubacks`);
* the broker's Receive Maximum from CONNACK bounds the messages in flight (MQTT 5.0
  3.2.2.3.3, 4.9 flow control); packet ids cycle through 1..65535 and skip ids still in
  flight (2.2.1); in-flight state is kept in arrays indexed by packet id;
* the session survives a broken connection: CONNECT has ``clean_start=0`` and a Session
  Expiry Interval, and after a reconnect every unacknowledged PUBLISH is resent with its
  original packet id and the DUP flag (4.4, 3.3.1.1) -- at-least-once delivery;
* PINGREQ keeps an idle connection alive (3.1.2.10); PUBACKs with a failure reason code
  (>= 0x80, 2.4) are counted per code; :meth:`flush` waits for every PUBACK and
  :meth:`close` ends with a DISCONNECT that lets the broker drop the session.
"""

from __future__ import annotations

import select
import socket
import time
import uuid
from collections import Counter
from collections.abc import Sequence

import numpy as np

from simulators.mqtt_wire import (
    CONNACK,
    DISCONNECT_PACKET,
    PINGREQ_PACKET,
    ConnAck,
    ProtocolError,
    decode_connack,
    decode_varint,
    encode_connect,
    encode_publishes,
    parse_pubacks,
    reason_name,
)

Message = tuple[str, bytes]
_N_IDS = 65_536  # packet ids 1..65535; index 0 unused
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux
_BULK_ACKS = 128  # from this many PUBACKs in one read on, array operations are cheaper


class PublishError(RuntimeError):
    """The broker is unreachable or rejected messages (message says which)."""


class _ConnectionLostError(Exception):
    """The socket broke; the caller reconnects and resends what is in flight."""


class LeanPublisher:
    """Pipelined MQTT 5.0 QoS 1 publisher on one socket (see the module docstring).

    Parameters
    ----------
    host, port
        Broker address.
    window
        Most messages awaiting a PUBACK; the broker's Receive Maximum lowers it.
    username, password
        Optional credentials (CONNECT 3.1.3.5, 3.1.3.6).
    client_id
        MQTT client id (random by default); a reconnect reuses it to resume the session.
    keepalive
        Seconds; a PINGREQ goes out when nothing was sent for half of it.
    session_expiry
        Seconds the broker keeps the session after a broken connection.
    reconnect_timeout
        How long to keep trying to reconnect before :class:`PublishError`.
    ack_timeout
        Longest wait for a PUBACK while the window is full or in :meth:`flush`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        window: int = 2000,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
        keepalive: int = 30,
        session_expiry: int = 300,
        reconnect_timeout: float = 60.0,
        ack_timeout: float = 60.0,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.host, self.port, self.window = host, port, min(window, 65_535)
        self.username, self.password = username, password
        self.client_id = client_id or f"cityhealth-sim-{uuid.uuid4().hex[:12]}"
        self.connect_timeout, self.keepalive = connect_timeout, keepalive
        self.session_expiry = session_expiry
        self.reconnect_timeout, self.ack_timeout = reconnect_timeout, ack_timeout
        #: Messages accepted (each counted once, however often it is resent).
        self.sent = 0
        #: PUBACKs received for distinct messages, and those with a failure reason code.
        self.acked = 0
        self.failed = 0
        self.failed_by_reason: Counter[str] = Counter()
        #: Successful reconnects, PUBLISHes resent with DUP, PUBACKs for unknown ids.
        self.reconnects = 0
        self.resent = 0
        self.unexpected_acks = 0
        #: Most messages ever awaiting a PUBACK on one connection (never above the limit).
        self.peak_in_flight = 0
        # in-flight state, indexed by packet id
        # flags as bytearrays (fast per-id access on small ack batches) with numpy views over
        # the same memory (bulk updates): unacknowledged (sent or to resend) / sent on the
        # current connection
        self._pending_b = bytearray(_N_IDS)
        self._on_wire_b = bytearray(_N_IDS)
        self._pending = np.frombuffer(self._pending_b, dtype=np.bool_)
        self._on_wire = np.frombuffer(self._on_wire_b, dtype=np.bool_)
        self._order = np.zeros(_N_IDS, dtype=np.int64)  # send sequence, for resend order
        self._store: list[Message | None] = [None] * _N_IDS
        self._n_pending = 0
        self._n_on_wire = 0
        self._resend: list[int] = []  # pending ids to resend (DUP) before new messages
        self._next_id = 1
        self._seq = 0
        self._topics: dict[str, bytes] = {}
        self._rbuf = bytearray()
        self._sock: socket.socket | None = None
        self._last_send = 0.0
        self._last_recv = 0.0
        self._quota = window
        self._max_packet: int | None = None
        self.connack: ConnAck | None = None
        try:
            # clean_start=0 from the start: Mosquitto persists only such sessions across a
            # restart (the random client id means there is no old session to resume)
            self._connect(clean_start=False)
        except (OSError, _ConnectionLostError, ProtocolError) as exc:
            raise PublishError(f"cannot connect to MQTT broker {host}:{port}: {exc}") from None

    # -- connection ---------------------------------------------------------------------
    def _connect(self, *, clean_start: bool) -> None:
        """Open the socket, CONNECT, wait for CONNACK; a refusal raises :class:`PublishError`."""
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.sendall(
                encode_connect(
                    self.client_id,
                    keepalive=self.keepalive,
                    clean_start=clean_start,
                    session_expiry=self.session_expiry,
                    username=self.username,
                    password=self.password,
                )
            )
            buf = bytearray()
            deadline = time.monotonic() + self.connect_timeout
            while True:
                got = decode_varint(buf, 1) if len(buf) >= 2 else None
                if got is not None and len(buf) >= got[1] + got[0]:
                    break
                if time.monotonic() > deadline:
                    raise _ConnectionLostError("no CONNACK")
                chunk = sock.recv(4096)
                if not chunk:
                    raise _ConnectionLostError("connection closed before CONNACK")
                buf += chunk
        except BaseException:
            sock.close()
            raise
        length, start = got
        if buf[0] != CONNACK:
            sock.close()
            raise ProtocolError(f"expected CONNACK, got packet type 0x{buf[0]:02X}")
        ack = decode_connack(memoryview(buf)[start : start + length])
        if ack.reason_code >= 0x80:
            sock.close()
            why = f" ({ack.reason_string})" if ack.reason_string else ""
            raise PublishError(
                f"MQTT broker {self.host}:{self.port} refused the connection: "
                f"{reason_name(ack.reason_code)}{why}"
            )
        if ack.maximum_qos < 1:
            sock.close()
            raise PublishError(f"MQTT broker {self.host}:{self.port} does not support QoS 1")
        # non-blocking: reads never wait (Python's timeout mode would wait in recv even
        # with MSG_DONTWAIT); _send waits for writability itself
        sock.setblocking(False)
        self._rbuf = buf[start + length :]
        self._sock = sock
        self.connack = ack
        self._quota = min(self.window, ack.receive_maximum)
        self._max_packet = ack.maximum_packet_size
        if ack.server_keepalive is not None:
            self.keepalive = ack.server_keepalive
        self._last_send = self._last_recv = time.monotonic()
        # whatever was in flight on the old connection is resent first, in send order
        ids = np.flatnonzero(self._pending)
        self._resend = ids[np.argsort(self._order[ids], kind="stable")].tolist()
        self._on_wire[:] = False
        self._n_on_wire = 0

    def _reconnect(self, why: str) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.05
        while True:
            try:
                self._connect(clean_start=False)
                self.reconnects += 1
                return
            except (OSError, _ConnectionLostError, ProtocolError) as exc:
                if time.monotonic() + delay > deadline:
                    raise PublishError(
                        f"lost the connection to {self.host}:{self.port} ({why}) and could "
                        f"not reconnect within {self.reconnect_timeout:g} s: {exc}"
                    ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- sending ------------------------------------------------------------------------
    def _alloc(self, n: int) -> np.ndarray:
        """``n`` free packet ids after the last one used (2.2.1: not in flight)."""
        cand = (self._next_id - 1 + np.arange(n + self._n_pending, dtype=np.int64)) % 65_535 + 1
        ids = cand[~self._pending[cand]][:n]
        self._next_id = int(ids[-1]) % 65_535 + 1
        return ids

    def _send(self, data: bytes | bytearray) -> None:
        """All of ``data``; waits (bounded by ``ack_timeout``) while the socket buffer is full."""
        sock = self._sock
        assert sock is not None
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[sock.send(view) :]
                except BlockingIOError:
                    _, ready, _ = select.select([], [sock], [], self.ack_timeout)
                    if not ready:
                        raise _ConnectionLostError(
                            f"broker did not read for {self.ack_timeout:g} s"
                        ) from None
        except (BrokenPipeError, ConnectionError) as exc:
            raise _ConnectionLostError(f"send failed: {exc}") from None
        self._last_send = time.monotonic()

    def _send_resend(self, room: int) -> int:
        """Resend up to ``room`` unacknowledged messages with DUP set; returns how many."""
        ids = self._resend[:room]
        del self._resend[:room]
        msgs = [self._store[i] for i in ids]
        data = encode_publishes(msgs, ids, self._topics, dup=True)  # type: ignore[arg-type]
        self._on_wire[ids] = True
        self._n_on_wire += len(ids)
        self.peak_in_flight = max(self.peak_in_flight, self._n_on_wire)
        self.resent += len(ids)
        self._send(data)
        return len(ids)

    def _send_new(self, msgs: Sequence[Message]) -> None:
        n = len(msgs)
        ids = self._alloc(n)
        try:
            data = encode_publishes(
                msgs, ids.tolist(), self._topics, max_packet_size=self._max_packet
            )
        except ValueError as exc:
            raise PublishError(str(exc)) from None
        if not self._n_on_wire:
            self._last_recv = time.monotonic()  # the PUBACK clock starts now
        store = self._store
        for i, m in zip(ids.tolist(), msgs, strict=True):
            store[i] = m
        self._pending[ids] = True
        self._on_wire[ids] = True
        self._order[ids] = np.arange(self._seq, self._seq + n)
        self._seq += n
        self._n_pending += n
        self._n_on_wire += n
        self.peak_in_flight = max(self.peak_in_flight, self._n_on_wire)
        self.sent += n
        self._send(data)

    def publish_many(self, messages: Sequence[Message]) -> int:
        """Publish every ``(topic, payload)`` with QoS 1, in order; returns how many.

        Blocks only while the in-flight window is full. A broken connection is re-opened
        (same session) and the unacknowledged messages resent.
        """
        msgs = messages if isinstance(messages, list | tuple) else list(messages)
        i, n = 0, len(msgs)
        while True:
            try:
                self._service(block=False)
                while self._resend:
                    room = self._quota - self._n_on_wire
                    if room <= 0:
                        self._service(block=True)
                        continue
                    self._send_resend(room)
                if i >= n:
                    return n
                room = self._quota - self._n_on_wire
                if room <= 0:
                    self._service(block=True)
                    continue
                chunk = msgs[i : i + room]
                # counted before the send: _send_new registers the chunk as in flight
                # first, so a send the broken socket cuts short is resent after the
                # reconnect, never published (and counted) a second time
                i += len(chunk)
                self._send_new(chunk)
            except _ConnectionLostError as exc:
                self._reconnect(str(exc))

    # -- receiving ----------------------------------------------------------------------
    def _service(self, *, block: bool, wait: float | None = None, quickack: bool = False) -> None:
        """Read what the broker sent (if ``block``, first wait up to ``wait`` seconds for
        it), apply the PUBACKs, and keep the connection alive."""
        sock = self._sock
        if sock is None:
            raise _ConnectionLostError("not connected")
        if time.monotonic() - self._last_send > self.keepalive / 2:
            self._send(PINGREQ_PACKET)
        if block:
            limit = min(self.ack_timeout, self.keepalive / 2, 1e9 if wait is None else wait)
            ready, _, _ = select.select([sock], [], [], max(limit, 0.0))
            if not ready:
                if self._n_on_wire and time.monotonic() - self._last_recv > self.ack_timeout:
                    raise PublishError(
                        f"no PUBACK from {self.host}:{self.port} for {self.ack_timeout:g} s "
                        f"({self._n_pending} messages unacknowledged)"
                    )
                return
        while True:
            try:
                chunk = sock.recv(262_144, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                raise _ConnectionLostError(f"receive failed: {exc}") from None
            if not chunk:
                raise _ConnectionLostError("broker closed the connection")
            if quickack and _QUICKACK is not None:
                # flush: nothing more to send, so ACK the broker's segments at once; Mosquitto
                # leaves Nagle on and its next PUBACKs would wait for our 40 ms delayed ACK.
                # Not while publishing: there our next PUBLISH carries the ACK, and Nagle's
                # coalescing of PUBACKs means fewer, larger reads
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            self._last_recv = time.monotonic()
            self._rbuf += chunk
            if len(chunk) < 262_144:
                break
        if self._rbuf:
            self._apply(self._rbuf)

    def _apply(self, buf: bytearray) -> None:
        try:
            used, got = parse_pubacks(buf)
        except ProtocolError as exc:
            raise _ConnectionLostError(f"protocol error from broker: {exc}") from None
        del buf[:used]
        if len(got.ack_ids) >= _BULK_ACKS:
            self._apply_bulk(got.ack_ids, got.ack_reasons)
        elif len(got.ack_ids):
            self._apply_few(got.ack_ids.tolist(), got.ack_reasons.tolist())
        if got.disconnect is not None:
            raise _ConnectionLostError(f"broker sent DISCONNECT {reason_name(got.disconnect)}")

    def _apply_few(self, ids: list[int], reasons: list[int]) -> None:
        """A few PUBACKs: per id on the bytearrays (numpy calls cost more than the loop)."""
        pending, wire = self._pending_b, self._on_wire_b
        n_ack = n_wire = 0
        gone: list[int] = []
        for pid, rc in zip(ids, reasons, strict=True):
            if not pending[pid]:
                self.unexpected_acks += 1  # unknown id, or acknowledged twice
                continue
            pending[pid] = 0
            n_ack += 1
            if wire[pid]:
                wire[pid] = 0
                n_wire += 1
            else:
                gone.append(pid)
            if rc >= 0x80:
                self.failed += 1
                self.failed_by_reason[reason_name(rc)] += 1
        self._count(n_ack, n_wire, gone)

    def _apply_bulk(self, ids: np.ndarray, reasons: np.ndarray) -> None:
        """Many PUBACKs: the same bookkeeping with array operations."""
        known = self._pending[ids]
        if not known.all():
            self.unexpected_acks += int((~known).sum())
            ids, reasons = ids[known], reasons[known]
        # an id acknowledged twice in one read counts once
        ids, first = np.unique(ids, return_index=True)
        self.unexpected_acks += len(known) - len(ids) - int((~known).sum())
        reasons = reasons[first]
        wire = self._on_wire[ids]
        self._pending[ids] = False
        self._on_wire[ids] = False
        bad = reasons >= 0x80
        if bad.any():
            self.failed += int(bad.sum())
            self.failed_by_reason.update(reason_name(int(r)) for r in reasons[bad])
        self._count(len(ids), int(wire.sum()), ids[~wire].tolist())

    def _count(self, n_ack: int, n_wire: int, gone: list[int]) -> None:
        self._n_pending -= n_ack
        self._n_on_wire -= n_wire
        self.acked += n_ack
        if gone and self._resend:  # acknowledged before their resend went out
            drop = set(gone)
            self._resend = [i for i in self._resend if i not in drop]

    # -- end ----------------------------------------------------------------------------
    @property
    def in_flight_limit(self) -> int:
        """``min(window, the broker's Receive Maximum)`` on the current connection."""
        return self._quota

    @property
    def outstanding(self) -> int:
        """Messages published but not yet acknowledged."""
        return self._n_pending

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every published message was acknowledged; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self._n_pending:
            if time.monotonic() > deadline:
                return False
            try:
                self.publish_many([])  # sends what must be resent after a reconnect
                if self._n_pending:
                    self._service(block=True, wait=deadline - time.monotonic(), quickack=True)
            except _ConnectionLostError as exc:
                self._reconnect(str(exc))
        return True

    def close(self) -> None:
        """DISCONNECT (normal, session expiry 0) and close the socket."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.sendall(DISCONNECT_PACKET)
        except OSError:
            pass
        finally:
            sock.close()
