"""Decoder processes: run :class:`~ingest.bridge.stage.DecodeStage` beside the MQTT loop.

Contract validation and batching cost more CPU per message than paho's own reading, and
Python threads share one interpreter lock, so the bridge moves the stage into child
processes: the parent only reads MQTT, produces to Kafka and acknowledges. Messages are
routed to a decoder by their topic (device + channel), so one device's readings of one
channel stay in order within one batcher.

Protocol (pickled, ``multiprocessing.Connection`` framing): parent -> child, written by the
parent's event loop through a non-blocking asyncio pipe transport (so the loop never
blocks and no feeder thread competes for the interpreter lock): ``list[RawMessage]``
chunks, ``"flush"`` (seal everything) and ``None`` (exit); child -> parent, read by the
loop when the pipe is readable: ``("ready", None)``, ``("out", StageOutput)`` and
``("flushed", StageOutput)``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import pickle
import signal
import struct
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
    # The parent owns Ctrl-C and termination: it asks us to flush, then to exit; if the parent
    # dies, the pipe's EOF ends this loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stage = DecodeStage(settings, config)
    outbox.send(("ready", None))
    while True:
        deadline = stage.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not inbox.poll(timeout):
            outbox.send(("out", stage.poll()))
            continue
        item = inbox.recv()
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
        down = [ctx.Pipe(duplex=False) for _ in range(n)]  # parent -> child
        up = [ctx.Pipe(duplex=False) for _ in range(n)]  # child -> parent
        self._procs = [
            ctx.Process(
                target=_decoder_main,
                args=(settings, config, down[i][0], up[i][1]),
                name=f"ingest-decoder-{i}",
                daemon=True,
            )
            for i in range(n)
        ]
        self._inboxes = [writer for _, writer in down]
        self._outboxes = [reader for reader, _ in up]
        self._child_ends = [reader for reader, _ in down] + [writer for _, writer in up]
        self._transports: list[asyncio.WriteTransport] = []
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
        for end in self._child_ends:
            end.close()  # only the children hold these now: EOF then means a child died
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

    async def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect the pipes to ``loop`` (run on that loop)."""
        self._loop = loop
        for i, outbox in enumerate(self._outboxes):
            loop.add_reader(outbox.fileno(), self._read, i)
        for inbox in self._inboxes:
            pipe = os.fdopen(inbox.fileno(), "wb", buffering=0, closefd=False)
            transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, pipe)
            self._transports.append(transport)

    def _send(self, index: int, item: object) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        # multiprocessing.Connection framing: 4-byte big-endian signed length, then bytes.
        self._transports[index].writelines([struct.pack("!i", len(data)), data])

    def submit(self, messages: list[RawMessage]) -> None:
        """Queue a chunk; with several decoders each message goes by its topic."""
        if self.size == 1:
            self._send(0, messages)
            return
        parts: list[list[RawMessage]] = [[] for _ in range(self.size)]
        for message in messages:
            parts[zlib.crc32(message[1]) % self.size].append(message)
        for i, part in enumerate(parts):
            if part:
                self._send(i, part)

    def request_flush(self) -> None:
        """Ask every decoder to seal all its buffers (answers arrive as ``flushed``)."""
        for i in range(self.size):
            self._send(i, _FLUSH)

    def close_inputs(self) -> None:
        """Tell every decoder to exit once it has read what was sent (on the loop)."""
        self._stopping = True
        for i, transport in enumerate(self._transports):
            self._send(i, None)
            transport.close()  # after the buffered data is written
        for outbox in self._outboxes:
            assert self._loop is not None
            self._loop.remove_reader(outbox.fileno())

    def stop(self, timeout_s: float = 10.0) -> None:
        """Wait for the decoders to exit (kill any that does not); after the loop stopped."""
        self._stopping = True
        for proc in self._procs:
            proc.join(timeout_s)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self._inboxes + self._outboxes:
            conn.close()

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
