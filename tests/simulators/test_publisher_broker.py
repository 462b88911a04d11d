"""The lean MQTT 5.0 publisher against real Mosquitto brokers.

* the session broker (``stack`` fixture): everything published arrives at a paho QoS 1
  subscriber, byte for byte, and the broker's Receive Maximum is never exceeded;
* a dedicated broker built from the stack's own ``render_config`` (persistence on) that
  is stopped and restarted while the publisher streams: after the reconnect nothing is
  lost (at least once: unique messages counted);
* a dedicated broker with a password file and an ACL (the stack's ``MosquittoSecurity``):
  credentials work, a wrong password is a clear error, and PUBACKs with reason code 0x87
  for a forbidden topic are counted and surfaced.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cityhealth.stack.mosquitto import MosquittoSecurity, mqtt_probe, render_config
from ingest.mqtt_auth import mqtt_credentials
from simulators.mqtt_client import _ConnectionLostError
from simulators.plugins import build
from simulators.publisher import MqttPublisher, PublishError
from simulators.runner import Runner
from simulators.scenario import load_scenario
from tests.conftest import RunningStack, free_ports
from tests.simulators.conftest import Subscriber
from tests.simulators.helpers import START, run_inprocess

pytestmark = pytest.mark.stack


class Broker:
    """A private Mosquitto from the stack's config renderer, restartable on its port.

    Without ``security`` it has one user, :attr:`AUTH`, allowed every topic (the stack
    never serves anonymous clients).
    """

    AUTH = ("sim", "s3cret")

    def __init__(
        self, data_dir: Path, security: MosquittoSecurity | None = None, extra: str = ""
    ) -> None:
        self.port = free_ports(1)[0]
        if security is None:
            passwd = data_dir / "broker.passwd"
            subprocess.run(
                ["mosquitto_passwd", "-c", "-b", str(passwd), *self.AUTH],
                check=True,
                capture_output=True,
            )
            security = MosquittoSecurity(password_file=passwd)
        self.conf = data_dir / "mosquitto.conf"
        conf = render_config(host="127.0.0.1", port=self.port, data_dir=data_dir, security=security)
        self.conf.write_text(conf + extra)
        self.log = data_dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if port_open(self.port):
                return
            time.sleep(0.1)
        raise AssertionError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Mosquitto saves its persistence file
            self.proc.wait(30)
        self.proc = None


def port_open(port: int) -> bool:
    """Whether a TCP connection to ``127.0.0.1:port`` succeeds."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class SessionSubscriber:
    """paho v5 QoS 1 subscriber with a persistent session that reconnects by itself."""

    def __init__(self, port: int, topic: str) -> None:
        self.payloads: list[bytes] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        c.reconnect_delay_set(1, 2)
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_connect = lambda client, *a: client.subscribe(topic, qos=1)
        c.username_pw_set(*Broker.AUTH)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        c.connect("127.0.0.1", port, clean_start=False, properties=props)
        c.loop_start()
        assert subscribed.wait(10)
        self.client = c

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.payloads.append(bytes(msg.payload))

    def wait_unique(self, n: int, timeout: float = 180.0) -> set[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = set(self.payloads)
            if len(got) >= n:
                return got
            time.sleep(0.2)
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("receive_maximum", ["stack", "raised"])
def test_everything_published_arrives_byte_for_byte(
    stack: RunningStack, tmp_path: Path, receive_maximum: str
) -> None:
    """On the session broker (Mosquitto's default Receive Maximum, 20) and on one with
    ``max_inflight_messages 0`` (Receive Maximum 65,535: the window of 2,000 applies and
    PUBACKs arrive in reads large enough for the array path)."""
    if receive_maximum == "raised":
        private = Broker(tmp_path, extra="max_inflight_messages 0\n")
        private.start()
        host, port = "127.0.0.1", private.port
        sub_auth = pub_auth = Broker.AUTH
    else:
        host, port = stack.mqtt_host, stack.mqtt_port
        sub_auth = mqtt_credentials(stack.settings, "bridge")
        pub_auth = mqtt_credentials(stack.settings, "publisher")
    try:
        _publish_and_compare(host, port, sub_auth, pub_auth)
    finally:
        if receive_maximum == "raised":
            private.stop()


def _publish_and_compare(
    host: str, port: int, sub_auth: tuple[str, str], pub_auth: tuple[str, str]
) -> None:
    district = f"p{uuid.uuid4().hex[:8]}"
    # sizes across the 1-, 2- and 3-byte Remaining Length forms, and an empty payload
    msgs = [
        (f"city/{district}/wearable/w{i % 97:03d}/vitals", b"%06d:" % i + b"x" * (i * 37 % 3000))
        for i in range(6000)
    ]
    msgs += [(f"city/{district}/airq/big/air", b"y" * 70_000), (f"city/{district}/a/b/c", b"")]
    sub = Subscriber(host, port, sub_auth, topic=f"city/{district}/#")
    pub = MqttPublisher(host, port, window=2000, username=pub_auth[0], password=pub_auth[1])
    try:
        for k in range(0, len(msgs), 700):  # ticks of 700 messages
            assert pub.publish_many(msgs[k : k + 700]) == len(msgs[k : k + 700])
        assert pub.flush(120)
        assert pub.connack is not None
        limit = min(2000, pub.connack.receive_maximum)
        assert pub.in_flight_limit == limit and 0 < pub.peak_in_flight <= limit
    finally:
        pub.close()
    received = sub.wait_for(len(msgs))
    sub.close()
    assert pub.sent == pub.acked == len(msgs) and pub.failed == 0
    assert Counter(received) == Counter(msgs)
    # QoS 1 on one connection keeps the order per topic (MQTT 5.0 4.6)
    for topic in {t for t, _ in msgs}:
        assert [p for t, p in received if t == topic] == [p for t, p in msgs if t == topic]


def test_simulator_run_through_lean_publisher_equals_generated(stack: RunningStack) -> None:
    expected, _, _ = run_inprocess("smoke", seed=5, duration=8.0)
    sub = Subscriber(stack.mqtt_host, stack.mqtt_port, mqtt_credentials(stack.settings, "bridge"))
    sc = load_scenario("smoke")
    user, password = mqtt_credentials(stack.settings, "publisher")
    pub = MqttPublisher(stack.mqtt_host, stack.mqtt_port, username=user, password=password)
    runner = Runner(build(sc, 5), pub, tick_s=sc.tick_s, duration=8.0, start=START, speed=None)
    try:
        runner.run()
        assert pub.flush(120)
    finally:
        pub.close()
    summary = runner.summary()
    received = sub.wait_for(len(expected))
    sub.close()
    assert summary["published"] == summary["acked"] == len(expected)
    assert summary["failed"] == 0 and summary["failed_by_reason"] == {}
    assert Counter(received) == Counter(expected)


def test_broker_restart_mid_stream_loses_nothing(broker: Broker) -> None:
    topic = f"city/r{uuid.uuid4().hex[:8]}"
    sub = SessionSubscriber(broker.port, f"{topic}/#")
    user, password = Broker.AUTH
    pub = MqttPublisher(
        "127.0.0.1",
        broker.port,
        window=2000,
        reconnect_timeout=60,
        username=user,
        password=password,
    )
    restarted = threading.Event()
    errors: list[BaseException] = []
    generated = [0]  # messages handed to publish_many

    def stream() -> None:
        seq, after = 0, 0
        try:
            while after < 4:  # keep going until 4 batches after the restart
                batch = [
                    (f"{topic}/wearable/w{i % 50}/vitals", b'{"seq":%d}' % i)
                    for i in range(seq, seq + 500)
                ]
                pub.publish_many(batch)
                seq += 500
                generated[0] = seq
                after += restarted.is_set()
            assert pub.flush(120)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while pub.acked < 3000 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.01)
        assert pub.acked >= 3000, errors
        broker.stop()  # the publisher is mid-stream: its socket breaks
        broker.start()
        restarted.set()
        worker.join(240)
        assert not worker.is_alive() and not errors, errors
        assert pub.reconnects >= 1
        assert pub.connack is not None and pub.connack.session_present  # session kept
        # each message counted once, however often a broken send made it go out again
        assert pub.sent == generated[0]
        assert pub.acked == pub.sent and pub.outstanding == 0 and pub.failed == 0
        got = sub.wait_unique(pub.sent)
    finally:
        pub.close()
        sub.close()
    # shown with -s: typically the whole in-flight window is resent, and a few duplicates
    print(f"sent {pub.sent}, resent {pub.resent}, received {len(sub.payloads)} (with dups)")
    expected = {b'{"seq":%d}' % i for i in range(pub.sent)}
    assert got == expected  # at least once: every message, duplicates allowed


def test_send_cut_short_is_resent_not_published_twice(broker: Broker) -> None:
    """The socket breaks halfway through writing a chunk of new PUBLISHes: the chunk is
    already in flight, so it is resent (DUP) after the reconnect and counted once."""
    topic = f"city/c{uuid.uuid4().hex[:8]}"
    sub = SessionSubscriber(broker.port, f"{topic}/#")
    pub = MqttPublisher("127.0.0.1", broker.port, window=300, username="sim", password="s3cret")
    send, calls = pub._send, [0]

    def breaking_send(data: bytes | bytearray) -> None:
        calls[0] += 1
        if calls[0] == 3:  # the third write: half of it goes out, then the socket breaks
            send(bytes(data[: len(data) // 2]))
            assert pub._sock is not None
            pub._sock.close()
            raise _ConnectionLostError("send failed: injected")
        send(data)

    pub._send = breaking_send  # type: ignore[method-assign]
    msgs = [(f"{topic}/wearable/w{i % 7}/vitals", b'{"seq":%d}' % i) for i in range(2000)]
    try:
        assert pub.publish_many(msgs) == 2000
        assert pub.flush(60)
    finally:
        pub.close()
    got = sub.wait_unique(2000)
    sub.close()
    assert pub.reconnects == 1 and pub.resent > 0
    assert pub.sent == pub.acked == 2000 and pub.outstanding == 0
    assert got == {p for _, p in msgs}


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[Broker]:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), "sim", "s3cret"],
        check=True,
        capture_output=True,
    )
    acl = tmp_path / "acl"
    acl.write_text("user sim\ntopic write city/allowed/#\n")
    b = Broker(tmp_path, MosquittoSecurity(password_file=passwd, acl_file=acl))
    b.start()
    yield b
    b.stop()


def test_credentials_and_puback_reason_codes(secured_broker: Broker) -> None:
    port = secured_broker.port
    assert mqtt_probe("127.0.0.1", port) is not None  # anonymous clients are refused
    with pytest.raises(PublishError, match="refused the connection: 0x87 not authorized"):
        MqttPublisher("127.0.0.1", port, username="sim", password="wrong")
    pub = MqttPublisher("127.0.0.1", port, username="sim", password="s3cret")
    try:
        msgs = [
            (f"city/{'allowed' if i % 4 else 'denied'}/wearable/w{i}/vitals", b"%d" % i)
            for i in range(400)
        ]
        pub.publish_many(msgs)
        assert pub.flush(60)
    finally:
        pub.close()
    # Mosquitto answers a publish the ACL forbids with PUBACK reason 0x87 (MQTT 5.0 3.4.2.1)
    assert pub.acked == 400
    assert pub.failed == 100
    assert pub.failed_by_reason == Counter({"0x87 not authorized": 100})
