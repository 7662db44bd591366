"""Paced loopback server: many Bybit ``orderbook.50`` books at a fixed message rate.

Used by the latency suite (200 books x 50 updates/s) and the scale suite's "no degradation"
check (1 book vs 1,000 books at the same total rate). Unlike ``bench/server.py`` (as fast as the
client drains), frames go out on a clock:

* ``spread``: book ``k`` of ``n`` sends its delta ``j`` at ``t0 + (j*n + k) / rate`` — every book
  at its own cadence (``rate / n`` per second), phases spread evenly, one frame per write;
* ``burst``: all ``n`` books send delta ``j`` at ``t0 + j*n / rate``, joined into one write per
  connection — the shape of a venue (or ``tickwire.sim``) that pushes every book on one shared
  timer, arriving together.

The sender spins on ``loop.call_soon`` (with ``call_later`` for gaps over ~1.5 ms), so the
server's core is busy in spread mode; it runs pinned to its own core. Per connection: any
Bybit subscribe is acked like the venue, each subscribed book gets its snapshot at once, and
``start_delay`` seconds after every book has been subscribed (on however many connections) the
deltas start. ``{"op":"ping"}`` is answered throughout. When every connection of a run has closed,
the server is ready for the next client (same frames, same schedule).

Server-side lateness (how late each frame left against its schedule) is published in shared
memory: :meth:`PacedServerProcess.stats`.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from . import streams
from .server import ChildProcess, _new_loop, _pin, ws_text_frame

PATHS = ("/v5/public/linear",)


@dataclass
class PacedBooks:
    """``n_books`` Bybit linear ``orderbook.50`` streams and their send schedule."""

    n_books: int
    rate: float  # total data frames per second
    mode: str  # "spread" | "burst"
    rounds: int  # deltas per book
    symbols: list[str]
    topics: list[str]
    snapshots: list[bytes]  # WebSocket-encoded snapshot per book
    frames: list[bytes] = field(repr=False, default_factory=list)  # WS-encoded, in send order
    owner_idx: list[int] = field(repr=False, default_factory=list)  # book index per frame
    gen_s: float = 0.0

    @property
    def total(self) -> int:
        return len(self.frames)

    @property
    def per_book_hz(self) -> float:
        return self.rate / self.n_books

    def due_ns(self, i: int) -> int:
        """Offset of frame ``i`` from the start, ns."""
        if self.mode == "burst":
            i = (i // self.n_books) * self.n_books
        return int(i * 1e9 / self.rate)

    @property
    def specs(self) -> list[str]:
        return [f"bybit.linear:orderbook.50:{s}" for s in self.symbols]


def symbol_names(n: int) -> list[str]:
    return [f"B{k:04d}USDT" for k in range(n)]


def make_books(n_books: int, rate: float, seconds: float, mode: str = "spread", seed0: int = 1000) -> PacedBooks:
    """Generate ``n_books`` books with enough deltas for ``seconds`` at ``rate`` frames/s in all."""
    if mode not in ("spread", "burst"):
        raise ValueError(f"mode must be spread or burst, not {mode!r}")
    t = time.perf_counter()
    rounds = max(1, int(round(seconds * rate / n_books)))
    syms = symbol_names(n_books)
    gens = [streams.bybit_orderbook(rounds, seed=seed0 + k, symbol=s) for k, s in enumerate(syms)]
    snapshots = [ws_text_frame(g.frames[0]) for g in gens]
    frames: list[bytes] = []
    owner: list[int] = []
    for j in range(1, rounds + 1):
        for k, g in enumerate(gens):
            frames.append(ws_text_frame(g.frames[j]))
            owner.append(k)
    return PacedBooks(n_books=n_books, rate=rate, mode=mode, rounds=rounds, symbols=syms,
                      topics=[f"orderbook.50.{s}" for s in syms], snapshots=snapshots, frames=frames,
                      owner_idx=owner, gen_s=time.perf_counter() - t)


# ------------------------------------------------------------------------------------ server

# shared stats slots
_SENT, _LATE_MAX, _LATE_SUM, _LATE_OVER_100US, _RUNS = range(5)


class _Conn(WSListener):
    def __init__(self, srv: "PacedServer", path: str) -> None:
        self.srv = srv
        self.path = path
        self.conn_id = str(uuid.uuid4())
        self.transport: WSTransport | None = None
        self.write: Any = None
        self.closed = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.write = transport.underlying_transport.write
        self.srv.conns.add(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            replies, is_sub = streams.bybit_control_replies(payload, self.path, self.conn_id)
            for r in replies:
                transport.send(WSMsgType.TEXT, r)
            if is_sub:
                self.srv.subscribed(self, payload)
        elif frame.msg_type == WSMsgType.PING:
            transport.send(WSMsgType.PONG, frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self.srv.gone(self)


class PacedServer:
    def __init__(self, plan: PacedBooks, stats: Any = None, start_delay: float = 0.5) -> None:
        import json

        self._json = json
        self.plan = plan
        self.stats = stats if stats is not None else [0.0] * 5
        self.start_delay = start_delay
        self.topic_idx = {t: k for k, t in enumerate(plan.topics)}
        self.conns: set[_Conn] = set()
        self._reset()

    def _reset(self) -> None:
        self.owners: list[_Conn | None] = [None] * self.plan.n_books
        self.n_owned = 0
        self.started = False
        self.i = 0
        self.t0 = 0
        self.handle: Any = None

    def listener_factory(self, request: WSUpgradeRequest) -> WSListener | None:
        path = request.path.decode("latin-1").split("?", 1)[0].rstrip("/")
        if path not in PATHS:
            return None
        return _Conn(self, path)

    def subscribed(self, conn: _Conn, payload: bytes) -> None:
        try:
            args = self._json.loads(payload).get("args") or []
        except (ValueError, AttributeError):
            return
        for topic in args:
            k = self.topic_idx.get(topic)
            if k is None:
                continue
            if self.owners[k] is None:
                self.n_owned += 1
            self.owners[k] = conn
            conn.write(self.plan.snapshots[k])
        if self.n_owned == self.plan.n_books and not self.started:
            self.started = True
            asyncio.get_running_loop().call_later(self.start_delay, self._start)

    def gone(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if not self.conns:
            if self.handle is not None:
                self.handle.cancel()
            self._reset()

    def _start(self) -> None:
        if not self.started:
            return
        self.t0 = time.perf_counter_ns()
        self.stats[_RUNS] += 1
        self._spin()

    def _spin(self) -> None:
        self.handle = None
        plan = self.plan
        frames, owner_idx, owners = plan.frames, plan.owner_idx, self.owners
        n = len(frames)
        i = self.i
        now = time.perf_counter_ns()
        t0 = self.t0
        stats = self.stats
        late_max = stats[_LATE_MAX]
        late_sum = 0.0
        over = 0
        sent = 0
        burst: dict[_Conn, list[bytes]] | None = {} if plan.mode == "burst" else None
        while i < n:
            due = t0 + plan.due_ns(i)
            if due > now:
                break
            c = owners[owner_idx[i]]
            if c is not None and not c.closed:
                if burst is None:
                    c.write(frames[i])
                else:
                    burst.setdefault(c, []).append(frames[i])
            late = now - due
            if late > late_max:
                late_max = late
            late_sum += late
            if late > 100_000:
                over += 1
            sent += 1
            i += 1
            if burst is None:
                now = time.perf_counter_ns()
        if burst:
            for c, parts in burst.items():
                c.write(b"".join(parts))
        self.i = i
        if sent:
            stats[_SENT] += sent
            stats[_LATE_MAX] = late_max
            stats[_LATE_SUM] += late_sum
            stats[_LATE_OVER_100US] += over
        if i >= n:
            return
        loop = asyncio.get_running_loop()
        gap = (t0 + plan.due_ns(i) - time.perf_counter_ns()) / 1e9
        if gap > 0.0015:
            self.handle = loop.call_later(gap - 0.001, self._spin)
        else:
            self.handle = loop.call_soon(self._spin)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        return await ws_create_server(self.listener_factory, host, port, websocket_handshake_timeout=10)


def _serve_main(plan: PacedBooks, stats: Any, conn: Any, cpu: int | None) -> None:
    _pin(cpu)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    srv = PacedServer(plan, stats)
    server = loop.run_until_complete(srv.start())
    conn.send(server.sockets[0].getsockname()[1])
    conn.close()
    loop.run_forever()


class PacedServerProcess(ChildProcess):
    """Run a :class:`PacedServer` in a forked child (the frames are inherited, not copied)."""

    def __init__(self, plan: PacedBooks, cpu: int | None = None) -> None:
        self.plan = plan
        self.cpu = cpu
        self.port = 0
        self.proc: Any = None
        self._stats: Any = None

    def __enter__(self) -> "PacedServerProcess":
        ctx = mp.get_context("fork")
        self._stats = ctx.Array("d", 5, lock=False)
        parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_serve_main, args=(self.plan, self._stats, child, self.cpu),
                                daemon=True, name="bench-paced-server")
        self.proc.start()
        child.close()
        if not parent.poll(60):
            self.close()
            raise RuntimeError("paced server did not start")
        self.port = parent.recv()
        parent.close()
        return self

    @property
    def base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def reset_stats(self) -> None:
        for k in range(5):
            self._stats[k] = 0.0

    def stats(self) -> dict[str, float]:
        s = self._stats
        sent = s[_SENT]
        return {"sent": int(sent), "late_max_us": s[_LATE_MAX] / 1e3,
                "late_mean_us": (s[_LATE_SUM] / sent / 1e3) if sent else 0.0,
                "late_over_100us": int(s[_LATE_OVER_100US]), "runs": int(s[_RUNS])}

