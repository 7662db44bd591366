"""Kill tests with real processes: a simulator, nats-server(s), `tickwire collect` twins, and
`tickwire bus record`, each its own process, killed with SIGKILL by pid. The recorded dataset is
compared with the truth: what a direct connection to the same simulator received meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tickwire
from tickwire.bus.consumer import subscribe
from tickwire.bus.server import BusServerError, LocalBus, find_server_binary
from tickwire.model import BookUpdate, Gap, Trade

pytest.importorskip("nats")
try:
    find_server_binary()
except BusServerError as e:  # pragma: no cover
    pytest.skip(str(e), allow_module_level=True)

SPECS = ["okx:books:BTC-USDT", "okx:trades:BTC-USDT"]
CLI = [sys.executable, "-m", "tickwire.cli"]


class Procs:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen(CLI + args, stdout=subprocess.PIPE if name == "sim" else log, stderr=log,
                             stdin=subprocess.DEVNULL)
        self.procs[name] = p
        return p

    def kill(self, name: str) -> None:
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait(10)

    def stop(self, name: str, timeout: float = 20) -> int:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                return p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError(f"{name} did not stop on SIGTERM: {self.log(name)}")
        return p.returncode

    def log(self, name: str) -> str:
        try:
            return (self.tmp / f"{name}.log").read_text()[-3000:]
        except OSError:
            return ""

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def start_sim(procs: Procs) -> str:
    p = procs.start("sim", ["sim", "--venues", "okx", "--seed", "4", "--option", "okx.trade_interval_ms=15"])
    line = json.loads(p.stdout.readline())
    return line["venues"]["okx"]["url"]


class Truth:
    """A direct connection to the simulator: the trades and book deltas it received."""

    def __init__(self, ws: str) -> None:
        self.ws = ws
        self.trades: list[int] = []
        self.deltas: list[int] = []
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        async with tickwire.stream(*SPECS, endpoints={"okx": self.ws}) as feed:
            async for ev in feed:
                if isinstance(ev, Trade):
                    self.trades.append(int(ev.trade_id))
                elif isinstance(ev, BookUpdate) and not ev.snapshot:
                    self.deltas.append(ev.seq)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()


def collect_args(url: str, ws: str, name: str, raw: bool = True) -> list[str]:
    return ["collect", "--bus", url, "--endpoint", f"okx={ws}", "--name", name, "--snapshot-interval", "0.5",
            *(["--raw"] if raw else []), *SPECS]


async def wait_until(cond, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def check_against_truth(trades: list[int], deltas: list[int], truth: Truth) -> None:
    assert len(trades) == len(set(trades)), "a trade recorded twice"
    assert len(deltas) == len(set(deltas)), "a book delta recorded twice"
    lo, hi = min(trades), max(trades)
    window = [t for t in truth.trades if lo <= t <= hi]
    assert len(window) > 50
    missing = set(window) - set(trades)
    assert not missing, f"{len(missing)} trades lost: {sorted(missing)[:5]}"
    lo, hi = min(deltas), max(deltas)
    window = [s for s in truth.deltas if lo <= s <= hi]
    assert len(window) > 20
    missing = set(window) - set(deltas)
    assert not missing, f"{len(missing)} book deltas lost: {sorted(missing)[:5]}"


async def test_killed_collector_twin_and_killed_bus_recorder_lose_and_duplicate_nothing(tmp_path):
    procs = Procs(tmp_path)
    bus = LocalBus(1, dir=tmp_path / "bus")
    data = tmp_path / "data"
    rec_args = ["bus", "record", "--bus", bus.url, "--durable", "rec", "--out", str(data), "--commit-interval", "0.3"]
    try:
        bus.start()
        ws = start_sim(procs)
        truth = Truth(ws)
        truth.start()
        procs.start("a", collect_args(bus.url, ws, "a"))
        procs.start("b", collect_args(bus.url, ws, "b"))
        procs.start("rec", rec_args)
        cp = data / "_bus" / "rec.json"
        from tickwire.bus.nats import NatsBus

        nb = NatsBus(bus.url)
        await nb.connect()

        async def progress(trades: int, stored: int, what: str) -> None:
            """Wait for this many more venue trades and stored bus messages (by what happened,
            not by the clock: a loaded machine starts processes late)."""
            async def seq() -> int:
                try:
                    return await nb.last_seq("TW_MD")
                except Exception:
                    return 0  # (no stream yet: the first collector creates it)

            t0, s0 = len(truth.trades), await seq()
            await wait_until(lambda: len(truth.trades) >= t0 + trades, 60, what)
            loop = asyncio.get_running_loop()
            end = loop.time() + 60
            while await seq() < s0 + stored:
                assert loop.time() < end, f"nothing stored: {what}"
                await asyncio.sleep(0.1)

        await progress(60, 30, "both collectors publishing")
        await wait_until(lambda: cp.exists(), 60, "the recorder's first commit")
        procs.kill("a")                      # a collector dies; its twin carries on
        await progress(40, 20, "the twin carrying on")
        procs.kill("rec")                    # the recorder dies mid-commit cycle...
        await progress(20, 10, "data while no recorder runs")
        procs.start("rec2", rec_args)        # ... and restarts from its checkpoint
        await progress(60, 30, "the restarted recorder")
        assert procs.stop("b") == 0, procs.log("b")
        truth.stop()
        last = await nb.last_seq("TW_MD")
        await nb.close()
        await wait_until(lambda: cp.exists() and json.loads(cp.read_text())["md_seq"] >= last, 20,
                         "the recorder to commit everything")
        assert procs.stop("rec2") == 0, procs.log("rec2")
        assert "duplicates dropped" in procs.log("rec2") and "resuming durable rec after" in procs.log("rec2")
    finally:
        procs.close()
        bus.stop()

    trades = tickwire.query("select trade_id from trades", data=str(data))["trade_id"].astype(int).tolist()
    bc = tickwire.query("select seq, snapshot, side, price, count(*) n from book_changes "
                        "group by all", data=str(data))
    assert (bc["n"] == 1).all(), "a book level row written twice"
    deltas = sorted(set(bc[~bc["snapshot"]]["seq"].tolist()))
    check_against_truth(trades, deltas, truth)
    # both collectors' sockets are in the raw archive, each frame once
    from tickwire.sinks.archive import archive_files, read_archive

    recs = [r for f in archive_files(data / "raw") for r in read_archive(f)]
    conns = {r.conn for r in recs if r.kind == "C"}
    assert any(c.endswith("@a") for c in conns) and any(c.endswith("@b") for c in conns)
    frames = [(r.conn, r.recv_ns) for r in recs if r.is_frame]
    assert len(frames) == len(set(frames)) > 100


async def test_killing_one_nats_node_of_three_loses_nothing(tmp_path):
    procs = Procs(tmp_path)
    bus = LocalBus(3, dir=tmp_path / "bus")
    trades: list[int] = []
    deltas: list[int] = []
    gaps: list = []
    try:
        bus.start()
        ws = start_sim(procs)
        truth = Truth(ws)
        truth.start()
        procs.start("a", collect_args(bus.url, ws, "a", raw=False))
        from tickwire.bus.nats import NatsBus

        nb = NatsBus(bus.url)
        await nb.connect()
        for _ in range(100):
            try:
                si = await nb.js.stream_info("TW_MD")
                if si.cluster and si.cluster.leader:
                    break
            except Exception:
                pass
            await asyncio.sleep(0.1)
        assert si.config.num_replicas == 3

        async def stored() -> int:
            try:
                return (await asyncio.wait_for(nb.js.stream_info("TW_MD"), 2)).state.messages
            except Exception:
                return -1  # (a leader election in progress)

        # by what happened, not by the clock (a loaded machine starts the collector late)
        end = asyncio.get_running_loop().time() + 60
        while await stored() < 30 or len(truth.trades) < 30:
            assert asyncio.get_running_loop().time() < end, "the collector published nothing: " + procs.log("a")
            await asyncio.sleep(0.2)
        si = await nb.js.stream_info("TW_MD")
        leader = next(i for i, n in enumerate(bus.nodes) if n.name == si.cluster.leader)
        before, n0 = si.state.messages, len(truth.trades)
        bus.kill(leader)                     # the stream's leader dies
        while await stored() < before + 30 or len(truth.trades) < n0 + 60:
            assert asyncio.get_running_loop().time() < end, "nothing published after the kill: " + procs.log("a")
            await asyncio.sleep(0.2)
        assert procs.stop("a") == 0, procs.log("a")
        truth.stop()
        assert "0 dropped" in procs.log("a")

        async def read() -> None:
            async for ev in subscribe(nb, "md.>", start="first"):
                if isinstance(ev, Trade):
                    trades.append(int(ev.trade_id))
                elif isinstance(ev, BookUpdate) and not ev.snapshot:
                    deltas.append(ev.seq)
                elif isinstance(ev, Gap):
                    gaps.append(ev)
                if trades and trades[-1] >= max(truth.trades) - 5:
                    return

        for attempt in range(3):  # the cluster may still be settling its meta leader after the kill
            trades.clear()
            deltas.clear()
            try:
                await asyncio.wait_for(read(), 10)
            except asyncio.TimeoutError:
                pass
            if trades:
                break
        await nb.close()
    finally:
        procs.close()
        bus.stop()
    assert not gaps
    check_against_truth(trades, deltas, truth)
