"""Apache Kafka broker for the local stack: one JVM in KRaft combined mode.

The jars come from Maven Central (``cityhealth/stack/kafka/pom.xml``, resolved by
``cityhealth stack install`` into ``<cache_dir>/kafka-<version>/libs``). The broker is
started as ``java -cp 'libs/*' kafka.Kafka server.properties`` with
``process.roles=broker,controller`` (KIP-500: no ZooKeeper), its log directory formatted
once by ``kafka.tools.StorageTool format`` (what ``kafka-storage.sh format`` runs).

Topic auto-creation is **on**, with ``num.partitions = settings.kafka_partitions``, as in
the apache/kafka image used by docker-compose: producers and consumers that forget to
create a topic still work locally. Services that care about partition counts create
their topics explicitly (:func:`create_topics`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from cityhealth.stack.paths import kafka_libs_dir
from cityhealth.stack.process import StackError
from cityhealth.stack.service import Service

_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka=WARN
log4j.logger.kafka=INFO
log4j.logger.kafka.server.KafkaConfig=WARN
log4j.logger.org.apache.kafka.common.config=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log=WARN
log4j.logger.kafka.coordinator=WARN
log4j.logger.org.apache.kafka.storage=WARN
log4j.logger.org.apache.kafka.raft=WARN
"""

T = TypeVar("T")

# KafkaError codes accepted from CreateTopics: NONE and TOPIC_ALREADY_EXISTS.
_CREATE_OK = {0, 36}


def _cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Ids starting with ``-`` are drawn again, as Kafka's own ``Uuid.randomUuid()`` does: the
    storage tool's argument parser would read ``-t -Xy...`` as an option and fail (1 in 64).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    # aiokafka logs every refused connection at ERROR; while polling a starting broker
    # those are expected and would only clutter the terminal.
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, even inside a running event loop
    (then on a helper thread: ``asyncio.run`` refuses to nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _broker_count(bootstrap: str, timeout_s: float) -> int:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
        return len(metadata.brokers())
    finally:
        await client.close()


def kafka_probe(bootstrap: str, timeout_s: float = 5.0) -> str | None:
    """Fetch cluster metadata with aiokafka; None when a broker is registered."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        return f"cannot connect to {bootstrap}: {exc}"
    try:
        with _quiet_aiokafka():
            brokers = _run_sync(_broker_count(bootstrap, timeout_s))
    except Exception as exc:  # any client error means "not ready" to a probe
        return f"no metadata from {bootstrap}: {type(exc).__name__}: {exc}"
    return None if brokers else f"{bootstrap} answers but has no registered broker yet"


async def _create_topics(
    bootstrap: str, names: list[str], partitions: int, replication: int, timeout_s: float
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication) for name in names],
            timeout_ms=int(timeout_s * 1000),
        )
        failed = [(e[0], e[1]) for e in response.topic_errors if e[1] not in _CREATE_OK]
        if failed:
            raise StackError(f"could not create Kafka topics (name, error code): {failed}")
        # Wait until every partition has a leader, so the first produce does not race it.
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            await admin._client.force_metadata_update()
            cluster = admin._client.cluster
            parts = [cluster.partitions_for_topic(n) for n in names]
            if all(p is not None and len(p) >= 1 for p in parts):
                leaders = [
                    cluster.leader_for_partition(tp)
                    for n, ps in zip(names, parts, strict=True)
                    for tp in _tps(n, ps or set())
                ]
                if all(lead is not None and lead >= 0 for lead in leaders):
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise StackError(f"Kafka topics {names} have no leader after {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def _tps(topic: str, partitions: Iterable[int]) -> list[Any]:
    from aiokafka.structs import TopicPartition

    return [TopicPartition(topic, p) for p in partitions]


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int = 1,
    replication: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create Kafka topics (existing ones are left as they are) and wait for leaders.

    Synchronous; inside a running event loop it runs on a helper thread.
    """
    topics = list(names)
    if topics:
        with _quiet_aiokafka():
            _run_sync(_create_topics(bootstrap, topics, partitions, replication, timeout_s))


class Kafka(Service):
    """Single-node Kafka in KRaft combined mode (broker and controller in one JVM)."""

    name: ClassVar[str] = "kafka"
    env_hint: ClassVar[str] = "CITYHEALTH_KAFKA_BOOTSTRAP / CITYHEALTH_KAFKA_CONTROLLER_PORT"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.addr.kafka_host}:{self.addr.kafka_port}"

    def ports(self) -> list[tuple[str, int]]:
        return [
            (self.addr.kafka_host, self.addr.kafka_port),
            (self.addr.kafka_host, self.addr.kafka_controller_port),
        ]

    def _server_properties(self) -> str:
        host, port, cport = (
            self.addr.kafka_host,
            self.addr.kafka_port,
            self.addr.kafka_controller_port,
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{cport}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.paths.data),
            "num.partitions": str(self.settings.kafka_partitions),
            "auto.create.topics.enable": "true",
            # One node: every internal topic has a single replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # Fewer internal partitions: the first consumer group is ready in ~1 s, not ~10.
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.num.partitions": "8",
            "group.initial.rebalance.delay.ms": "0",
            # Two cores on the target machine.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "72",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, main: str, *args: str) -> list[str]:
        libs = kafka_libs_dir(self.settings)
        if not libs.is_dir():
            raise StackError(
                f"Kafka {self.settings.kafka_version} jars are missing in {libs}; "
                "run `cityhealth stack install`"
            )
        java = shutil.which("java")
        if java is None:
            raise StackError("java is not on PATH (Java 17 is required for Kafka)")
        heap = self.settings.kafka_heap_mb
        return [
            java,
            f"-Xmx{heap}m",
            f"-Xms{min(heap, 256)}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.paths.conf / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.paths.root}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _write_conf(self) -> None:
        (self.paths.conf / "server.properties").write_text(self._server_properties())
        (self.paths.conf / "log4j.properties").write_text(_LOG4J)

    def prepare(self) -> None:
        """Format the KRaft log directory once (``meta.properties`` marks it formatted)."""
        if (self.paths.data / "meta.properties").exists():
            return
        self._write_conf()
        argv = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            _cluster_id(),
            "-c",
            str(self.paths.conf / "server.properties"),
        )
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise StackError(
                "formatting Kafka storage failed:\n" + (out.stdout + out.stderr).strip()[-3000:]
            )

    def command(self) -> list[str]:
        self._write_conf()
        return self._java("kafka.Kafka", str(self.paths.conf / "server.properties"))

    def probe(self) -> str | None:
        return kafka_probe(self.bootstrap_servers)

    def describe(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap_servers}
