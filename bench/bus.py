"""Scale-out numbers (not tests): ``python -m bench.bus [--seconds S] [--events N]``.

1. **publish cost** — CPU per event the collector adds on top of the feed: the events of a
   simulator run (Bybit and OKX books and trades) are replayed through ``Collector.run`` from an
   in-memory feed into a real local nats-server (JetStream, file store) until every message is
   confirmed; this process's CPU (user+sys, ``time.process_time``) divided by the events. Also the
   cost per message, and the same with one message per event (what batching per frame saves).
2. **latency** — frame arrival at a collector (``recv_ns``, stamped by the feed's reader) to the
   ``async for`` loop of a bus consumer in another process (``tickwire.bus.subscribe``):
   p50/p90/p99/max over every event of a simulator run; collector and consumer are separate
   processes on the same machine (same clock).
3. **throughput** — 2 redundant collectors + 1 bus recorder + 1 tail, each its own process, on a
   fast simulator: events/s through the bus, messages stored vs published (dedup), and the CPU
   % of each process.

Prints markdown; the figures quoted in ``docs/scale-out.md`` come from this script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tickwire
from tickwire.bus.collector import Collector
from tickwire.bus.server import LocalBus

SPECS = ["bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT", "okx:books:BTC-USDT",
         "okx:trades:BTC-USDT", "bybit.linear:orderbook.50:ETHUSDT", "bybit.linear:publicTrade:ETHUSDT"]
FAST = {"bybit": {"speed": 10}, "okx": {"speed": 10}}


class _ListFeed:
    """Just what ``Collector.run`` uses of a feed, over a list of events (no sockets)."""

    def __init__(self, events: list) -> None:
        self.events = events
        self.i = 0

    def pending(self) -> int:
        return len(self.events) - self.i

    def __aiter__(self) -> "_ListFeed":
        return self

    async def __anext__(self) -> Any:
        if self.i >= len(self.events):
            raise StopAsyncIteration
        ev = self.events[self.i]
        self.i += 1
        if self.i % 512 == 0:
            await asyncio.sleep(0)  # let confirmations in, as a live feed's reader pauses would
        return ev

    def stats(self) -> list:
        return []


async def _sample_events(seconds: float) -> list:
    from tickwire.sim import Simulator

    out = []
    async with Simulator(venues=["bybit", "okx"], seed=1, options=FAST) as sim:
        async with tickwire.stream(*SPECS, endpoints=sim.endpoints) as feed:
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            async for ev in feed:
                if not ev.is_status:
                    out.append(ev)
                if loop.time() > end:
                    break
    return out


def _distinct(events: list, rounds: int) -> list:
    """``rounds`` copies of the sample, each with its own venue content (so ids differ)."""
    import msgspec

    out = []
    for r in range(rounds):
        for ev in events:
            kw: dict = {"recv_ns": ev.recv_ns + r}
            if hasattr(ev, "seq") and ev.seq:
                kw["seq"] = ev.seq + r * 10_000_000
            if getattr(ev, "trade_id", ""):
                kw["trade_id"] = f"{ev.trade_id}.{r}"
            kw["exch_ns"] = ev.exch_ns + r
            out.append(msgspec.structs.replace(ev, **kw))
    return out


async def publish_cost(url: str, events: list, per_event: bool = False, batch: int = 1) -> dict:
    c = Collector(url, [], name="bench", snapshot_interval_s=0, batch_events=batch)
    from tickwire.bus.base import connect_bus
    from tickwire.bus.collector import Publisher

    c.bus = connect_bus(url)
    c.publisher = Publisher(c.bus, report=lambda st: None, max_buffer_bytes=1 << 40)
    await c.bus.connect()
    await c.bus.ensure_streams(c.streams.specs(1))
    c._streams_ready = True
    c.publisher.ready = True
    if per_event:  # one message per event: give every event its own frame
        base = events[0].recv_ns
        for i, ev in enumerate(events):
            ev.recv_ns = base + i
    c.feed = _ListFeed(events)
    t0, w0 = time.process_time(), time.perf_counter()
    await c.run()
    await c.publisher.drain(120)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    st = c.publisher.stats
    await c.bus.close()
    return {"events": len(events), "messages": c.stats.messages, "cpu_us_event": cpu / len(events) * 1e6,
            "cpu_us_msg": cpu / max(1, c.stats.messages) * 1e6, "wall_s": wall, "confirmed": st.published}


def _consume_cpu(events: list) -> float:
    """CPU per event of just consuming the list (the loop the collector replaces)."""
    async def loop() -> None:
        async for _ in _ListFeed(events):
            pass
    t0 = time.process_time()
    asyncio.run(loop())
    return (time.process_time() - t0) / len(events) * 1e6


LATENCY_CONSUMER = """
import asyncio, json, sys, time
from tickwire.bus.consumer import subscribe
async def main():
    lat = []
    async def run():
        async for ev in subscribe(sys.argv[1], "md.>"):
            if not ev.is_status:
                lat.append(time.time_ns() - ev.recv_ns)
    try:
        await asyncio.wait_for(run(), float(sys.argv[2]))
    except asyncio.TimeoutError:
        pass
    print(json.dumps(lat))
asyncio.run(main())
"""


def _pcts(xs: list[int]) -> dict:
    xs = sorted(xs)
    n = len(xs)
    q = lambda p: xs[min(n - 1, int(p * n))] / 1e3  # noqa: E731
    return {"n": n, "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": xs[-1] / 1e3}


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _sim_proc(tmp: Path) -> tuple[subprocess.Popen, dict]:
    p = subprocess.Popen([sys.executable, "-m", "tickwire.cli", "sim", "--venues", "bybit,okx", "--seed", "2",
                          "--option", "bybit.speed=10", "--option", "okx.speed=10"], stdout=subprocess.PIPE,
                         stderr=open(tmp / "sim.log", "w"), text=True)
    ready = json.loads(p.stdout.readline())
    return p, {v: d["url"] for v, d in ready["venues"].items()}


def _endpoints(eps: dict) -> list[str]:
    return [a for v, u in eps.items() for a in ("--endpoint", f"{v}={u}")]


def latency(url: str, seconds: float, tmp: Path) -> dict:
    sim, eps = _sim_proc(tmp)
    col = subprocess.Popen([sys.executable, "-m", "tickwire.cli", "collect", "--bus", url, "--name", "lat",
                            *_endpoints(eps), *SPECS], stderr=open(tmp / "lat.log", "w"))
    try:
        time.sleep(1.0)
        out = subprocess.run([sys.executable, "-c", LATENCY_CONSUMER, url, str(seconds)], capture_output=True,
                             text=True, timeout=seconds + 30)
        lat = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for p in (col, sim):
            p.terminate()
            p.wait(20)
    return _pcts(lat[len(lat) // 10:])  # the first tenth: warm-up


def throughput(url: str, seconds: float, tmp: Path) -> dict:
    sim, eps = _sim_proc(tmp)
    tw = [sys.executable, "-m", "tickwire.cli"]
    procs = {
        "collector a": subprocess.Popen([*tw, "collect", "--bus", url, "--name", "a", "--raw", *_endpoints(eps), *SPECS],
                                        stderr=open(tmp / "a.log", "w")),
        "collector b": subprocess.Popen([*tw, "collect", "--bus", url, "--name", "b", "--raw", *_endpoints(eps), *SPECS],
                                        stderr=open(tmp / "b.log", "w")),
        "bus recorder": subprocess.Popen([*tw, "record", "--bus", url, "--durable", "bench", "--out",
                                          str(tmp / "data")], stderr=open(tmp / "rec.log", "w")),
        "tail": subprocess.Popen([*tw, "tail", "--bus", url, "md.>"], stdout=open(tmp / "tail.out", "w"),
                                 stderr=open(tmp / "tail.log", "w")),
    }
    time.sleep(1.5)
    cpu0 = {k: _cpu_of(p.pid) for k, p in procs.items()}
    sim_cpu0 = _cpu_of(sim.pid)
    lines0 = sum(1 for _ in open(tmp / "tail.out"))
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    cpu = {k: (_cpu_of(p.pid) - cpu0[k]) / dt * 100 for k, p in procs.items()}
    sim_cpu = (_cpu_of(sim.pid) - sim_cpu0) / dt * 100
    lines = sum(1 for _ in open(tmp / "tail.out")) - lines0
    for p in procs.values():
        p.terminate()
    for p in procs.values():
        p.wait(30)
    sim.terminate()
    sim.wait(20)
    stats = [ln for k in ("a", "b") for ln in open(tmp / f"{k}.log") if ln.startswith("collector ")]
    rec = [ln for ln in open(tmp / "rec.log") if ln.startswith("recorded")]
    return {"seconds": dt, "tail_events_per_s": lines / dt, "cpu": cpu, "sim_cpu": sim_cpu, "collectors": stats,
            "recorder": rec}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bus", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="latency and throughput runs")
    ap.add_argument("--sample", type=float, default=3.0, help="seconds of simulator events for the publish cost")
    ap.add_argument("--rounds", type=int, default=10, help="copies of the sample published")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tickwire-bench-bus-"))
    print(f"# bus benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')} UTC, {os.cpu_count()} cores)\n")
    sample = asyncio.run(_sample_events(args.sample))
    with LocalBus(1, dir=tmp / "bus") as bus:
        events = _distinct(sample, args.rounds)
        floor = _consume_cpu(events)
        r = asyncio.run(publish_cost(bus.url, events))
        per_event = asyncio.run(publish_cost(bus.url, _distinct(sample[: len(sample) // 2], 2), per_event=True))
        batched = asyncio.run(publish_cost(bus.url, _distinct(sample, args.rounds + 10)[len(events):], batch=32))
        print("## publish cost (collector side, CPU of this process)\n")
        print("| batching | events | messages | events/msg | CPU µs/event | CPU µs/msg | confirmed |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, x in (("one message per frame and stream (default)", r), ("one message per event", per_event),
                        ("--batch 32 (a backlog: up to 32 deltas/trades per message)", batched)):
            print(f"| {name} | {x['events']:,} | {x['messages']:,} | {x['events'] / x['messages']:.2f} | "
                  f"{x['cpu_us_event'] - floor:.2f} | {x['cpu_us_msg']:.2f} | {x['confirmed']:,} |")
        print(f"\n(consuming the same events without publishing: {floor:.2f} µs/event, subtracted)\n")
    with LocalBus(1, dir=tmp / "bus2") as bus:
        lat = latency(bus.url, args.seconds, tmp)
        print("## latency: frame arrival at the collector -> a bus consumer's loop (other process)\n")
        print("| events | p50 µs | p90 µs | p99 µs | max µs |\n|---:|---:|---:|---:|---:|")
        print(f"| {lat['n']:,} | {lat['p50']:.0f} | {lat['p90']:.0f} | {lat['p99']:.0f} | {lat['max']:.0f} |\n")
    with LocalBus(1, dir=tmp / "bus3") as bus:
        th = throughput(bus.url, args.seconds, tmp)
        print("## 2 collectors + 1 bus recorder + 1 tail\n")
        print(f"tail: {th['tail_events_per_s']:,.0f} events/s over {th['seconds']:.1f} s; simulator "
              f"{th['sim_cpu']:.0f}% CPU\n")
        print("| process | CPU % |\n|---|---:|")
        for k, v in th["cpu"].items():
            print(f"| {k} | {v:.0f} |")
        print()
        for ln in th["collectors"] + th["recorder"]:
            print("    " + ln.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
