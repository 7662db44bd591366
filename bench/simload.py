"""1,000 subscriptions across venues on ``tickwire.sim`` at the venues' real cadences.

The simulator (every venue: Bybit, OKX, BG Exchange, OKX DEX) runs in a forked process pinned to
the server core, with its universes widened through options (``symbols``, ``instruments``,
``products``; OKX DEX takes any well-formed token address). Push intervals are the simulators'
defaults, which follow the venues (Bybit ``orderbook.50`` every 20 ms, tickers 100 ms / spot
50 ms; OKX ``books`` 100 ms, tickers 100 ms; BGE books 500 ms, tickers 1 s; DEX price 100 ms);
trades come when the synthetic market trades.

:func:`universe` is the subscription list; :class:`SimProcess` runs the simulator and answers
``stats`` (frames sent per venue) over a pipe; :func:`client_run` (fresh client process) runs
``tickwire.stream`` over every spec and measures CPU, RSS, frames and events.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing as mp
import time
from typing import Any

from .common import cpu_seconds, new_loop, peak_rss_bytes, rss_bytes
from .server import ChildProcess, _pin

# (count of symbols, channels) per venue/market; 1,000 subscriptions in all.
BYBIT_LINEAR = 100   # x orderbook.50, publicTrade, tickers = 300
BYBIT_SPOT = 50      # x orderbook.50, publicTrade, tickers = 150
OKX_INSTS = 100      # x books, trades, tickers = 300
BGE_PRODUCTS = 100   # x orderbook.0 (150 levels), ticker = 200
DEX_TOKENS = 50      # x price = 50

# Book frames per second if every book changed at every push (an upper bound: a simulator, like
# a venue, pushes a book only when it changed): Bybit 20 ms, OKX 100 ms, BGE 500 ms.
NOMINAL_BOOK_FPS = (BYBIT_LINEAR + BYBIT_SPOT) * 50 + OKX_INSTS * 10 + BGE_PRODUCTS * 2

DEX_KEY = {"api_key": "sim-key", "secret": "sim-secret", "passphrase": "sim-passphrase"}


def _bybit_syms(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{k:03d}USDT" for k in range(n)]


def _okx_insts(n: int) -> list[str]:
    return [f"Y{k:03d}-USDT" for k in range(n)]


def _bge_products(n: int) -> list[str]:
    return [f"X{k + 1:03d}_USDT" for k in range(n)]


def _dex_tokens(n: int) -> list[str]:
    return ["1/0x" + hashlib.sha1(f"bench-token-{k}".encode()).hexdigest() for k in range(n)]


def universe() -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(specs, simulator options)."""
    lin = _bybit_syms(BYBIT_LINEAR, "L")
    spot = _bybit_syms(BYBIT_SPOT, "S")
    insts = _okx_insts(OKX_INSTS)
    prods = _bge_products(BGE_PRODUCTS)
    toks = _dex_tokens(DEX_TOKENS)
    specs: list[str] = []
    for s in lin:
        specs += [f"bybit.linear:orderbook.50:{s}", f"bybit.linear:publicTrade:{s}", f"bybit.linear:tickers:{s}"]
    for s in spot:
        specs += [f"bybit.spot:orderbook.50:{s}", f"bybit.spot:publicTrade:{s}", f"bybit.spot:tickers:{s}"]
    for i in insts:
        specs += [f"okx:books:{i}", f"okx:trades:{i}", f"okx:tickers:{i}"]
    for p in prods:
        specs += [f"bge:orderbook.0:{p}", f"bge:ticker:{p}"]
    for t in toks:
        specs.append(f"okxdex:price:{t}")
    options: dict[str, dict[str, Any]] = {
        "bybit": {"symbols": {"linear": lin, "spot": spot, "inverse": [], "option": []},
                  "symbol_specs": {s: {"tick": "0.01", "lot": "0.1", "price": "100"} for s in lin + spot}},
        "okx": {"instruments": insts,
                "symbol_specs": {i: {"tick": "0.01", "lot": "0.0001", "price": "100", "size_mean_lots": 5000}
                                 for i in insts}},
        "bge": {},
        "okxdex": {},
    }
    return specs, options


# ------------------------------------------------------------------------------ sim process


def _sim_main(options: dict[str, Any], conn: Any, cpu: int | None, seed: int) -> None:
    _pin(cpu)
    from tickwire.sim import Simulator

    loop = new_loop()
    asyncio.set_event_loop(loop)
    sim = Simulator(venues=list(options), seed=seed, options=options)
    loop.run_until_complete(sim.start())
    conn.send(sim.endpoints)

    def on_request() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            loop.stop()
            return
        if msg == "stats":
            conn.send({"frames_sent": {v: s.stats.frames_sent for v, s in sim.venues.items()},
                       "cpu_s": cpu_seconds(),
                       "internal_errors": {v: s.stats.internal_errors for v, s in sim.venues.items()},
                       "open_connections": {v: len(s.connections) for v, s in sim.venues.items()}})

    loop.add_reader(conn.fileno(), on_request)
    loop.run_forever()


class SimProcess(ChildProcess):
    def __init__(self, options: dict[str, Any], cpu: int | None = None, seed: int = 7) -> None:
        self.options = options
        self.cpu = cpu
        self.seed = seed
        self.endpoints: dict[str, str] = {}
        self.proc: Any = None
        self.conn: Any = None

    def __enter__(self) -> "SimProcess":
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_sim_main, args=(self.options, child, self.cpu, self.seed),
                                daemon=True, name="bench-sim")
        self.proc.start()
        if not self.conn.poll(60):
            self.close()
            raise RuntimeError("simulator did not start")
        self.endpoints = self.conn.recv()
        return self

    def stats(self) -> dict[str, Any]:
        self.conn.send("stats")
        if not self.conn.poll(10):
            return {}
        return self.conn.recv()



# ------------------------------------------------------------------------------ client side


async def _client_main(endpoints: dict[str, str], specs: list[str], warm_s: float, meas_s: float,
                       sync_timeout_s: float) -> dict[str, Any]:
    import tickwire
    from tickwire.model import BookUpdate

    from tickwire.net.tap import Tap

    frames = [0]

    class FrameCounter(Tap):
        def frame(self, sock_id: str, recv_ns: int, payload: bytes, binary: bool) -> None:
            frames[0] += 1

    counts: dict[str, int] = {}
    status: dict[str, int] = {}
    books_synced: set[str] = set()
    sync_by_venue: dict[str, float] = {}
    n_book_specs = sum(1 for s in specs if ":orderbook." in s or ":books:" in s)
    loop = asyncio.get_running_loop()
    phase = {"name": "sync"}
    mark: dict[str, Any] = {}
    t_start = time.perf_counter()
    async with tickwire.stream(*specs, endpoints=endpoints, credentials={"okxdex": DEX_KEY}) as feed:
        feed.add_tap(FrameCounter())
        rss_start = rss_bytes()

        async def phases() -> None:
            # 1. every book has its snapshot (or the sync timeout), 2. warm-up, 3. measured window
            t0 = time.perf_counter()
            while len(books_synced) < n_book_specs and time.perf_counter() - t0 < sync_timeout_s:
                await asyncio.sleep(0.05)
            mark["sync_s"] = time.perf_counter() - t_start
            mark["books_synced"] = len(books_synced)
            phase["name"] = "warm"
            await asyncio.sleep(warm_s)
            mark.update(c0=cpu_seconds(), t0=time.perf_counter(), f0=frames[0], e0=sum(counts.values()),
                        rss0=rss_bytes())
            counts.clear()
            status.clear()
            phase["name"] = "measure"
            await asyncio.sleep(meas_s)
            mark.update(c1=cpu_seconds(), t1=time.perf_counter(), f1=frames[0], rss1=rss_bytes())
            phase["name"] = "done"
            await feed.close()

        task = loop.create_task(phases())
        try:
            async for ev in feed:
                name = type(ev).__name__
                if type(ev) is BookUpdate:
                    if ev.snapshot and ev.stream not in books_synced:
                        books_synced.add(ev.stream)
                        v = ev.venue
                        sync_by_venue[v] = max(sync_by_venue.get(v, 0.0), time.perf_counter() - t_start)
                counts[name] = counts.get(name, 0) + 1
                if ev.is_status:
                    status[name] = status.get(name, 0) + 1
        finally:
            if not task.done():
                task.cancel()
        conns = {}
        for c in feed.connections:
            conns[c.venue.name] = conns.get(c.venue.name, 0) + 1
        invalid = sum(1 for b in feed.books().values() if not b.valid)
        books = len(feed.books())
    if "c1" not in mark:
        raise RuntimeError(f"feed ended early in phase {phase['name']}: {status}")
    cpu = mark["c1"] - mark["c0"]
    wall = mark["t1"] - mark["t0"]
    nframes = mark["f1"] - mark["f0"]
    nevents = sum(v for k, v in counts.items())
    return {
        "specs": len(specs), "connections": conns, "books": books, "invalid_books_at_end": invalid,
        "sync_s": mark["sync_s"], "sync_by_venue_s": sync_by_venue, "books_synced": mark["books_synced"], "book_specs": n_book_specs,
        "cpu_s": cpu, "wall_s": wall, "cpu_pct": 100 * cpu / wall if wall else 0.0,
        "frames": nframes, "frames_per_s": nframes / wall if wall else 0.0,
        "events": nevents, "events_per_s": nevents / wall if wall else 0.0,
        "cpu_us_per_frame": cpu / nframes * 1e6 if nframes else 0.0,
        "events_by_type": counts, "status_events": status,
        "rss_start_bytes": rss_start, "rss_window_start_bytes": mark["rss0"], "rss_bytes": mark["rss1"],
        "peak_rss_bytes": peak_rss_bytes(),
    }


def client_run(endpoints: dict[str, str], specs: list[str], warm_s: float, meas_s: float,
               sync_timeout_s: float = 60.0) -> dict[str, Any]:
    loop = new_loop()
    try:
        return loop.run_until_complete(_client_main(endpoints, specs, warm_s, meas_s, sync_timeout_s))
    finally:
        loop.close()
