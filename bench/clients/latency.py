"""Client side of the latency suite (and of the scale suite's 1-vs-1,000-books check).

Each function runs in a fresh process (``bench/suite_runner.py``), pinned to the client core,
against ``bench/pacer.py``, and returns a dict: latency percentiles (ns), CPU and wall seconds
over the measured window, counts, RSS.

* :func:`tickwire_run` — ``tickwire.stream(*specs)``; per delta ``BookUpdate``, the added
  latency is ``time.time_ns()`` taken first thing in the ``async for`` body minus the event's
  ``recv_ns`` (stamped by tickwire in the socket callback when the frame arrived).
* :func:`floor_run` — picows + msgspec + dict books (the throughput floor's handler); the
  "latency" is the time from the socket callback's entry to the end of the handler, i.e. the
  floor's own processing time per frame.

The first ``warm`` deltas are excluded from the latency samples and from the CPU window.
"""

from __future__ import annotations

import asyncio
import gc
import time
from array import array
from typing import Any

from bench.common import cpu_seconds, new_loop, peak_rss_bytes, percentiles, rss_bytes


class _Window:
    """Counts deltas; opens the CPU/wall window after ``warm`` of them, closes at ``total``."""

    def __init__(self, total: int, warm: int) -> None:
        self.total = total
        self.warm = warm
        self.n = 0
        self.c0 = self.c1 = 0.0
        self.t0 = self.t1 = 0.0
        self.done = False
        self.lat = array("q")

    def open(self) -> None:
        self.c0 = cpu_seconds()
        self.t0 = time.perf_counter()

    def close(self) -> None:
        self.t1 = time.perf_counter()
        self.c1 = cpu_seconds()
        self.done = True

    def result(self, **extra: Any) -> dict[str, Any]:
        measured = self.n - self.warm
        cpu = self.c1 - self.c0
        wall = self.t1 - self.t0
        out: dict[str, Any] = {
            "msgs": measured, "cpu_s": cpu, "wall_s": wall,
            "cpu_pct": 100.0 * cpu / wall if wall else 0.0,
            "cpu_us_per_msg": cpu / measured * 1e6 if measured else 0.0,
            "msgs_per_s": measured / wall if wall else 0.0,
            "lat_ns": percentiles(self.lat),
            "rss_bytes": rss_bytes(), "peak_rss_bytes": peak_rss_bytes(),
        }
        out.update(extra)
        return out


class _GcWatch:
    """Garbage-collector pauses inside the window (``gc.callbacks``): count, total, max."""

    def __init__(self) -> None:
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0
        self._t = 0
        self._on = False

    def _cb(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter_ns()
        elif self._t:
            d = time.perf_counter_ns() - self._t
            self._t = 0
            self.count += 1
            self.total_ns += d
            if d > self.max_ns:
                self.max_ns = d

    def start(self) -> None:
        if not self._on:
            gc.callbacks.append(self._cb)
            self._on = True

    def stop(self) -> None:
        if self._on:
            gc.callbacks.remove(self._cb)
            self._on = False

    def result(self) -> dict[str, float]:
        return {"count": self.count, "total_ms": self.total_ns / 1e6, "max_us": self.max_ns / 1e3}


# ------------------------------------------------------------------------------------ tickwire


async def _tickwire_main(base: str, specs: list[str], total: int, warm: int, timeout: float) -> dict[str, Any]:
    import tickwire
    from tickwire.model import BookUpdate

    w = _Window(total, warm)
    lat_append = w.lat.append
    time_ns = time.time_ns
    snapshots = 0
    status_events: dict[str, int] = {}
    invalid_at_end = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    gcw = _GcWatch()
    batched = 0
    async with tickwire.stream(*specs, endpoints={"bybit": base}) as feed:
        pending = feed.pending

        async def watchdog() -> None:
            while loop.time() < deadline:
                await asyncio.sleep(0.5)
            await feed.close()

        wd = loop.create_task(watchdog())
        n = 0
        try:
            async for ev in feed:
                now = time_ns()
                if type(ev) is BookUpdate:
                    if ev.snapshot:
                        snapshots += 1
                        continue
                    n += 1
                    if n > warm:
                        lat_append(now - ev.recv_ns)
                        if pending():
                            batched += 1
                        if n >= total:
                            w.n = n
                            w.close()
                            gcw.stop()
                            break
                    elif n == warm:
                        w.open()
                        gcw.start()
                elif ev.is_status:
                    name = type(ev).__name__
                    status_events[name] = status_events.get(name, 0) + 1
        finally:
            wd.cancel()
        w.n = n
        if not w.done:
            raise RuntimeError(f"stream not finished in {timeout:.0f} s: {n}/{total} deltas, "
                               f"{snapshots} snapshots, status events {status_events}")
        invalid_at_end = sum(1 for b in feed.books().values() if not b.valid)
        conns = len(feed.connections)
    return w.result(batched=batched, gc=gcw.result(), snapshots=snapshots, status_events=status_events, invalid_books=invalid_at_end, connections=conns,
                    gc_collections=[s["collections"] for s in gc.get_stats()], loop="uvloop")


def tickwire_run(base: str, specs: list[str], total: int, warm: int, timeout: float = 120.0) -> dict[str, Any]:
    loop = new_loop()
    try:
        return loop.run_until_complete(_tickwire_main(base, specs, total, warm, timeout))
    finally:
        loop.close()


# ------------------------------------------------------------------------------------ floor


def floor_run(base: str, specs: list[str], total: int, warm: int, timeout: float = 120.0) -> dict[str, Any]:
    import json

    import msgspec
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    from bench.clients.floor import BybitBookMsg

    topics = ["orderbook.50." + s.rsplit(":", 1)[1] for s in specs]
    dec = msgspec.json.Decoder(BybitBookMsg)
    books: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    w = _Window(total, warm)
    lat_append = w.lat.append
    time_ns = time.time_ns
    state = {"n": 0}

    def handle(buf: Any) -> int:
        """0: not data, 1: snapshot, 2: delta."""
        m = dec.decode(buf)
        d = m.data
        if d is None:
            return 0
        book = books.get(d.s)
        if book is None:
            book = books[d.s] = ({}, {})
        bids, asks = book
        snap = m.type == "snapshot"
        if snap:
            bids.clear()
            asks.clear()
        for p, s in d.b:
            if s == "0":
                bids.pop(p, None)
            else:
                bids[p] = s
        for p, s in d.a:
            if s == "0":
                asks.pop(p, None)
            else:
                asks[p] = s
        return 1 if snap else 2

    class Listener(WSListener):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.done = done

        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send(WSMsgType.TEXT, json.dumps({"op": "subscribe", "args": topics}).encode())

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            t0 = time_ns()
            if frame.msg_type == WSMsgType.TEXT:
                kind = handle(frame.get_payload_as_memoryview())
                if kind == 2:
                    t1 = time_ns()
                    n = state["n"] = state["n"] + 1
                    if n > warm:
                        lat_append(t1 - t0)
                        if n >= total and not self.done.done():
                            w.n = n
                            w.close()
                            self.done.set_result(None)
                    elif n == warm:
                        w.open()
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            if not self.done.done():
                self.done.set_exception(ConnectionError("server closed before the end of the stream"))

    async def main() -> dict[str, Any]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        transport, _ = await ws_connect(lambda: Listener(done), base + "/v5/public/linear")
        try:
            await asyncio.wait_for(done, timeout=timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"stream not finished in {timeout:.0f} s: {state['n']}/{total} deltas") from None
        finally:
            transport.send_close()
            transport.disconnect()
            await transport.wait_disconnected()
        return w.result(books=len(books), loop="uvloop")

    loop = new_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
