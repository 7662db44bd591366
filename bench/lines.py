"""Lines: delivery latency with one line vs two redundant lines under injected jitter, and the CPU
cost of redundancy per message (numbers, not tests).

    .venv/bin/python -m bench.lines                    # ~1 min; prints a markdown table
    .venv/bin/python -m bench.lines --seconds 5 --rate 1000 --latency-ms 2 --jitter-ms 10 --out /tmp/l.md

Setup (loopback; the server side pinned to one core, each client in a fresh process on the other):

* a paced Bybit ``orderbook.50`` server (``bench.streams.bybit_orderbook`` frames): every client
  connection that subscribes gets the snapshot; once ``expect`` connections have subscribed, the
  deltas go out at ``rate`` per second, the same frame to every connection, and the send time of
  each (``time.time_ns()`` just before the write) goes into shared memory;
* in front of it, in the same process, two network lines (``tickwire.sim.framework.netem.Line``):
  each relays every byte after ``latency_ms`` + uniform ``[0, jitter_ms]`` (independent draws per
  line, a connection's bytes never reordered, as over TCP);
* the client is ``tickwire.stream`` over one line, or over both with ``redundancy=2`` (each delta
  taken from whichever line delivers it first). **Delivery latency** = the consumer's
  ``time.time_ns()`` when ``async for`` hands it the delta minus the server's send time: network
  (the line), tickwire and the wait in the queue. **CPU µs per message**: the client process's
  user+sys time from the first to the last delta over the deltas delivered (with two lines each
  message arrives, is decoded and is joined twice).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
from multiprocessing import shared_memory
from typing import Any

from .common import cpu_seconds, percentiles, pin_harness, run_func
from .server import ChildProcess, _new_loop, _pin
from .streams import bybit_control_replies, bybit_orderbook

SPEC = "bybit.linear:orderbook.50:BTCUSDT"


# ----------------------------------------------------------------------------------- server side

def _attach(name: str, own_tracker: bool) -> shared_memory.SharedMemory:
    """Open the harness's shared memory; a process with its own resource tracker (not forked)
    must not adopt it (the harness unlinks it)."""
    shm = shared_memory.SharedMemory(name=name)
    if own_tracker:
        from multiprocessing import resource_tracker

        try:
            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        except Exception:
            pass
    return shm


def _serve(n: int, rate: float, expect: int, lines: list[tuple[float, float]], shm_name: str, cpu: int | None,
           conn: Any) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    from tickwire.sim.framework.netem import Line

    _pin(cpu)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    stream = bybit_orderbook(n)
    frames = stream.frames
    shm = _attach(shm_name, own_tracker=False)
    sent = shm.buf.cast("q")
    subscribers: list[Any] = []
    state = {"started": False}

    def start() -> None:
        t0 = loop.time() + 0.3
        i = 1

        def tick() -> None:
            nonlocal i
            now = loop.time()
            while i < len(frames) and t0 + (i - 1) / rate <= now:
                sent[i] = time.time_ns()
                data = frames[i]
                for tr in subscribers:
                    if not tr.is_disconnected:
                        tr.send(WSMsgType.TEXT, data)
                i += 1
            if i < len(frames):
                loop.call_at(max(now + 0.0002, t0 + (i - 1) / rate), tick)

        loop.call_at(t0, tick)

    class Conn(WSListener):
        def on_ws_connected(self, transport: Any) -> None:
            self.t = transport

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                return
            replies, sub = bybit_control_replies(frame.get_payload_as_bytes(), "/v5/public/linear", "bench")
            for r in replies:
                transport.send(WSMsgType.TEXT, r)
            if sub:
                transport.send(WSMsgType.TEXT, frames[0])
                subscribers.append(transport)
                if len(subscribers) >= expect and not state["started"]:
                    state["started"] = True
                    start()

    async def main() -> None:
        servers = [await ws_create_server(lambda r: Conn(), "127.0.0.1", 0) for _ in range(2)]
        ports = [srv.sockets[0].getsockname()[1] for srv in servers]
        if lines:
            relays = []
            for k, (lat, jit) in enumerate(lines):
                relays.append(await Line("127.0.0.1", ports[0], latency_ms=lat, jitter_ms=jit, seed=k).start())
            conn.send([r.url for r in relays])
        else:  # direct: two listening ports of the same server (two hosts, no network in between)
            conn.send([f"ws://127.0.0.1:{p}" for p in ports])
        conn.close()
        await asyncio.Event().wait()

    loop.run_until_complete(main())


class LineServer(ChildProcess):
    """The paced server and its lines in a child process; ``urls`` of the lines; ``sent`` times."""

    def __init__(self, n: int, rate: float, expect: int, lines: list[tuple[float, float]], cpu: int | None) -> None:
        self.args = (n, rate, expect, lines)
        self.cpu = cpu
        self.shm = shared_memory.SharedMemory(create=True, size=8 * (n + 1))
        self.urls: list[str] = []

    def __enter__(self) -> "LineServer":
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_serve, args=(*self.args, self.shm.name, self.cpu, child), daemon=True,
                                name="bench-lines-server")
        self.proc.start()
        child.close()
        if not parent.poll(30):
            self.close()
            raise RuntimeError("lines server did not start")
        self.urls = parent.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.shm.close()
        self.shm.unlink()


# ----------------------------------------------------------------------------------- client side

def client(urls: list[str], redundancy: int, n: int, shm_name: str, timeout_s: float) -> dict[str, Any]:
    """One run in this (fresh, pinned) process: latencies and CPU per delivered delta."""
    import tickwire
    from tickwire.model import BookUpdate

    shm = _attach(shm_name, own_tracker=True)
    sent = shm.buf.cast("q")
    endpoints = {"bybit": urls if len(urls) > 1 else urls[0]}
    lat: list[int] = []
    out: dict[str, Any] = {}

    async def run() -> None:
        u0 = None
        cpu0 = t_first = 0.0
        async with tickwire.stream(SPEC, endpoints=endpoints, redundancy=redundancy,
                                   line_policy={"probe_pings": 2}) as feed:
            async with asyncio.timeout(timeout_s):
                async for ev in feed:
                    if type(ev) is not BookUpdate:
                        continue
                    if ev.snapshot:
                        u0 = ev.seq if u0 is None else u0
                        continue
                    now = time.time_ns()
                    i = ev.seq - u0
                    if not lat:
                        cpu0, t_first = cpu_seconds(), time.monotonic()
                    lat.append(now - sent[i])
                    if i >= n:
                        break
            out["cpu_s"] = cpu_seconds() - cpu0
            out["wall_s"] = time.monotonic() - t_first
            out["redundancy_stats"] = feed.redundancy_stats()

    from bench.common import new_loop

    loop = new_loop()
    loop.run_until_complete(run())
    p = percentiles(lat, (50, 90, 99, 99.9))
    out.update({"n": len(lat), "lat_us": {k: (v / 1e3 if k != "n" else v) for k, v in p.items()}})
    del sent
    shm.close()
    return out


# ----------------------------------------------------------------------------------- harness

def measure(label: str, lines: list[tuple[float, float]], use: int, redundancy: int, n: int, rate: float,
            cpus: tuple[int | None, int | None]) -> dict[str, Any]:
    expect = redundancy
    with LineServer(n, rate, expect, lines, cpus[0]) as srv:
        urls = srv.urls[:use]
        res = run_func("bench.lines:client", {"urls": urls, "redundancy": redundancy, "n": n,
                                              "shm_name": srv.shm.name, "timeout_s": n / rate + 30},
                       cpus[1], timeout=n / rate + 60)
    res["label"] = label
    return res


def table(rows: list[dict[str, Any]], base_cpu: float | None) -> str:
    out = ["| run | lines | deltas | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | CPU µs/msg | vs one line |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("status") != "ok":
            out.append(f"| {r['label']} | | | | | | | | error: {r.get('reason', '?')} | |")
            continue
        q = r["lat_us"]
        cpu = r["cpu_s"] / max(1, r["n"]) * 1e6
        rel = f"{cpu / base_cpu:.2f}×" if base_cpu else ""
        out.append(f"| {r['label']} | {r['lines']} | {r['n']:,} | {q['p50'] / 1e3:.2f} | {q['p90'] / 1e3:.2f} | "
                   f"{q['p99'] / 1e3:.2f} | {q['p99.9'] / 1e3:.2f} | {q['max'] / 1e3:.2f} | {cpu:.2f} | {rel} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.lines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="paced seconds per run")
    ap.add_argument("--rate", type=float, default=1000.0, help="deltas per second")
    ap.add_argument("--latency-ms", type=float, default=2.0, help="one-way delay of each line")
    ap.add_argument("--jitter-ms", type=float, default=10.0, help="uniform extra delay per chunk, each line")
    ap.add_argument("--cpu-rate", type=float, default=20000.0,
                    help="deltas per second of the CPU runs (two ports of the server, no relay, no jitter)")
    ap.add_argument("--out", help="also write the markdown here")
    a = ap.parse_args(argv)
    server_cpu, client_cpu, pinning = pin_harness()
    cpus = (server_cpu, client_cpu)
    n = int(a.seconds * a.rate)
    nc = int(a.seconds * a.cpu_rate)
    jit = [(a.latency_ms, a.jitter_ms), (a.latency_ms, a.jitter_ms)]
    flat: list[tuple[float, float]] = []  # CPU runs: straight to the server, no relay
    runs = [
        ("jitter: one line", jit, 1, 1, n, a.rate, "1"),
        ("jitter: two lines, redundancy=2", jit, 2, 2, n, a.rate, "2 (hot standby)"),
        ("direct: one line", flat, 1, 1, nc, a.cpu_rate, "1"),
        ("direct: two lines listed, redundancy=1", flat, 2, 1, nc, a.cpu_rate, "2 (measured, one used)"),
        ("direct: two lines, redundancy=2", flat, 2, 2, nc, a.cpu_rate, "2 (hot standby)"),
    ]
    rows = []
    for label, lines, use, red, count, rate, shown in runs:
        print(f"[lines] {label} ({count:,} deltas at {rate:,.0f}/s)", file=sys.stderr, flush=True)
        r = measure(label, lines, use, red, count, rate, cpus)
        r["lines"] = shown
        rows.append(r)
    base = {r["label"]: r for r in rows if r.get("status") == "ok"}
    text = (f"Lines under jitter: each line {a.latency_ms:g} ms + U(0, {a.jitter_ms:g}) ms one-way per chunk, "
            f"{a.rate:,.0f} deltas/s for {a.seconds:g} s; CPU runs at {a.cpu_rate:,.0f}/s straight to the server "
            "(two listening ports, no relay). "
            f"Delivery latency = consumer receives the delta - server sent it. {pinning}; the lines are "
            "Python relays on the server's core (their own delay is part of every row).\n\n")
    b1 = base.get("jitter: one line")
    text += table(rows[:2], b1["cpu_s"] / max(1, b1["n"]) * 1e6 if b1 else None) + "\n\n"
    b2 = base.get("direct: one line")
    text += table(rows[2:], b2["cpu_s"] / max(1, b2["n"]) * 1e6 if b2 else None) + "\n"
    red = [r.get("redundancy_stats") for r in rows if r.get("redundancy_stats")]
    if red:
        text += "\nredundancy join: " + "; ".join(json.dumps(x) for x in red) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
