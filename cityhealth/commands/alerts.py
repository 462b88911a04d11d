"""``cityhealth alerts``: the caregivers'/operators' live console of ``{topic_prefix}alerts``.

Reads ``read_committed`` (alerts are published in the workers' Kafka transactions;
records of aborted ones must never show, docs/ALERTS.md), drops repeats by
alert ``id`` (the pipeline is at-least-once and ids are deterministic), filters by severity,
type and district, and shows a live table (terminal), one line per alert (logs) or one
JSON alert per line (``--json``). docs/ALERTS_CONSOLE.md describes what is shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

#: Severity order for ``--severity MIN``.
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_COLOUR = {"info": "cyan", "warning": "yellow", "critical": "bold red"}
#: Alert ids remembered for deduplication (repeats arrive close together: replayed batches).
_SEEN_MAX = 100_000
#: Evidence keys already shown in other columns.
_SKIP = {"family"}


def register(app: typer.Typer) -> None:
    """Attach the ``alerts`` command."""
    app.command("alerts")(alerts)


@dataclass
class Filter:
    """Which alerts are shown; an empty ``types`` / ``districts`` means all."""

    min_rank: int = 0
    types: frozenset[str] = frozenset()
    districts: frozenset[str] = frozenset()

    def accepts(self, alert: dict[str, Any]) -> bool:
        return (
            SEVERITY_RANK[alert["severity"]] >= self.min_rank
            and (not self.types or alert["type"] in self.types)
            and (not self.districts or alert.get("district") in self.districts)
        )


@dataclass
class Dedup:
    """Bounded memory of the alert ids already seen (oldest forgotten first)."""

    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    repeats: int = 0

    def first_time(self, alert_id: str) -> bool:
        if alert_id in self.seen:
            self.repeats += 1
            return False
        self.seen[alert_id] = None
        if len(self.seen) > _SEEN_MAX:
            self.seen.popitem(last=False)
        return True


def parse_alert(value: bytes | None) -> dict[str, Any]:
    """Decode one record; raises ``ValueError`` naming what is wrong with it."""
    if value is None:
        raise ValueError("empty record")
    alert = json.loads(value)
    if not isinstance(alert, dict):
        raise ValueError("not a JSON object")
    for key in ("id", "type", "severity", "subject"):
        if not isinstance(alert.get(key), str):
            raise ValueError(f"field {key!r} missing or not a string")
    if alert["severity"] not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {alert['severity']!r}")
    if not isinstance(alert.get("sensor_ts"), int | float):
        raise ValueError("field 'sensor_ts' missing or not a number")
    return alert


def _clock(ts: Any) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) if isinstance(ts, int | float) else "-"


def summary(alert: dict[str, Any], width: int = 90) -> str:
    """Message plus the evidence as ``key=value`` (times as UTC clock, numbers short)."""
    parts = [str(alert.get("message") or alert["type"])]
    evidence = alert.get("evidence")
    for key, value in evidence.items() if isinstance(evidence, dict) else ():
        if key in _SKIP or isinstance(value, dict | list):
            continue
        if key.endswith("_ts"):
            value = _clock(value)
        elif isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def line(alert: dict[str, Any]) -> str:
    """One plain-text line per alert (non-terminal output, e.g. container logs)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(alert["sensor_ts"]))
    return (
        f"{when} {alert['severity']:<8} {alert['type']:<15} {alert.get('district', '-')} "
        f"{alert['subject']} {summary(alert, 200)}"
    )


def table(rows: deque[dict[str, Any]], title: str) -> Any:
    """The live table, newest first."""
    from rich.table import Table

    out = Table(title=title, expand=True)
    for name in ("time (UTC)", "severity", "type", "district", "subject", "summary"):
        out.add_column(name, overflow="fold" if name == "summary" else "ellipsis")
    for a in rows:
        sev = a["severity"]
        out.add_row(
            _clock(a["sensor_ts"]),
            f"[{_COLOUR[sev]}]{sev}[/]",
            a["type"],
            str(a.get("district", "-")),
            a["subject"],
            summary(a),
        )
    return out


async def _open(
    kafka: Mapping[str, Any],
    topic: str,
    group: str | None,
    from_beginning: bool,
    wait_s: float | None,
    stop: asyncio.Event,
) -> Any:
    """A started ``read_committed`` consumer of ``topic`` (None if stopped while waiting).

    Group-less (the default) it reads every partition itself, positioned before it returns,
    so each console sees every alert; with ``group`` the partitions are shared among the
    group's consoles and offsets are committed, so a restarted console resumes there.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **kafka,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        await consumer.start()
        deadline = None if wait_s is None else time.monotonic() + wait_s
        # The workers may create the topic later. force_metadata_update: the public
        # topics() does not refresh what partitions_for_topic reads (as streams.alert_reader).
        while not (parts := consumer.partitions_for_topic(topic)):
            if stop.is_set():
                await consumer.stop()
                return None
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Kafka topic {topic!r} does not exist")
            await consumer._client.force_metadata_update()
            if not consumer.partitions_for_topic(topic):
                await asyncio.sleep(0.5)
        if group is not None:
            consumer.subscribe([topic])
            return consumer
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve now, so "reading" on stderr means positioned
        return consumer
    except BaseException:
        await consumer.stop()
        raise


async def consume(
    kafka: Mapping[str, Any],
    topic: str,
    *,
    group: str | None,
    from_beginning: bool,
    keep: Filter,
    as_json: bool,
    max_alerts: int | None,
    idle_s: float | None,
    rows: int,
) -> int:
    """Show alerts until ``max_alerts``, ``idle_s`` without a shown alert, or a signal."""
    from aiokafka import TopicPartition
    from rich.console import Console
    from rich.live import Live

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    consumer = await _open(kafka, topic, group, from_beginning, idle_s, stop)
    if consumer is None:
        return 0
    out = Console()
    sys.stderr.write(f"alerts console: reading {topic} (read_committed, group {group or '-'})\n")
    sys.stderr.flush()
    dedup, shown, newest = Dedup(), 0, deque[dict[str, Any]](maxlen=rows)
    live = Live(table(newest, topic), console=out, auto_refresh=False)
    use_live = not as_json and out.is_terminal
    if use_live:
        live.start()
    last_shown = time.monotonic()
    try:
        while not stop.is_set():
            if max_alerts is not None and shown >= max_alerts:
                break
            if group is not None and not consumer.assignment():
                last_shown = time.monotonic()  # idle counts from joining the group
            elif idle_s is not None and time.monotonic() - last_shown > idle_s:
                break
            batch = await consumer.getmany(timeout_ms=300)
            commit: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                for record in records:
                    if max_alerts is not None and shown >= max_alerts:
                        break
                    commit[tp] = record.offset + 1
                    try:
                        alert = parse_alert(record.value)
                    except (ValueError, UnicodeDecodeError) as exc:
                        bad = {"error": "bad_alert_record", "partition": tp.partition}
                        bad |= {"offset": record.offset, "reason": str(exc)}
                        sys.stderr.write(json.dumps(bad) + "\n")
                        continue
                    if not keep.accepts(alert) or not dedup.first_time(alert["id"]):
                        continue
                    shown += 1
                    last_shown = time.monotonic()
                    if as_json:
                        sys.stdout.write(json.dumps(alert, sort_keys=True) + "\n")
                        sys.stdout.flush()
                    elif use_live:
                        newest.appendleft(alert)
                    else:
                        out.print(line(alert), markup=False, highlight=False, soft_wrap=True)
            if use_live and batch:
                title = f"{topic} - {shown} shown, {dedup.repeats} repeats dropped"
                live.update(table(newest, title), refresh=True)
            if group is not None and commit:
                await consumer.commit(commit)  # only what was read: --max leaves the rest
    finally:
        if use_live:
            live.stop()
        await consumer.stop()
    return shown


def alerts(
    group: Annotated[
        str | None,
        typer.Option(
            help="Kafka consumer group: consoles of one group share the alerts and resume "
            "where they stopped. Default: none (this console sees every alert)."
        ),
    ] = None,
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning",
            help="Start at the oldest retained alert (a group with committed offsets resumes "
            "there instead). Default: only alerts published from now on.",
        ),
    ] = False,
    severity: Annotated[
        str, typer.Option(help="Minimum severity shown: info, warning or critical.")
    ] = "info",
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Show only this alert type (repeatable)."),
    ] = None,
    district: Annotated[
        list[str] | None, typer.Option(help="Show only this district (repeatable).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON alert per line instead of the table.")
    ] = False,
    max_alerts: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many alerts shown.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.0, help="Stop after this many seconds without an alert shown."),
    ] = None,
    rows: Annotated[int, typer.Option(min=1, help="Rows of the live table.")] = 25,
) -> None:
    """Live console of the alerts topic (read_committed, deduplicated by alert id).

    Reads CITYHEALTH_KAFKA_BOOTSTRAP and CITYHEALTH_TOPIC_PREFIX. Stops on Ctrl-C/SIGTERM,
    --max or --timeout (exit code 0).
    """
    from aiokafka.errors import KafkaError

    from cityhealth.settings import get_settings
    from ingest.kafka_client import kafka_client_kwargs
    from ingest.kafka_topics import topics_for
    from streams.alerts import TYPES

    if severity not in SEVERITY_RANK:
        raise typer.BadParameter(f"one of {', '.join(SEVERITY_RANK)}", param_hint="--severity")
    unknown = sorted(set(type_ or ()) - set(TYPES))
    if unknown:
        raise typer.BadParameter(
            f"unknown type(s) {', '.join(unknown)}; types are {', '.join(TYPES)}",
            param_hint="--type",
        )
    settings = get_settings()
    keep = Filter(SEVERITY_RANK[severity], frozenset(type_ or ()), frozenset(district or ()))
    try:
        asyncio.run(
            consume(
                kafka_client_kwargs(settings),
                topics_for(settings).alerts,
                group=group,
                from_beginning=from_beginning,
                keep=keep,
                as_json=as_json,
                max_alerts=max_alerts,
                idle_s=timeout,
                rows=rows,
            )
        )
    except BrokenPipeError:  # the reader of --json went away (e.g. `| head`): a normal stop
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (KafkaError, TimeoutError) as exc:
        typer.echo(f"alerts console: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
