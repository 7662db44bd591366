"""A network line in front of a simulator: a TCP relay with its own delay, jitter and outages.

Venues serve the same data from several hosts; what differs between them is the network path.
:class:`Line` stands for one such path on loopback: it listens on its own port and relays every
byte to a simulator (or any TCP server), after ``latency_ms`` plus a uniform ``[0, jitter_ms]``
in each direction, never reordering a connection's bytes. At run time a test can make it slower
(:meth:`Line.set_delay`), cut it (:meth:`Line.drop`: every relayed connection aborted, no close
frame) and keep it down (:meth:`Line.set_down`: new connections refused until it is up again).

Two lines in front of one simulator are two hosts of one exchange: the same market, the same
sequence numbers and trade ids, on paths of different quality (``tests/test_lines_live.py``,
``bench/lines.py``)::

    async with Simulator(venues=["bybit"]) as sim:
        host, port = sim.venue("bybit").host, sim.venue("bybit").port
        async with Line(host, port, latency_ms=2) as fast, Line(host, port, latency_ms=20) as slow:
            endpoints = {"bybit": [slow.url, fast.url]}
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

__all__ = ["Line"]

_CHUNK = 65_536


class Line:
    """A TCP relay to ``target_host:target_port`` with per-direction delay and jitter."""

    def __init__(self, target_host: str, target_port: int, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 seed: Any = 0, scheme: str = "ws") -> None:
        self.target = (target_host, target_port)
        self.latency_s = latency_ms / 1000.0
        self.jitter_s = jitter_ms / 1000.0
        self.scheme = scheme
        self.rng = random.Random(f"line|{seed}")
        self.down = False
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0          # connections relayed since start
        self.refused = 0           # connections refused while down
        self.bytes_down = 0        # server -> client
        self._server: asyncio.AbstractServer | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        """The base URL a client uses for this line (``ws://127.0.0.1:PORT``)."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "Line":
        self._server = await asyncio.start_server(self._accept, host, port)
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "Line":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # -- run-time control ------------------------------------------------------------------
    def set_delay(self, latency_ms: float, jitter_ms: float | None = None) -> None:
        """A new one-way delay (and jitter) for every byte relayed from now on."""
        self.latency_s = latency_ms / 1000.0
        if jitter_ms is not None:
            self.jitter_s = jitter_ms / 1000.0

    def drop(self) -> None:
        """Abort every relayed connection now (the client sees the connection lost, no close frame)."""
        for a, b in list(self._pairs):
            for w in (a, b):
                try:
                    w.transport.abort()
                except Exception:
                    pass
        self._pairs.clear()

    def set_down(self, down: bool = True) -> None:
        """While down, new connections are refused at once (accepted, then reset)."""
        self.down = down

    # -- relaying --------------------------------------------------------------------------
    def _delay(self) -> float:
        d = self.latency_s
        if self.jitter_s > 0:
            d += self.rng.random() * self.jitter_s
        return d

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, uw)
        self._pairs.add(pair)
        t1 = asyncio.get_running_loop().create_task(self._pump(reader, uw, pair, up=True))
        t2 = asyncio.get_running_loop().create_task(self._pump(ur, writer, pair, up=False))
        for t in (t1, t2):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter], up: bool) -> None:
        """Read, and write each chunk ``delay`` later, in order (a later chunk never leaves
        before an earlier one even when its own delay is shorter)."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        async def writer_task() -> None:
            while True:
                due, data = await q.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    try:
                        writer.close()
                    except Exception:
                        pass
                    return
                if writer.transport.is_closing():
                    return
                writer.write(data)
                if not up:
                    self.bytes_down += len(data)

        w = loop.create_task(writer_task())
        last_due = 0.0
        try:
            while True:
                data = await reader.read(_CHUNK)
                due = max(loop.time() + self._delay(), last_due)
                last_due = due
                q.put_nowait((due, data or None))
                if not data:
                    break
            await w
        except (ConnectionError, asyncio.CancelledError):
            w.cancel()
        finally:
            self._pairs.discard(pair)
            if not w.done():
                w.cancel()
