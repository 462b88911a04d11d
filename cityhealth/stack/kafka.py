"""Apache Kafka broker for the local stack: one JVM in KRaft combined mode.

The jars come from Maven Central (``cityhealth/stack/kafka/pom.xml``, resolved by
``cityhealth stack install`` into ``<cache_dir>/kafka-<version>/libs``). The broker is
started as ``java -cp 'libs/*' kafka.Kafka server.properties`` with
``process.roles=broker,controller`` (KIP-500: no ZooKeeper), its log directory formatted
once by ``kafka.tools.StorageTool format`` (what ``kafka-storage.sh format`` runs).

No endpoint is open without credentials: the client listener (``CLIENT``, on
``settings.kafka_bootstrap``) is ``SASL_PLAINTEXT`` with SCRAM-SHA-512 (or PLAIN, by
``settings.kafka_sasl_mechanism``); the SCRAM user is written into the metadata log when
the storage is formatted (``--add-scram``, KIP-900), because a KRaft broker has no other
way to hold SCRAM credentials before it can serve requests. The ``CONTROLLER`` listener
is bound to 127.0.0.1 and authenticates with SASL/PLAIN against the same credentials
(SCRAM is not supported there: controllers must authenticate before the metadata log,
where SCRAM users live, is read). Clients get the credentials from
:func:`ingest.kafka_client.kafka_client_kwargs`; docs/SECURITY.md says who holds what.

Topic auto-creation is **on**, with ``num.partitions = settings.kafka_partitions``, as in
the apache/kafka image used by docker-compose: producers and consumers that forget to
create a topic still work locally. Services that care about partition counts create
their topics explicitly (:func:`create_topics`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cityhealth.stack.paths import kafka_libs_dir
from cityhealth.stack.process import StackError
from cityhealth.stack.service import Service
from ingest.kafka_client import kafka_client_kwargs, kafka_password

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


log = logging.getLogger(__name__)

# Records the SCRAM user the log directory was formatted with (one line: the user name).
_SCRAM_MARKER = "scram.user"


def _jaas_quote(value: str) -> str:
    """A JAAS option value in double quotes (backslash escapes, as JAAS's tokenizer reads)."""
    if "\n" in value or "\r" in value:
        raise StackError("Kafka user names and passwords cannot contain line breaks")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (it holds a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


async def _broker_count(kafka: Mapping[str, Any], timeout_s: float) -> int:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(**kafka, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
        return len(metadata.brokers())
    finally:
        await client.close()


def kafka_probe(kafka: Mapping[str, Any], timeout_s: float = 5.0) -> str | None:
    """Fetch cluster metadata as an authenticated client; None when a broker is registered.

    ``kafka`` is :func:`~ingest.kafka_client.kafka_client_kwargs` of the settings, so the
    probe succeeds only if the broker accepts these credentials.
    """
    bootstrap = kafka["bootstrap_servers"]
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        return f"cannot connect to {bootstrap}: {exc}"
    try:
        with _quiet_aiokafka():
            brokers = _run_sync(_broker_count(kafka, timeout_s))
    except Exception as exc:  # any client error means "not ready" to a probe
        return (
            f"no metadata from {bootstrap} as SASL user {kafka.get('sasl_plain_username')!r}: "
            f"{type(exc).__name__}: {exc} (a wrong CITYHEALTH_KAFKA_PASSWORD for this data "
            "directory fails like this)"
        )
    return None if brokers else f"{bootstrap} answers but has no registered broker yet"


async def _create_topics(
    kafka: Mapping[str, Any], names: list[str], partitions: int, replication: int, timeout_s: float
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**kafka, request_timeout_ms=int(timeout_s * 1000))
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
    kafka: Mapping[str, Any],
    names: Iterable[str],
    *,
    partitions: int = 1,
    replication: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create Kafka topics (existing ones are left as they are) and wait for leaders.

    ``kafka`` is :func:`~ingest.kafka_client.kafka_client_kwargs` of the settings.
    Synchronous; inside a running event loop it runs on a helper thread.
    """
    topics = list(names)
    if topics:
        with _quiet_aiokafka():
            _run_sync(_create_topics(kafka, topics, partitions, replication, timeout_s))


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
        mechanism = self.settings.kafka_sasl_mechanism
        user = _jaas_quote(self.settings.kafka_username)
        password = _jaas_quote(kafka_password(self.settings).get_secret_value())
        plain_user = f"user_{self.settings.kafka_username}={password}"
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f"username={user} password={password} {plain_user};"
        )
        scram = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f"username={user} password={password};"
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # The controller only ever talks to this JVM: loopback, whatever the client host.
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
            "listeners": f"CLIENT://{host}:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"CLIENT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "CLIENT",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
            # Clients (and the broker's own inter-broker requests, e.g. transaction markers).
            "listener.name.client.sasl.enabled.mechanisms": mechanism,
            "sasl.mechanism.inter.broker.protocol": mechanism,
            f"listener.name.client.{mechanism.lower()}.sasl.jaas.config": (
                plain if mechanism == "PLAIN" else scram
            ),
            # Controller: PLAIN with the user defined in JAAS (SCRAM users live in the
            # metadata log, which the controller quorum must reach first).
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
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
            # The log cleaner clears its whole dedupe map before every pass (Arrays.fill;
            # 128 MiB by default): the compacted topics here (consumer offsets, transaction
            # state, the workers' checkpoints) have a few thousand keys, which 16 MiB
            # (~600,000 keys per pass) holds with room to spare.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "log.retention.hours": "72",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        # Java .properties read a backslash as an escape: double them (JAAS quoting).
        escaped = {k: v.replace("\\", "\\\\") for k, v in props.items()}
        return "".join(f"{k}={v}\n" for k, v in escaped.items())

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
            # Parallel (throughput) collector: G1's concurrent marking, refinement and
            # collections took ~2 s of broker CPU in a quarter-district run, the parallel
            # collector 0.1-0.2 s (docs/INGEST.md); young pauses of this heap are short.
            "-XX:+UseParallelGC",
            # C1 only: on two shared cores the C2 compiler was about half of the broker's
            # CPU in a benchmark run (the JIT kept compiling new request paths for minutes),
            # while the request threads cost the same with C1 code (docs/INGEST.md).
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.paths.conf / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.paths.root}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _write_conf(self) -> None:
        # server.properties holds the SASL password (JAAS): owner-only, like the key files.
        _write_private(self.paths.conf / "server.properties", self._server_properties())
        (self.paths.conf / "log4j.properties").write_text(_LOG4J)

    def _formatted_without_user(self) -> bool:
        """Whether the log directory lacks this SCRAM user (formatted by an older version
        without SASL, or for another user name)."""
        if self.settings.kafka_sasl_mechanism == "PLAIN":
            return False  # PLAIN users live in server.properties, rewritten every start
        marker = self.paths.root / _SCRAM_MARKER
        recorded = marker.read_text().strip() if marker.exists() else None
        return recorded != self.settings.kafka_username

    def prepare(self) -> None:
        """Format the KRaft log directory once, with the SCRAM user (``--add-scram``).

        A log directory formatted without that user (by a version before SASL, or for
        another ``kafka_username``) cannot authenticate anyone; it is moved aside to
        ``data.before-sasl-<UTC time>`` (kept, not deleted) and a fresh one is formatted.
        """
        data = self.paths.data
        if (data / "meta.properties").exists():
            if not self._formatted_without_user():
                return
            aside = data.with_name(
                f"data.before-sasl-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
            )
            log.warning(
                "Kafka log directory %s has no SCRAM user %r (formatted without SASL); moved "
                "to %s and formatting a new one",
                data,
                self.settings.kafka_username,
                aside,
            )
            data.rename(aside)
            data.mkdir()
        self._write_conf()
        args = ["format", "--ignore-formatted", "-t", _cluster_id()]
        args += ["-c", str(self.paths.conf / "server.properties")]
        if self.settings.kafka_sasl_mechanism != "PLAIN":
            # KIP-900. On argv for the second the tool runs; the tool has no file option.
            user = self.settings.kafka_username
            password = _jaas_quote(kafka_password(self.settings).get_secret_value())
            args += [
                "--add-scram",
                f"{self.settings.kafka_sasl_mechanism}=[name={user},password={password}]",
            ]
        out = subprocess.run(
            self._java("kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise StackError(
                "formatting Kafka storage failed:\n" + (out.stdout + out.stderr).strip()[-3000:]
            )
        (self.paths.root / _SCRAM_MARKER).write_text(self.settings.kafka_username + "\n")

    def command(self) -> list[str]:
        self._write_conf()
        return self._java("kafka.Kafka", str(self.paths.conf / "server.properties"))

    def probe(self) -> str | None:
        return kafka_probe(kafka_client_kwargs(self.settings))

    def describe(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap_servers}
