"""Venue rate rules hold when the venue's clock disagrees with ours (bug: 300 BG Exchange
streams were closed for "too many messages" again and again).

A venue counts our messages on *its* side, after network and scheduling jitter. These tests
run the simulator as its own process pinned to one core with a busy loop beside it, so its
event loop reads our frames late and in clumps, as a loaded venue gateway would.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

import tickwire
from tickwire.model import Disconnected, Ticker, VenueError
from tickwire.net.ratelimit import Pacer

pytest.importorskip("tickwire.sim")

_BUSY = "import time\nend = time.monotonic() + {secs}\nwhile time.monotonic() < end:\n    pass\n"


class LoadedSim:
    """``tickwire sim`` in a subprocess on CPU 0 with a busy loop pinned beside it."""

    def __init__(self, venues: str, options: list[str], secs: float = 90.0) -> None:
        self.venues, self.options, self.secs = venues, options, secs

    def __enter__(self) -> dict:
        cpu = {0} if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1 else None
        self.busy = subprocess.Popen([sys.executable, "-c", _BUSY.format(secs=self.secs)])
        args = [sys.executable, "-c", "from tickwire.cli import main; main()", "sim", "--venues", self.venues,
                "--port", "0"]
        for o in self.options:
            args += ["--option", o]
        self.sim = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if cpu:
            os.sched_setaffinity(self.busy.pid, cpu)
            os.sched_setaffinity(self.sim.pid, cpu)
        line = self.sim.stdout.readline()
        assert line, "simulator did not start"
        ready = json.loads(line)
        return {v: info["url"] for v, info in ready["venues"].items()}

    def __exit__(self, *exc) -> None:
        for p in (self.sim, self.busy):
            p.kill()
            p.wait(10)


async def test_300_bge_streams_are_never_rate_closed_with_the_venue_under_load():
    products = [f"X{i:03d}_USDT" for i in range(1, 301)]
    with LoadedSim("bge", ["bge.ticker_interval_ms=500"]) as endpoints:
        async with tickwire.stream(*[f"bge:ticker:{p}" for p in products], endpoints={"bge": endpoints["bge"]}) as feed:
            seen: set[str] = set()
            bad = []
            t0 = time.monotonic()
            async with asyncio.timeout(60):
                async for ev in feed:
                    if isinstance(ev, Ticker):
                        seen.add(ev.symbol)
                        if len(seen) == 300:
                            break
                    elif isinstance(ev, (Disconnected, VenueError)):
                        bad.append(ev)
            took = time.monotonic() - t0
    assert not bad, bad[:3]
    # even pacing at 40/s (the default 20 % margin of 50/s): about 7.5 s for 300 requests
    assert took > 6.0


def test_pacer_spreads_requests_evenly_and_saves_no_credit_after_a_pause():
    p = Pacer(frame_windows=[(50, 1.0)], margin=0.2)
    assert p.spacing_ns == 25_000_000  # 40 a second, one every 25 ms
    now = 0
    sent = []
    for _ in range(100):
        wait = p.wait_ns(now)
        now += max(0, wait)
        p.record(now)
        p.sent_any(now)
        sent.append(now)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert min(gaps) >= 25_000_000
    # a stalled loop for 3 s: afterwards still one at a time, never a burst
    now += 3_000_000_000
    assert p.wait_ns(now) == 0
    p.sent_any(now)
    assert p.wait_ns(now) == 25_000_000
    # in any 1 s of our clock at most 40: squeezed by 20 % on the venue's side still under 50
    for i, t in enumerate(sent):
        assert sum(1 for u in sent if t <= u < t + 1_250_000_000) <= 50


def test_pacer_margin_is_validated_and_long_windows_keep_their_count():
    with pytest.raises(ValueError, match="margin"):
        Pacer(request_windows=[(3, 1.0)], margin=1.5)
    p = Pacer(request_windows=[(3, 1.0), (480, 3600.0)], margin=0.2)
    assert p.spacing_ns == int(1 / 2.4 * 1e9)        # OKX connects: 2.4 a second, evenly
    assert p.requests[1].count == 480                # an hour's budget is not shrunk by jitter


async def test_a_rate_close_makes_the_connection_come_back_slower():
    from tickwire.sim import Simulator

    # a venue that allows 20 messages a second while we believe it allows 50: it closes us,
    # and we must come back at a slower pace until it stops closing us
    products = [f"X{i:03d}_USDT" for i in range(1, 101)]
    opts = {"bge": {"rate_limit_msgs": 20, "ticker_interval_ms": 500}}
    async with Simulator(venues=["bge"], seed=9, options=opts) as sim:
        async with tickwire.stream(*[f"bge:ticker:{p}" for p in products], endpoints=sim.endpoints,
                                   backoff_base_s=0.05) as feed:
            seen: set[str] = set()
            closes = 0
            async with asyncio.timeout(60):
                async for ev in feed:
                    if isinstance(ev, Ticker):
                        seen.add(ev.symbol)
                        if len(seen) == 100:
                            break
                    elif isinstance(ev, Disconnected):
                        closes += 1
                        assert ev.reconnect_in_s is not None and ev.reconnect_in_s >= 1.0
            rate_closes = sim.venue("bge").counters["rate_closes"]
    assert 1 <= closes <= 3 and rate_closes == closes
