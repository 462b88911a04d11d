"""Decoder processes: run :class:`~ingest.bridge.stage.DecodeStage` beside the MQTT loop.

Contract validation and batching cost more CPU per message than paho's own reading, and
Python threads share one interpreter lock, so the bridge moves the stage into child
processes: the parent only reads MQTT, produces to Kafka and acknowledges. Messages are
routed to a decoder by their topic (device + channel), so one device's readings of one
channel stay in order within one batcher.

Protocol (pickled): parent -> child over a ``multiprocessing`` queue (its feeder thread
never blocks the event loop): ``list[RawMessage]`` chunks, ``"flush"`` (seal everything)
and ``None`` (exit); child -> parent over a pipe the parent's event loop reads:
``("ready", None)``, ``("out", StageOutput)`` and ``("flushed", StageOutput)``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import queue
import signal
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ingest.bridge.stage import DecodeStage, RawMessage, StageConfig, StageOutput

if TYPE_CHECKING:
    from cityhealth.settings import Settings

log = logging.getLogger(__name__)

_FLUSH = "flush"
#: Event callback: ``(decoder index, kind, output)`` with kind ``out``/``flushed``/``died``.
EventSink = Callable[[int, str, StageOutput | None], None]


def _decoder_main(settings: Settings, config: StageConfig, inbox: Any, outbox: Any) -> None:
    try:
        _decode_loop(settings, config, inbox, outbox)
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        return  # the parent went away


def _decode_loop(settings: Settings, config: StageConfig, inbox: Any, outbox: Any) -> None:
    """Child process: decode chunks until told to exit; seal aged buffers on time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C and asks us to flush
    stage = DecodeStage(settings, config)
    outbox.send(("ready", None))
    while True:
        deadline = stage.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            item = inbox.get(timeout=timeout)
        except queue.Empty:
            outbox.send(("out", stage.poll()))
            continue
        if item is None:
            return
        if item == _FLUSH:
            outbox.send(("flushed", stage.flush()))
            continue
        out = stage.process(item)
        deadline = stage.next_deadline()
        if deadline is not None and deadline <= time.monotonic():
            out.sealed.extend(stage.poll().sealed)
        outbox.send(("out", out))


class DecoderPool:
    """``n`` decoder processes whose outputs are read by an asyncio event loop.

    Parameters
    ----------
    n
        Number of processes (>= 1).
    settings, config
        Passed to each :class:`DecodeStage` (the pseudonym key travels pickled over the
        process pipe, never through argv or the environment).
    on_event
        Called on the event loop for every output, and with kind ``died`` if a decoder
        exits unexpectedly.
    """

    def __init__(
        self, n: int, settings: Settings, config: StageConfig, on_event: EventSink
    ) -> None:
        if n < 1:
            raise ValueError("a decoder pool needs at least one process")
        ctx = mp.get_context("spawn")  # never fork a process that already runs threads
        self._inboxes = [ctx.Queue() for _ in range(n)]
        pipes = [ctx.Pipe(duplex=False) for _ in range(n)]
        self._outboxes = [reader for reader, _ in pipes]
        self._procs = [
            ctx.Process(
                target=_decoder_main,
                args=(settings, config, self._inboxes[i], pipes[i][1]),
                name=f"ingest-decoder-{i}",
                daemon=True,
            )
            for i in range(n)
        ]
        self._writers = [writer for _, writer in pipes]
        self._on_event = on_event
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def size(self) -> int:
        return len(self._procs)

    @property
    def pids(self) -> list[int]:
        """Process ids of the decoders (for CPU accounting)."""
        return [p.pid for p in self._procs if p.pid is not None]

    def start(self, ready_timeout_s: float = 120.0) -> None:
        """Start the processes and wait until each has built its stage (blocking)."""
        for proc in self._procs:
            proc.start()
        for writer in self._writers:
            writer.close()  # the children hold the write ends now; EOF means a child died
        deadline = time.monotonic() + ready_timeout_s
        for i, (outbox, proc) in enumerate(zip(self._outboxes, self._procs, strict=True)):
            while not outbox.poll(0.2):
                if not proc.is_alive():
                    raise RuntimeError(f"decoder {i} exited with code {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"decoder {i} did not start in {ready_timeout_s} s")
            kind, _ = outbox.recv()
            if kind != "ready":
                raise RuntimeError(f"decoder {i} sent {kind!r} before 'ready'")

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading the decoders' outputs on ``loop`` (call on that loop)."""
        self._loop = loop
        for i, outbox in enumerate(self._outboxes):
            loop.add_reader(outbox.fileno(), self._read, i)

    def submit(self, messages: list[RawMessage]) -> None:
        """Queue a chunk; with several decoders each message goes by its topic."""
        if self.size == 1:
            self._inboxes[0].put(messages)
            return
        parts: list[list[RawMessage]] = [[] for _ in range(self.size)]
        for message in messages:
            parts[zlib.crc32(message[1]) % self.size].append(message)
        for inbox, part in zip(self._inboxes, parts, strict=True):
            if part:
                inbox.put(part)

    def request_flush(self) -> None:
        """Ask every decoder to seal all its buffers (answers arrive as ``flushed``)."""
        for inbox in self._inboxes:
            inbox.put(_FLUSH)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Tell the decoders to exit (kill any that does not); call after the loop stopped
        reading (or from the loop)."""
        self._stopping = True
        if self._loop is not None and not self._loop.is_closed():
            for outbox in self._outboxes:
                self._loop.call_soon_threadsafe(self._loop.remove_reader, outbox.fileno())
        for inbox in self._inboxes:
            inbox.put(None)
        for proc in self._procs:
            proc.join(timeout_s)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for inbox in self._inboxes:
            inbox.close()
            inbox.join_thread()

    def _read(self, index: int) -> None:
        outbox = self._outboxes[index]
        try:
            while outbox.poll():
                kind, output = outbox.recv()
                self._on_event(index, kind, output)
        except (EOFError, OSError):
            assert self._loop is not None
            self._loop.remove_reader(outbox.fileno())
            if not self._stopping:
                log.error("decoder %d died (exit code %s)", index, self._procs[index].exitcode)
                self._on_event(index, "died", None)
