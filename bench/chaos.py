"""``python -m bench chaos``: every venue under every fault that applies to it, checked against the
simulator's ground truth (numbers, not a test; ``tests/test_chaos.py`` runs a short version).

For each venue and fault a fresh simulator and a fresh feed stream books and trades on several
symbols with compressed timers (``timers=``, backoff, the simulator's own timers), while the fault
is injected again and again; then the faults are cleared and the feed settles. Checked, from
``sim.truth`` (:mod:`tickwire.sim.framework.truth`) and the events the user got:

* every injected sequence break is followed by a ``Gap`` on that stream, then ``Resynced``; every
  connection fault by a reconnect and the books' ``Resynced``; a ``Gap`` or a ``Disconnected``
  with no injected cause (or only the venue's limits) is a finding;
* each maintained book (``feed.books()``) equals the venue's book at the same sequence, exactly
  (a level digest), every ``check_s``, after every ``Resynced`` and at the end; a valid book that
  differs is a finding;
* trades: every print the simulator wrote to our sockets arrived, except inside a reported gap
  (a ``Disconnected`` of its connection, an ``Overflow``); none arrived twice;
* the longest silence of a book stream that nothing reported stays under the venue's detection
  timer; reconnects match the connections the faults killed (no storm); the simulator never
  closed or refused us for one of its limits ("bans"); memory stays bounded; nothing raised out of
  the feed.

Parts run with the simulator in its own process under CPU load (a busy loop pinned beside it;
the truth over its control endpoint) and with a deliberately slow consumer.

    python -m bench chaos                # the full run (~10 min), writes its section of bench/RESULTS.md
    python -m bench chaos --quick        # a short run, prints only
    python -m bench chaos --venues okx --cases skip-seq,notice --fault-seconds 6
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from decimal import Decimal
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import tickwire
from tickwire.credentials import SIM_TEST_KEY
from tickwire.model import (
    BookUpdate, Connected, DexTrade, Disconnected, Gap, Notice, Overflow, Resynced, Trade, VenueError,
)
from tickwire.sim import Simulator
from tickwire.sim.framework.truth import levels_digest
from tickwire.venues import parse

# --------------------------------------------------------------------------------------------
# What runs: venues, their streams and timers, and the cases (faults) that apply to each
# --------------------------------------------------------------------------------------------

DEX_WETH = "1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
DEX_USDT = "1/0xdac17f958d2ee523a2206206994597c13d831ec7"
DEX_SOL = "501/So11111111111111111111111111111111111111112"


@dataclass
class Profile:
    """One venue: its streams, compressed client timers, simulator options, and the time the
    client takes at most to notice a silent connection (the "stall timer")."""

    venue: str
    books: list[str]
    trades: list[str]
    timers: dict[str, float]
    sim_options: dict[str, Any] = field(default_factory=dict)
    stall_timer_s: float = 1.0
    credentials: bool = False


PROFILES: dict[str, Profile] = {
    "bybit": Profile(
        "bybit",
        books=["bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:orderbook.50:ETHUSDT",
               "bybit.spot:orderbook.50:BTCUSDT"],
        trades=["bybit.linear:publicTrade:BTCUSDT", "bybit.linear:publicTrade:ETHUSDT",
                "bybit.spot:publicTrade:BTCUSDT"],
        timers={"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05,
                "resync_timeout_s": 1.0, "stream_silence_s": 1.0, "request_timeout_s": 1.5},
        stall_timer_s=1.0,  # a ping every 0.5 s, its pong within 0.5 s
    ),
    "okx": Profile(
        "okx",
        books=["okx:books:BTC-USDT", "okx:books:ETH-USDT", "okx:books:BTC-USDT-SWAP"],
        trades=["okx:trades:BTC-USDT", "okx:trades:ETH-USDT", "okx:trades-all:BTC-USDT"],
        timers={"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05,
                "resync_timeout_s": 1.0, "notice_lead_s": 1.0, "stream_silence_s": 2.0, "request_timeout_s": 1.5},
        sim_options={"notice_lead_s": 1.0, "checksum": "legacy", "keepalive_s": 1.0},
        stall_timer_s=1.0,  # ping after 0.5 s idle, its pong within 0.5 s
    ),
    "bge": Profile(
        "bge",
        books=["bge:orderbook.0:BTC_USDT", "bge:orderbook.0:ETH_USDT", "bge:orderbook.6:SOL_USDT"],
        trades=["bge:fills:BTC_USDT", "bge:fills:ETH_USDT"],
        timers={"stale_s": 1.5, "resync_min_interval_s": 0.05, "resync_timeout_s": 1.0, "stream_silence_s": 1.0,
                "request_timeout_s": 1.5},
        sim_options={"ping_interval_s": 0.5, "pong_timeout_s": 1.5, "book_interval_ms": 100,
                     "fills_interval_ms": 50, "market_steps_per_s": 60},
        stall_timer_s=1.5,  # no frame for 1.5 s (books every 100 ms, server pings every 0.5 s)
    ),
    "okxdex": Profile(
        "okxdex",
        books=[],
        trades=[f"okxdex:trades:{DEX_WETH}", f"okxdex:trades:{DEX_USDT}", f"okxdex:trades:{DEX_SOL}"],
        timers={"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05,
                "resync_timeout_s": 1.0, "notice_lead_s": 1.0, "request_timeout_s": 1.5},
        sim_options={"notice_lead_s": 1.0, "trades_per_s": 20.0, "key_conn_limit": 6},
        stall_timer_s=1.0,
        credentials=True,
    ),
}

FEED_OPTIONS: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_cap_s": 1.0, "stable_after_s": 3.0, "tick_s": 0.05,
                                "instruments": False,
                                # gc.freeze() at each feed's start would make every earlier case's garbage permanent
                                "tune_gc": False}

# What the client must do after one occurrence of a fault kind (a FaultRecord of the truth):
#   gap        a Gap on the record's stream, then Resynced (unless the stream was already broken)
#   reconnect  a Disconnected, then the books Resynced
#   tolerate   no reaction required (the books must stay exact; a Gap it causes is explained)
#   silent     no reaction allowed: a Gap or a reconnect it would cause is a finding
EXPECT: dict[str, str] = {
    "skip-u": "gap", "skip-u-every": "gap", "skip-seq": "gap", "skip-seq-every": "gap", "bad-checksum": "gap",
    "reorder-seq": "gap", "reset-seq": "tolerate", "reset-seq-every": "tolerate",
    "dup-seq": "tolerate", "restart-snapshot": "tolerate", "restart-snapshot-every": "tolerate",
    "drop": "reconnect", "drop-every": "reconnect", "close": "reconnect", "close-4004": "reconnect",
    "close-4009": "reconnect", "rate-close": "reconnect", "ignore-pong": "reconnect", "stall": "reconnect",
    "stall-for": "reconnect", "reject-connect": "tolerate", "reject-connect-for": "tolerate",
    "sub-fail": "tolerate", "malformed": "silent", "malformed-every": "silent", "notice": "silent",
    "no-ping": "silent", "garble": "tolerate", "lose-requests": "tolerate",
}
# Faults that may end the connections they hit: each such connection may reconnect once.
KILLS = frozenset({"drop", "drop-every", "close", "close-4004", "close-4009", "rate-close", "ignore-pong", "stall",
                   "stall-for", "notice"})
# BG Exchange books are full snapshots under one exchange-wide seq_id: a withheld push leaves no
# trace (and no harm), a duplicate is dropped; only a seq_id going back breaks a stream.
EXPECT_BY_VENUE = {("bge", "skip-seq"): "tolerate", ("bge", "skip-seq-every"): "tolerate"}


@dataclass
class Case:
    """One row of the table: a venue, a label, and what to inject when (seconds into the fault
    window, the fault in the simulator's grammar). ``expect`` overrides :data:`EXPECT` per kind."""

    venue: str
    name: str
    actions: list[tuple[float, str]]
    expect: dict[str, str] = field(default_factory=dict)
    sim_options: dict[str, Any] = field(default_factory=dict)
    strict_books: bool = True
    """False: while the faults last a book may differ from the truth (corruption no client can
    tell, e.g. garbling that changes digits); it must be exact again once they stop."""


def _every(fault: str, period: float, seconds: float, start: float = 0.3) -> list[tuple[float, str]]:
    out, t = [], start
    while t < seconds - 0.2:
        out.append((round(t, 3), fault))
        t += period
    return out


def cases_for(venue: str, seconds: float) -> list[Case]:
    """The faults that apply to a venue, each a case of ``seconds`` of faults."""
    p = max(1.2, seconds / 4)  # one-shot faults: about 4 per case
    common = [
        Case(venue, "drop", _every("drop", p, seconds)),
        Case(venue, "drop-every", [(0.3, f"drop-every={max(1.0, seconds / 5):g}s")]),
        # (a stall must end before `clear`, which would cut it short)
        Case(venue, "stall", _every("stall-for=2s", max(p, 2.6), seconds - 2.0)),
        Case(venue, "stall-short", _every("stall-for=0.25s", p, seconds), expect={"stall-for": "tolerate"}),
        Case(venue, "malformed", _every("malformed", p / 2, seconds)),
        Case(venue, "reject-connect", [(t, x) for t0, _ in _every("drop", max(p, 2.0), seconds)
                                       for t, x in ((t0, "reject-connect=3"), (t0 + 0.01, "drop"))]),
        Case(venue, "reject-connect-for", [(t, x) for t0, _ in _every("drop", max(p, 2.5), seconds)
                                           for t, x in ((t0, "reject-connect-for=0.8s"), (t0 + 0.01, "drop"))]),
        Case(venue, "close-1011", _every("close=1011", p, seconds)),
        # frames corrupted in ways a client can recognise: every valid book must still be the venue's
        Case(venue, "garble", [(0.3, "garble=3")]),
        # the reconnect's subscribe requests lost on the way: reported (no-answer), sent again
        Case(venue, "lose-requests", [(t, x) for t0, _ in _every("x", max(p, 2.5), seconds)
                                      for t, x in ((t0, "lose-requests=2"), (t0 + 0.01, "drop"))]),
    ]
    if venue == "bybit":
        return common + [
            Case(venue, "skip-u", _every("skip-u", p / 2, seconds)),
            Case(venue, "skip-u-every", [(0.3, "skip-u-every=60")]),
            Case(venue, "restart-snapshot", _every("restart-snapshot", p, seconds)),
        ]
    if venue == "okx":
        return common + [
            Case(venue, "skip-seq", _every("skip-seq", p / 2, seconds)),
            Case(venue, "skip-seq-every", [(0.3, "skip-seq-every=40")]),
            Case(venue, "reset-seq", _every("reset-seq", p, seconds)),
            Case(venue, "bad-checksum", _every("bad-checksum", p / 2, seconds)),
            Case(venue, "dup-seq", _every("dup-seq", p / 2, seconds)),
            Case(venue, "reorder-seq", _every("reorder-seq", p / 2, seconds)),
            Case(venue, "notice", _every("notice", max(p, 2.0), seconds)),
            Case(venue, "close-4004", _every("close-4004", p, seconds)),
            Case(venue, "close-4009", _every("close-4009", p, seconds)),
            Case(venue, "sub-fail", [(t, x) for t0, _ in _every("x", p, seconds)
                                     for t, x in ((t0, "sub-fail=2"), (t0 + 0.01, "skip-seq"))]),
        ]
    if venue == "bge":
        return common + [
            Case(venue, "skip-seq", _every("skip-seq", p / 2, seconds)),
            Case(venue, "dup-seq", _every("dup-seq", p / 2, seconds)),
            Case(venue, "reorder-seq", _every("reorder-seq", p / 2, seconds)),
            Case(venue, "no-ping", [(0.3, "no-ping")]),
            Case(venue, "ignore-pong", [(0.3, "ignore-pong")]),
            Case(venue, "sub-fail", [(t, x) for t0, _ in _every("x", max(p, 2.0), seconds)
                                     for t, x in ((t0, "sub-fail=2"), (t0 + 0.01, "drop"))]),
            Case(venue, "rate-close", _every("rate-close", p, seconds)),
        ]
    if venue == "okxdex":
        return common + [
            Case(venue, "notice", _every("notice", max(p, 2.0), seconds)),
            Case(venue, "close-4004", _every("close-4004", p, seconds)),
            Case(venue, "sub-fail", [(t, x) for t0, _ in _every("x", max(p, 2.0), seconds)
                                     for t, x in ((t0, "sub-fail=2"), (t0 + 0.01, "drop"))]),
        ]
    raise ValueError(f"no chaos profile for {venue!r}")


def truth_name(spec: str) -> tuple[str, str]:
    """(venue, the simulator's name of the stream) for a client spec."""
    sub = parse(spec)
    if sub.venue == "bybit":
        return "bybit", f"{sub.market}:{sub.topic}"
    if sub.venue == "okx":
        return "okx", sub.topic
    if sub.venue == "bge":
        typ, _, iv = sub.channel.partition(".")
        return "bge", f"market.{typ}.{sub.symbol}" + (f".{iv}" if iv else "")
    if sub.venue == "okxdex":
        ch, chain, addr = sub.topic.split(":", 2)
        return "okxdex", f"{ch}|{chain}|{addr}"
    raise ValueError(spec)


# --------------------------------------------------------------------------------------------
# The truth, in process or over the control endpoint
# --------------------------------------------------------------------------------------------


class LocalTruth:
    """The truth of an in-process :class:`Simulator`."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.endpoints = sim.endpoints

    async def inject(self, venue: str, fault: str) -> None:
        self.sim.venue(venue).inject(fault)

    async def digests(self, venue: str, wanted: list[tuple[str, int]]) -> list[int | None]:
        truth = self.sim.venue(venue).truth
        out = []
        for name, seq in wanted:
            b = truth.books.get(name)
            out.append(None if b is None else b.digest_at(seq))
        return out

    async def faults(self, venue: str) -> list[dict]:
        return [r.as_dict() for r in self.sim.venue(venue).truth.faults]

    async def limits(self, venue: str) -> list[dict]:
        return [r.as_dict() for r in self.sim.venue(venue).truth.limits]

    async def trades(self, venue: str, name: str) -> list[list]:
        t = self.sim.venue(venue).truth.trade_logs.get(name)
        return [list(x) for x in t.since(0)[0]] if t is not None else []

    async def book(self, venue: str, name: str) -> dict | None:
        b = self.sim.venue(venue).truth.books.get(name)
        return b.as_dict() if b is not None else None

    async def close(self) -> None:
        await self.sim.stop()


class RemoteTruth:
    """The truth of a simulator in another process, over its control endpoint."""

    def __init__(self, control_url: str, endpoints: dict[str, str]) -> None:
        host, _, port = control_url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.endpoints = endpoints

    async def _req(self, method: str, path: str) -> tuple[int, Any]:
        r, w = await asyncio.open_connection(self.host, self.port)
        try:
            w.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n".encode())
            await w.drain()
            data = await asyncio.wait_for(r.read(), 30)
        finally:
            w.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body or b"null")

    async def _get(self, path: str) -> Any:
        status, body = await self._req("GET", path)
        return body if status == 200 else None

    async def inject(self, venue: str, fault: str) -> None:
        from urllib.parse import quote

        status, body = await self._req("POST", f"/{venue}/inject?fault={quote(fault)}")
        if status != 200:
            raise ValueError(body)

    async def digests(self, venue: str, wanted: list[tuple[str, int]]) -> list[int | None]:
        from urllib.parse import quote

        res = await asyncio.gather(*(self._get(f"/{venue}/book?stream={quote(n)}&seq={s}") for n, s in wanted))
        return [None if r is None else r["digest"] for r in res]

    async def faults(self, venue: str) -> list[dict]:
        return (await self._get(f"/{venue}/faults"))["faults"]

    async def limits(self, venue: str) -> list[dict]:
        return (await self._get(f"/{venue}/limits"))["limits"]

    async def trades(self, venue: str, name: str) -> list[list]:
        from urllib.parse import quote

        r = await self._get(f"/{venue}/trades?stream={quote(name)}")
        return r["trades"] if r else []

    async def book(self, venue: str, name: str) -> dict | None:
        from urllib.parse import quote

        return await self._get(f"/{venue}/book?stream={quote(name)}")

    async def close(self) -> None:
        pass


_BUSY = "import time\nend = time.monotonic() + {secs}\nwhile time.monotonic() < end:\n    pass\n"


class LoadedSim:
    """``tickwire sim --control-port 0`` in its own process, pinned to one core with a busy loop
    beside it (as ``tests/test_pacing_under_load.py`` does): the venue reads our frames late
    and in clumps, as a loaded gateway would."""

    def __init__(self, venue: str, options: dict[str, Any], secs: float) -> None:
        self.venue, self.options, self.secs = venue, options, secs
        self.cpu = "none"

    async def start(self) -> RemoteTruth:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.busy = subprocess.Popen([sys.executable, "-c", _BUSY.format(secs=self.secs)])
        args = [sys.executable, "-c", "from tickwire.cli import main; main()", "sim", "--venues", self.venue,
                "--port", "0", "--control-port", "0"]
        for k, v in self.options.items():
            args += ["--option", f"{self.venue}.{k}={json.dumps(v) if not isinstance(v, str) else v}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if len(cpus) > 1:
            os.sched_setaffinity(self.busy.pid, {cpus[0]})
            os.sched_setaffinity(self.proc.pid, {cpus[0]})
            self.cpu = f"simulator and a busy loop on CPU {cpus[0]}"
        line = await asyncio.to_thread(self.proc.stdout.readline)  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the simulator process did not start")
        ready = json.loads(line)
        return RemoteTruth(ready["control"], {v: i["url"] for v, i in ready["venues"].items()})

    def stop(self) -> None:
        for p in (getattr(self, "proc", None), getattr(self, "busy", None)):
            if p is not None:
                p.kill()
                p.wait(10)


# --------------------------------------------------------------------------------------------
# One case: run, watch, check
# --------------------------------------------------------------------------------------------


_DECIMAL = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _good(x: Any, positive: bool = False) -> bool:
    """A price or size a user can trust: a non-negative decimal string (> 0 if ``positive``)."""
    if not isinstance(x, str) or _DECIMAL.fullmatch(x) is None:
        return False
    return Decimal(x) > 0 or not positive


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


class _ErrorLog(logging.Handler):
    """Counts ERROR records of the client (not of the simulator) while a case runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("tickwire.sim") and not record.name.startswith("sim."):
            self.records.append(f"{record.name}: {record.getMessage()[:200]}")


@dataclass
class Row:
    """What one case measured (one row of the table)."""

    venue: str
    case: str
    mode: str = ""
    seconds: float = 0.0
    injected: int = 0               # fault occurrences that hit something
    expect_gap: int = 0             # ... of which sequence breaks that need a Gap
    detected: int = 0               # sequence breaks followed by a Gap (or connection faults by a reconnect)
    expect_reaction: int = 0        # occurrences that need a reaction (gap or reconnect)
    resynced: int = 0               # ... followed by Resynced
    checks: int = 0                 # book comparisons with the truth
    tolerated: int = 0              # ... that differed while faults no client can tell lasted (strict_books False)
    exact: int = 0
    inexact: int = 0
    unverifiable: int = 0
    trades: int = 0                 # trades delivered
    lost: int = 0                   # trades sent but missing outside any reported gap
    lost_in_gaps: int = 0           # ... inside a reported gap (Disconnected, Overflow)
    duplicated: int = 0
    bans: int = 0                   # refusals and closes by the simulator's limits
    max_silence_s: float = 0.0      # longest interval without a book update (reported or not)
    max_unreported_s: float = 0.0   # ... that nothing (Gap, Disconnected, Overflow) reported
    stall_timer_s: float = 0.0
    reconnects: int = 0
    reconnects_expected: int = 0
    gaps: int = 0
    unexplained: int = 0
    overflow_dropped: int = 0
    overflow_late_s: float = 0.0    # how long the first Overflow waited before the consumer heard of it
    venue_errors: int = 0
    internal_errors: int = 0        # VenueError "internal": a dialect raised on a frame (caught by the engine)
    not_resynced_at_end: int = 0
    raised: int = 0
    rss_mb: float = 0.0
    findings: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.findings


class Watch:
    """Consumes a feed and keeps what the checks need."""

    def __init__(self, feed: Any, book_specs: list[str], trade_specs: list[str], delay_s: float = 0.0,
                 delay_every: int = 1) -> None:
        self.feed = feed
        self.book_specs = set(book_specs)
        self.trade_specs = set(trade_specs)
        self.delay_s, self.delay_every = delay_s, delay_every
        self.n = 0
        self.events: list[tuple[int, Any]] = []          # status events, with their index
        self.trades: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.updates: dict[str, list[int]] = defaultdict(list)   # recv_ns of each book update, per stream
        self.marks: dict[str, list[int]] = defaultdict(list)     # recv_ns of Gaps/Disconnecteds touching it
        self.overflows: list[tuple[int, int]] = []               # (first drop, taken by the consumer)
        self.resynced_q: list[str] = []
        self.conns_of: dict[str, set[str]] = defaultdict(set)
        self.raised: list[str] = []
        self.bad_trades: list[str] = []                  # trades delivered with a price or size that is no number
        self.overflow_late_ns = 0                        # longest wait of an Overflow for the consumer
        self.done = False

    def _report(self, specs: Iterable[str], ns: int) -> None:
        for s in specs:
            self.marks[s].append(ns)

    def silence(self, spec: str) -> tuple[int, int]:
        """(longest interval between two updates of a book stream, longest part of one that
        nothing reported), in ns. An interval is reported from the first Gap or Disconnected
        touching the stream within it; wholly, if events were being dropped (an Overflow's window,
        from its first drop to the consumer taking it) at any moment of it."""
        ups = self.updates.get(spec, [])
        marks = sorted(self.marks.get(spec, []))
        longest = unreported = 0
        for a, b in zip(ups, ups[1:]):
            longest = max(longest, b - a)
            if any(o0 <= b and o1 >= a for o0, o1 in self.overflows):
                continue
            m = next((x for x in marks if a <= x <= b), None)
            unreported = max(unreported, (m if m is not None else b) - a)
        return longest, unreported

    def refresh_conns(self) -> None:
        for r in self.feed.stats():
            for s in r["streams"]:
                self.conns_of[s].add(r["conn"])

    async def run(self) -> None:
        try:
            async for ev in self.feed:
                self.n += 1
                if ev.is_status:
                    self.events.append((self.n, ev))
                    if isinstance(ev, Gap):
                        self._report([ev.stream], ev.recv_ns)
                    elif isinstance(ev, Disconnected):
                        self.refresh_conns()
                        self._report([s for s in self.book_specs if ev.conn in self.conns_of[s]], ev.recv_ns)
                    elif isinstance(ev, Overflow):
                        now = time.time_ns()
                        self.overflows.append((ev.recv_ns, now))
                        self.overflow_late_ns = max(self.overflow_late_ns, now - ev.recv_ns)
                    elif isinstance(ev, Resynced):
                        self.resynced_q.append(ev.stream)
                    elif isinstance(ev, Connected):
                        self.refresh_conns()
                elif isinstance(ev, BookUpdate):
                    self.updates[ev.stream].append(ev.recv_ns)
                elif isinstance(ev, Trade):
                    self.trades[ev.stream].append((self.n, ev.trade_id))
                    if not (_good(ev.price) and _good(ev.size, positive=True)) and len(self.bad_trades) < 5:
                        self.bad_trades.append(f"{ev.stream} trade {ev.trade_id}: price {ev.price!r} size {ev.size!r}")
                elif isinstance(ev, DexTrade):
                    tid = (ev.raw or {}).get("id") or ev.tx_hash
                    self.trades[ev.stream].append((self.n, str(tid)))
                    if not (_good(ev.price) and (ev.size is None or _good(ev.size))) and len(self.bad_trades) < 5:
                        self.bad_trades.append(f"{ev.stream} trade {tid}: price {ev.price!r} size {ev.size!r}")
                if self.delay_s and self.n % self.delay_every == 0:
                    await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the feed must never raise: a finding
            self.raised.append(f"{type(e).__name__}: {e}")
        finally:
            self.done = True

    def of(self, cls: type) -> list[tuple[int, Any]]:
        return [(i, e) for i, e in self.events if isinstance(e, cls)]


async def run_case(case: Case, *, seconds: float, settle_s: float = 2.5, mode: str = "", loaded: bool = False,
                   slow: bool = False, check_s: float = 0.25, seed: int = 1) -> Row:
    """Run one case and return its row."""
    prof = PROFILES[case.venue]
    venue = case.venue
    sim_opts = {**prof.sim_options, **case.sim_options}
    if slow:  # a busier market, so the slow consumer falls behind within seconds
        sim_opts.update({"trades_per_s": 100.0} if venue == "okxdex" else {"market_steps_per_s": 300})
    row = Row(venue, case.name, mode=mode, seconds=seconds, stall_timer_s=prof.stall_timer_s)
    errlog = _ErrorLog()
    logging.getLogger("tickwire").addHandler(errlog)
    loop_errors: list[str] = []
    loop = asyncio.get_running_loop()
    old_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda lp, ctx: loop_errors.append(str(ctx.get("exception") or ctx.get("message"))))
    loaded_sim: LoadedSim | None = None
    if loaded:
        loaded_sim = LoadedSim(venue, sim_opts, secs=seconds + settle_s + 60)
        truth: Any = await loaded_sim.start()
    else:
        sim = Simulator(venues=[venue], seed=seed, options={venue: sim_opts})
        await sim.start()
        truth = LocalTruth(sim)
    specs = prof.books + prof.trades
    tmap = {s: truth_name(s) for s in specs}
    feed_opts: dict[str, Any] = dict(FEED_OPTIONS)
    if slow:
        feed_opts.update(max_buffer=1_100, read_ahead=200, max_pause_s=0.05)
    if prof.credentials:
        feed_opts["credentials"] = {venue: SIM_TEST_KEY}
    rss0 = rss_mb()
    t_start_ns = time.time_ns()
    watch: Watch | None = None
    checked_resynced = 0
    inexact: list[str] = []
    strict = [case.strict_books]
    try:
        async with tickwire.stream(*specs, endpoints=truth.endpoints, timers={venue: prof.timers}, **feed_opts) as feed:
            # slow: about 20 events a second, a fraction of what the streams bring
            watch = Watch(feed, prof.books, prof.trades, delay_s=0.05 if slow else 0.0, delay_every=1)
            consumer = asyncio.create_task(watch.run())

            async def check_books(why: str) -> None:
                want = []
                for spec, b in feed.books().items():
                    if spec not in tmap or not b.valid:
                        continue
                    want.append((spec, b.seq, levels_digest(b.bids, b.asks)))
                if not want:
                    return
                got = await truth.digests(venue, [(tmap[s][1], seq) for s, seq, _ in want])
                for (spec, seq, mine), theirs in zip(want, got):
                    row.checks += 1
                    if theirs is None:
                        row.unverifiable += 1
                    elif theirs == mine:
                        row.exact += 1
                    elif not strict[0]:
                        row.tolerated += 1
                    else:
                        row.inexact += 1
                        if len(inexact) < 5:
                            ref = await truth.book(venue, tmap[spec][1])
                            inexact.append(f"{spec} at seq {seq} ({why}) differs from the venue's book"
                                           f"{' (now at ' + str(ref['seq']) + ')' if ref else ''}")

            # warm up: every book valid
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                books = feed.books()
                if all(s in books and books[s].valid for s in prof.books) and sum(map(len, watch.trades.values())) >= 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            rss0 = rss_mb()
            t_faults_ns = time.time_ns()
            t0 = time.monotonic()
            actions = sorted(case.actions)
            next_check = t0
            while True:
                now = time.monotonic() - t0
                while actions and actions[0][0] <= now:
                    _, f = actions.pop(0)
                    await truth.inject(venue, f)
                if now >= seconds and not actions:
                    break
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + check_s
                    await check_books("periodic")
                while checked_resynced < len(watch.resynced_q):
                    checked_resynced += 1
                    await check_books("after Resynced")
                await asyncio.sleep(0.02)
            await truth.inject(venue, "clear")
            t_clear = time.monotonic()
            if not case.strict_books:  # from here on every book must be exact again
                await asyncio.sleep(0.5)
                strict[0] = True
            # settle: every book valid again, then a last comparison
            while time.monotonic() - t_clear < settle_s + 6:
                books = feed.books()
                if time.monotonic() - t_clear >= settle_s and all(s in books and books[s].valid for s in prof.books):
                    break
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + check_s
                    await check_books("periodic")
                await asyncio.sleep(0.05)
            books = feed.books()
            for s in prof.books:
                if s not in books or not books[s].valid:
                    row.not_resynced_at_end += 1
                    row.findings.append(f"{s}: not valid {time.monotonic() - t_clear:.1f}s after the faults stopped")
            await check_books("final")
            watch.refresh_conns()
            stats = feed.stats()
            stuck = [s for r in stats for s in r["stuck"]]
            row.overflow_dropped = feed.dropped()
            watch.delay_s = 0.0  # the slow consumer catches up: what waits is read
            t_drain = time.monotonic()
            while feed.pending() and time.monotonic() - t_drain < 10:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # let the last trades in flight arrive
            consumer.cancel()
            try:
                await consumer
            except asyncio.CancelledError:
                pass
            t_end_ns = time.time_ns()
    finally:
        faults = await truth.faults(venue)
        limits = await truth.limits(venue)
        trade_truth = {s: await truth.trades(venue, tmap[s][1]) for s in prof.trades}
        await truth.close()
        if loaded_sim is not None:
            loaded_sim.stop()
        logging.getLogger("tickwire").removeHandler(errlog)
        loop.set_exception_handler(old_handler)
    assert watch is not None
    gc.collect()
    row.rss_mb = rss_mb()
    row.overflow_late_s = watch.overflow_late_ns / 1e9
    if row.overflow_late_s > 1.0:
        row.findings.append(f"the consumer heard of dropped events {row.overflow_late_s:.1f}s after dropping began")
    if slow and not row.overflow_dropped:
        row.findings.append("the slow consumer never fell behind (nothing dropped): the part measured nothing")
    row.findings.extend(inexact)
    if stuck:
        row.findings.append(f"stuck at the end (feed.stats): {stuck}")
    row.raised = len(watch.raised) + len(loop_errors)
    for r in watch.raised + loop_errors:
        row.findings.append(f"raised out of the feed: {r}")
    for r in errlog.records[:5]:
        row.findings.append(f"error logged: {r}")
    if case.strict_books:  # (corruption no client can tell may make a plausible trade, or repeat one)
        for b in watch.bad_trades:
            row.findings.append(f"a corrupt trade delivered as valid: {b}")

    _score(row, case, prof, watch, faults, limits, trade_truth, tmap, t_faults_ns, t_start_ns, t_end_ns)
    row.findings.extend(_mem_finding(rss0, row.rss_mb))
    return row


def _mem_finding(before: float, after: float) -> list[str]:
    return [f"memory grew {after - before:.0f} MB during the case"] if after - before > 200 else []


def _score(row: Row, case: Case, prof: Profile, watch: Watch, faults: list[dict], limits: list[dict],
           trade_truth: dict[str, list[list]], tmap: dict[str, tuple[str, str]], t_faults_ns: int,
           t_start_ns: int, t_end_ns: int) -> None:
    venue = case.venue
    window_ns = int((prof.stall_timer_s + FEED_OPTIONS["backoff_cap_s"] + 3.0) * 1e9)
    by_name = {n: s for s, (_, n) in tmap.items()}
    gaps = watch.of(Gap)
    resyncs = watch.of(Resynced)
    discs = watch.of(Disconnected)
    row.gaps = len(gaps)
    row.venue_errors = len(watch.of(VenueError))
    garbling = any(f["kind"] == "garble" for f in faults)
    for _, e in watch.of(VenueError):
        if e.code == "internal":
            row.internal_errors += 1
            if not garbling:  # (a garbled frame may make a dialect raise: caught, reported, counted)
                row.findings.append(f"VenueError internal (a dialect raised): {e.msg[:160]}")

    def expect(kind: str) -> str:
        return case.expect.get(kind) or EXPECT_BY_VENUE.get((venue, kind)) or EXPECT.get(kind, "tolerate")

    # Which streams were already broken (a Gap not yet Resynced) at a given time
    def broken_at(spec: str, ns: int) -> bool:
        state = False
        for _, e in sorted([x for x in gaps + resyncs if x[1].stream == spec], key=lambda x: x[1].recv_ns):
            if e.recv_ns > ns:
                break
            state = isinstance(e, Gap)
        return state

    # 1. every fault occurrence: the reaction it needs
    case_faults = [f for f in faults if f["wall_ns"] >= t_faults_ns - 50_000_000]
    conn_faults = []
    for f in case_faults:
        kind = f["kind"]
        hit = f["conns"] or f["stream"] or kind.startswith("reject")
        if not hit:
            continue
        row.injected += 1
        exp = expect(kind)
        t = f["wall_ns"]
        if exp == "gap":
            spec = by_name.get(f["stream"] or "")
            if spec is None:
                continue
            row.expect_gap += 1
            row.expect_reaction += 1
            if broken_at(spec, t):  # already being resynced: covered by the open Gap
                row.detected += 1
                if any(e.stream == spec and e.recv_ns >= t for _, e in resyncs):
                    row.resynced += 1
                continue
            g = next((e for _, e in gaps if e.stream == spec and t - 50_000_000 <= e.recv_ns <= t + window_ns), None)
            if g is None:
                # a reconnect right after also takes the stream through a fresh snapshot
                d = next((e for _, e in discs if t - 50_000_000 <= e.recv_ns <= t + window_ns), None)
                if d is None:
                    row.findings.append(f"{kind} on {spec} (seq {f['seqs']}) at +{(t - t_faults_ns) / 1e9:.2f}s: "
                                        f"no Gap followed")
                    continue
                g = d
            row.detected += 1
            if any(e.stream == spec and e.recv_ns >= g.recv_ns for _, e in resyncs):
                row.resynced += 1
            else:
                row.findings.append(f"{kind} on {spec}: Gap at +{(g.recv_ns - t_faults_ns) / 1e9:.2f}s never Resynced")
        elif (kind in KILLS or (kind == "garble" and f["stream"] is None)) and f["conns"]:
            # a connection the fault may end (a stall also swallows the pong the client waits for;
            # a garbled pong, ack or snapshot may too)
            row.reconnects_expected += len(f["conns"])
        if exp == "reconnect" and f["conns"]:
            conn_faults.append(f)
            row.expect_reaction += 1
            d = next((e for _, e in discs if t - 50_000_000 <= e.recv_ns <= t + window_ns), None)
            if d is None:
                row.findings.append(f"{kind} at +{(t - t_faults_ns) / 1e9:.2f}s: no reconnect followed")
                continue
            row.detected += 1
            # the books that went through the reconnect came back
            later = [e for _, e in resyncs if e.recv_ns >= d.recv_ns]
            if prof.books and not later and not any(not broken_at(s, t_end_ns) for s in prof.books):
                row.findings.append(f"{kind} at +{(t - t_faults_ns) / 1e9:.2f}s: books never Resynced")
            else:
                row.resynced += 1

    # 2. every Gap and every Disconnected needs a cause
    explainers = [f for f in case_faults if expect(f["kind"]) != "silent"]
    open_gap: dict[str, bool] = defaultdict(bool)
    for _, e in sorted(gaps + resyncs, key=lambda x: x[0]):
        if isinstance(e, Resynced):
            open_gap[e.stream] = False
            continue
        spec_name = tmap.get(e.stream, ("", ""))[1]
        cause = open_gap[e.stream] and e.reason.startswith("still broken")
        if not cause:
            cause = any(e.recv_ns - window_ns <= f["wall_ns"] <= e.recv_ns + 50_000_000
                        and (f["stream"] is None or f["stream"] == spec_name) for f in explainers)
        if not cause and any(e.recv_ns - window_ns <= lim["wall_ns"] <= e.recv_ns + 50_000_000 for lim in limits):
            cause = True  # a ban: counted below
        if not cause and e.recv_ns < t_faults_ns:
            cause = False
        if not cause:
            row.unexplained += 1
            row.findings.append(f"Gap without an injected cause on {e.stream} at "
                                f"+{(e.recv_ns - t_faults_ns) / 1e9:.2f}s: {e.reason[:120]}")
        open_gap[e.stream] = True
    for _, e in discs:
        cause = any(e.recv_ns - window_ns <= f["wall_ns"] <= e.recv_ns + 50_000_000
                    for f in case_faults if f["kind"] not in ("malformed", "malformed-every", "no-ping")) or \
            any(e.recv_ns - window_ns <= lim["wall_ns"] <= e.recv_ns + 50_000_000 for lim in limits)
        if not cause:
            row.unexplained += 1
            row.findings.append(f"reconnect without an injected cause at +{(e.recv_ns - t_faults_ns) / 1e9:.2f}s: "
                                f"{e.reason[:120]}")

    # 3. bans: the simulator's own limits, during the run
    run_limits = [lim for lim in limits if lim["wall_ns"] >= t_start_ns]
    row.bans = len(run_limits)
    for lim in run_limits[:3]:
        row.findings.append(f"closed or refused by the venue's limit {lim['kind']}: {lim['detail']}")

    # 4. reconnects
    conns = Counter(e.conn for _, e in watch.of(Connected))
    row.reconnects = sum(n - 1 for n in conns.values())
    extra = row.reconnects - row.reconnects_expected
    # a refused handshake or a notice legitimately adds connections; a storm adds many
    allowed = 3 + row.reconnects_expected // 2
    if extra > allowed:
        row.findings.append(f"{row.reconnects} reconnects for {row.reconnects_expected} connections killed")

    # 5. silence
    sil = {s: watch.silence(s) for s in prof.books}
    for longest, unreported in sil.values():
        row.max_silence_s = max(row.max_silence_s, longest / 1e9)
        row.max_unreported_s = max(row.max_unreported_s, unreported / 1e9)
    slack = 0.35
    if row.max_unreported_s > prof.stall_timer_s + slack:
        worst = max(prof.books, key=lambda s: sil[s][1])
        row.findings.append(f"{worst}: silent for {row.max_unreported_s:.2f}s and nothing reported "
                            f"(stall timer {prof.stall_timer_s:g}s)")

    # 6. trades
    markers_by_conn: dict[str, list[int]] = defaultdict(list)
    overflow_idx = [i for i, _ in watch.of(Overflow)]
    reported_dropped = sum(e.dropped for _, e in watch.of(Overflow))
    for i, e in discs:
        markers_by_conn[e.conn].append(i)
    for i, e in watch.of(VenueError):  # "this frame could not be used": what it held is reported lost
        markers_by_conn[e.conn].append(i)
    lost_total = 0
    for spec in prof.trades:
        got = watch.trades.get(spec, [])
        row.trades += len(got)
        first: dict[str, int] = {}
        for idx, tid in got:
            if tid in first:
                if case.strict_books:  # (a corrupted frame may repeat a trade: tolerated in lenient cases)
                    row.duplicated += 1
            else:
                first[tid] = idx
        sent = trade_truth.get(spec, [])
        if not got or not sent:
            continue
        pos = {x[0]: k for k, x in enumerate(sent)}
        seen_pos = sorted(pos[t] for t in first if t in pos)
        unknown = [t for t in first if t not in pos]
        if unknown and not any(f["kind"] == "garble" and f["stream"] == tmap[spec][1] for f in case_faults):
            # (a garbled frame may carry a trade id the venue never used: the client cannot know)
            row.findings.append(f"{spec}: {len(unknown)} trades the venue never sent, e.g. {unknown[:2]}")
        if not seen_pos:
            continue
        markers = sorted(set(i for c in watch.conns_of.get(spec, ()) for i in markers_by_conn.get(c, ())) |
                         set(overflow_idx))
        lo, hi = seen_pos[0], seen_pos[-1]
        prev_idx = first[sent[lo][0]]
        prev_k = lo
        for k in range(lo + 1, hi + 1):
            tid = sent[k][0]
            if tid in first:
                cur_idx = first[tid]
                missing = [j for j in range(prev_k + 1, k) if sent[j][5] > 0 and sent[j][0] not in first]
                if missing:
                    a, b = min(prev_idx, cur_idx), max(prev_idx, cur_idx)
                    if any(a <= m <= b for m in markers):
                        row.lost_in_gaps += len(missing)
                    else:
                        lost_total += len(missing)
                        if sum(1 for x in row.findings if "lost outside" in x) < 3:
                            row.findings.append(f"{spec}: {len(missing)} trades lost outside any reported gap, "
                                                f"e.g. {sent[missing[0]][0]}")
                prev_idx, prev_k = cur_idx, k
    if lost_total and reported_dropped >= lost_total:
        # dropped by the bounded buffer and reported by Overflow events
        row.lost_in_gaps += lost_total
        row.findings = [x for x in row.findings if "lost outside" not in x]
        lost_total = 0
    row.lost = lost_total


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

COLUMNS = ("venue", "fault", "injected", "detected", "resynced", "exact", "lost", "duplicated", "bans",
           "max silence", "reconnects")


def _cells(r: Row) -> list[str]:
    det = f"{r.detected}/{r.expect_reaction}" if r.expect_reaction else "–"
    res = f"{r.resynced}/{r.detected}" if r.expect_reaction else "–"
    exact = f"{r.exact}/{r.checks - r.unverifiable - r.tolerated}" if r.checks else "–"
    if r.tolerated:
        exact += f" ({r.tolerated} differed while undetectable corruption lasted)"
    lost = f"{r.lost}" + (f" (+{r.lost_in_gaps} in gaps)" if r.lost_in_gaps else "")
    sil = (f"{r.max_silence_s:.2f}s ({r.max_unreported_s:.2f}s unreported)" if r.max_silence_s
           else "–")
    rec = f"{r.reconnects}/{r.reconnects_expected}"
    mode = r.mode + (f": {r.overflow_dropped:,} dropped, heard of after {r.overflow_late_s * 1000:.0f} ms"
                     if r.overflow_dropped else "")
    label = r.case + (f" [{mode}]" if mode else "")
    return [r.venue, label, str(r.injected), det, res, exact, lost, str(r.duplicated), str(r.bans), sil, rec]


def table(rows: list[Row]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    sep = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"
    lines = [head, sep]
    for r in rows:
        lines.append("| " + " | ".join(_cells(r)) + " |")
    return "\n".join(lines)


def totals(rows: list[Row]) -> dict[str, Any]:
    t: dict[str, Any] = {
        "cases": len(rows),
        "injected": sum(r.injected for r in rows),
        "sequence breaks": sum(r.expect_gap for r in rows),
        "reactions needed": sum(r.expect_reaction for r in rows),
        "detected": sum(r.detected for r in rows),
        "resynced": sum(r.resynced for r in rows),
        "book comparisons": sum(r.checks for r in rows),
        "exact": sum(r.exact for r in rows),
        "inexact": sum(r.inexact for r in rows),
        "unverifiable": sum(r.unverifiable for r in rows),
        "trades delivered": sum(r.trades for r in rows),
        "trades lost": sum(r.lost for r in rows),
        "trades lost in reported gaps": sum(r.lost_in_gaps for r in rows),
        "duplicated": sum(r.duplicated for r in rows),
        "bans": sum(r.bans for r in rows),
        "gaps": sum(r.gaps for r in rows),
        "unexplained gaps/reconnects": sum(r.unexplained for r in rows),
        "undetected": sum(r.expect_reaction - r.detected for r in rows),
        "reconnects": sum(r.reconnects for r in rows),
        "connections killed by faults": sum(r.reconnects_expected for r in rows),
        "max unreported silence s": round(max((r.max_unreported_s for r in rows), default=0.0), 2),
        "overflow dropped": sum(r.overflow_dropped for r in rows),
        "raised": sum(r.raised for r in rows),
        "peak rss MB": round(max((r.rss_mb for r in rows), default=0.0)),
        "rss first MB": round(rows[0].rss_mb) if rows else 0,
        "rss last MB": round(rows[-1].rss_mb) if rows else 0,
        "reconnects per minute": round(sum(r.reconnects for r in rows) / max(1e-9, sum(r.seconds for r in rows) / 60), 1),
        "max reconnects per minute": round(max((r.reconnects / (r.seconds / 60) for r in rows if r.seconds), default=0), 1),
        "internal errors (garbling)": sum(r.internal_errors for r in rows),
        "findings": sum(len(r.findings) for r in rows),
    }
    return t


def totals_text(t: dict[str, Any]) -> str:
    return (f"{t['cases']} cases, {t['injected']} faults injected ({t['sequence breaks']} sequence breaks, "
            f"{t['reactions needed']} needing a reaction: {t['detected']} detected, {t['undetected']} undetected, "
            f"{t['resynced']} resynced); {t['book comparisons']} book comparisons with the truth: {t['exact']} exact, "
            f"{t['inexact']} inexact, {t['unverifiable']} unverifiable; {t['trades delivered']} trades delivered, "
            f"{t['trades lost']} lost outside a reported gap ({t['trades lost in reported gaps']} inside), "
            f"{t['duplicated']} duplicated; {t['bans']} bans; {t['unexplained gaps/reconnects']} gaps or reconnects "
            f"without a cause; {t['reconnects']} reconnects for {t['connections killed by faults']} connections "
            f"killed ({t['reconnects per minute']} per minute of faults, at most {t['max reconnects per minute']} in a "
            f"case); longest unreported silence {t['max unreported silence s']} s; {t['raised']} raised; RSS "
            f"{t['rss first MB']} MB after the first case, {t['rss last MB']} MB after the last (peak "
            f"{t['peak rss MB']} MB); {t['findings']} findings.")


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def select_cases(venues: list[str], seconds: float, names: list[str] | None) -> list[Case]:
    out = []
    for v in venues:
        for c in cases_for(v, seconds):
            if names is None or c.name in names:
                out.append(c)
    return out


LOADED_CASES = {"bybit": ["skip-u", "drop-every"], "okx": ["skip-seq", "notice"], "bge": ["reorder-seq", "drop"],
                "okxdex": ["drop"]}
SLOW_CASES = {"bybit": ["skip-u", "drop"], "okx": ["skip-seq", "drop"], "bge": ["reorder-seq"], "okxdex": ["drop"]}


async def run_all(venues: list[str], seconds: float, names: list[str] | None = None, loaded: bool = True,
                  slow: bool = True, progress: Callable[[str], None] | None = None, parallel: int = 1,
                  settle_s: float = 2.5) -> list[Row]:
    """Every selected case, then the loaded and slow-consumer parts."""
    jobs: list[tuple[Case, dict[str, Any]]] = [(c, {}) for c in select_cases(venues, seconds, names)]
    if loaded:
        for v in venues:
            for c in cases_for(v, seconds):
                if c.name in LOADED_CASES.get(v, []) and (names is None or c.name in names):
                    jobs.append((c, {"loaded": True, "mode": "sim under CPU load"}))
    if slow:
        for v in venues:
            for c in cases_for(v, seconds):
                if c.name in SLOW_CASES.get(v, []) and (names is None or c.name in names):
                    jobs.append((c, {"slow": True, "mode": "slow consumer"}))
    rows: list[Row | None] = [None] * len(jobs)
    sem = asyncio.Semaphore(parallel)

    async def one(i: int, case: Case, kw: dict[str, Any]) -> None:
        # the loaded part pins a busy loop: run it alone
        async with sem:
            t = time.monotonic()
            r = await run_case(case, seconds=seconds, settle_s=settle_s, **kw)
            rows[i] = r
            if progress is not None:
                progress(f"{r.venue:7} {r.case:20} {r.mode:20} {time.monotonic() - t:5.1f}s  "
                         f"injected {r.injected:3}  findings {len(r.findings)}"
                         + ("" if r.ok() else "\n    " + "\n    ".join(r.findings[:6])))

    plain = [(i, c, kw) for i, (c, kw) in enumerate(jobs) if not kw.get("loaded")]
    await asyncio.gather(*(one(i, c, kw) for i, c, kw in plain))
    for i, (c, kw) in enumerate(jobs):
        if kw.get("loaded"):
            await one(i, c, kw)
    return [r for r in rows if r is not None]


def section(rows: list[Row], elapsed: float, command: str, seconds: float) -> str:
    t = totals(rows)
    findings = [f"- {r.venue} {r.case}{' [' + r.mode + ']' if r.mode else ''}: {x}" for r in rows for x in r.findings]
    from .results import tickwire_version

    body = [
        "## Chaos: every venue under every fault, against the simulator's truth",
        "",
        f"Run at {time.strftime('%Y-%m-%d %H:%M:%S %Z')} with `{command}` ({elapsed:.0f} s; tickwire "
        f"{tickwire_version()}). Each case: a fresh simulator and feed, books and trades on several symbols, "
        f"{seconds:g} s of faults with compressed timers (pings every 0.5 s, pong deadline 0.5 s, backoff "
        f"0.05..1 s), then `clear` and a settle; checks against `sim.truth` (see bench/README.md).",
        "",
        "Columns: **injected** fault occurrences that hit a connection or a stream; **detected** occurrences "
        "followed by the reaction they need (a Gap on the broken stream, or a reconnect) / those needing one "
        "(– : none needed: the fault must be absorbed); **resynced** followed by Resynced; **exact** comparisons "
        "of a valid maintained book with the venue's book at the same sequence that matched / made; **lost** "
        "trades the simulator wrote to our sockets that never arrived outside a reported gap (inside one in "
        "parentheses); **bans** refusals or closes by the simulator's own limits; **max silence** the longest "
        "interval without an update on a book stream (and the longest that nothing reported); **reconnects** "
        "made / connections the faults killed.",
        "",
        table(rows),
        "",
        "**Totals:** " + totals_text(t),
        "",
    ]
    if findings:
        body += ["**Findings:**", ""] + findings[:60] + [""]
    else:
        body += ["**Findings:** none.", ""]
    return "\n".join(body)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("chaos")
    g.add_argument("--venues", default="bybit,okx,bge,okxdex", help="chaos and fuzz: venues (comma-separated)")
    g.add_argument("--cases", default=None, help="chaos: case names (comma-separated; default: all)")
    g.add_argument("--fault-seconds", type=float, default=None,
                   help="chaos: seconds of faults per case (default 8; --quick 3)")
    g.add_argument("--parallel", type=int, default=2, help="chaos: cases run at once (loaded ones alone)")
    g.add_argument("--no-loaded", action="store_true", help="chaos: skip the part with the simulator under load")
    g.add_argument("--no-slow", action="store_true", help="chaos: skip the slow-consumer part")


def run(args: argparse.Namespace, ctx: dict) -> tuple[str, str]:
    """The bench suite entry: (markdown section, summary)."""
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    names = [c.strip() for c in args.cases.split(",")] if getattr(args, "cases", None) else None
    seconds = args.fault_seconds or (3.0 if args.quick else 8.0)
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = asyncio.run(run_all(venues, seconds, names, loaded=not args.no_loaded, slow=not args.no_slow,
                               progress=progress, parallel=max(1, args.parallel)))
    elapsed = time.monotonic() - t0
    print(table(rows))
    t = totals(rows)
    return section(rows, elapsed, ctx.get("command", "python -m bench chaos"), seconds), "Totals: " + totals_text(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    add_arguments(ap)
    args = ap.parse_args(argv)
    _, summary = run(args, {})
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
