"""`tickwire replay`: a recording served over the venues' own protocols decodes to the same events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import msgspec
import pytest
from typer.testing import CliRunner

import tickwire
import tickwire.cli as cli
from tickwire.model import to_dict
from tickwire.sim import Simulator
from tickwire.sim.replay import ReplayError, ReplayServer, index_archive, iter_session_frames
from tickwire.sinks.recorder import Recorder

SPECS = [
    "bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT", "bybit.linear:tickers:BTCUSDT",
    "bybit.spot:publicTrade:BTCUSDT",
    "okx:books:BTC-USDT", "okx:trades:BTC-USDT", "okx:candle1m:BTC-USDT",
]
RECORD_S = 2.2


def norm(d: dict) -> dict:
    """A market-data event without what differs between runs (receipt time, connection, live book)."""
    for k in ("recv_ns", "conn", "book"):
        d.pop(k, None)
    return d


def by_stream(events: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in events:
        out.setdefault(d["stream"], []).append(d)
    return out


async def _record(out) -> list[dict]:
    rec = Recorder(out, flush_interval=0.25, roll_interval=0.5)  # several files: connections continue across them
    live: list[dict] = []
    async with Simulator(venues=["bybit", "okx"], seed=3) as sim:
        async with tickwire.stream(*SPECS, endpoints=sim.endpoints) as feed:
            rec.attach(feed)
            asyncio.get_running_loop().call_later(RECORD_S, lambda: asyncio.ensure_future(feed.close()))
            async for ev in feed:  # drains the buffer after close: every recorded frame is decoded
                rec.add(ev)
                if not ev.is_status:
                    live.append(norm(to_dict(ev)))
    rec.close()
    return live


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "data"
    live = asyncio.run(_record(out))
    return out, live


async def _consume(server: ReplayServer, specs=SPECS, timeout: float = 20.0) -> tuple[list[dict], float]:
    """Every market-data event a tickwire client gets from the replay, and the seconds it took."""
    got: list[dict] = []
    async with tickwire.stream(*specs, endpoints=server.endpoints) as feed:
        t0 = time.monotonic()

        async def stop_when_served() -> None:
            await server.wait_done(timeout)
            await asyncio.sleep(0.3)  # the last frames are on the wire
            await feed.close()

        task = asyncio.get_running_loop().create_task(stop_when_served())
        async for ev in feed:
            if not ev.is_status:
                got.append(norm(to_dict(ev)))
        await task
    return got, time.monotonic() - t0


def test_index_finds_every_connection_and_frame(recording):
    out, _ = recording
    idx = index_archive(out / "raw")
    assert len(idx.files) > 2  # rolled: later files re-declare the open connections ("continued")
    paths = sorted(s.path for s in idx.sessions)
    assert paths == ["/v5/public/linear", "/v5/public/spot", "/ws/v5/business", "/ws/v5/public"]
    for s in idx.sessions:
        frames = list(iter_session_frames(idx, s))
        assert len(frames) == s.frames > 0
        assert [ns for ns, _, _ in frames] == sorted(ns for ns, _, _ in frames)
        assert s.end_reason in ("recording ended", "feed closed") and not s.ends_with_disconnect
    with pytest.raises(ReplayError):
        index_archive(out / "trades")


async def test_replay_round_trip_equals_offline_decode_and_live(recording):
    out, live = recording
    res = CliRunner().invoke(cli.app, ["decode", str(out / "raw"), "--no-status"])
    assert res.exit_code == 0, res.output
    offline = [norm(msgspec.json.decode(line)) for line in res.stdout.splitlines() if line.strip()]
    async with ReplayServer(out, speed=0) as server:
        replayed, _ = await _consume(server)
        assert server.frames_replayed > 0
    assert {d["stream"] for d in replayed} == set(SPECS)
    types = {d["type"] for d in replayed}
    assert {"BookUpdate", "Trade", "Ticker", "Candle"} <= types
    # same events in the same order per stream (streams of different connections interleave freely)
    assert by_stream(replayed) == by_stream(offline)
    assert by_stream(offline) == by_stream(live)


async def test_replay_speed_is_honoured(recording):
    out, _ = recording
    specs = [s for s in SPECS if s.startswith("bybit")]
    async with ReplayServer(out / "raw", speed=10, venues=["bybit"]) as server:
        span_s = (max(s.last_ns for s in server.sessions) - min(s.first_ns for s in server.sessions)) / 1e9
        arrivals: list[float] = []
        async with tickwire.stream(*specs, endpoints=server.endpoints) as feed:
            async def stop() -> None:
                await server.wait_done(10)
                await feed.close()

            task = asyncio.get_running_loop().create_task(stop())
            async for ev in feed:
                if not ev.is_status:
                    arrivals.append(time.monotonic())
            await task
    served = arrivals[-1] - arrivals[0]
    assert span_s > 1.8 and len(arrivals) > 50  # a ~2 s recording
    # ten times faster: ~0.2 s, paced (not all at once) and well under a second
    assert 0.6 * span_s / 10 <= served < 1.0, (span_s, served)


def test_replay_command_serves_tail(recording):
    out, _ = recording
    p = subprocess.Popen([sys.executable, "-m", "tickwire.cli", "replay", str(out / "raw"), "--speed", "0",
                          "--venues", "okx", "--close-at-end"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(p.stdout.readline())
        assert ready["event"] == "ready" and set(ready["venues"]) == {"okx"}
        url = ready["venues"]["okx"]["url"]
        tail = subprocess.run([sys.executable, "-m", "tickwire.cli", "tail", "--no-status", "--duration", "6",
                               "--endpoint", f"okx={url}", "okx:trades:BTC-USDT", "okx:books:BTC-USDT",
                               "--limit", "20"], capture_output=True, text=True, timeout=30)
        lines = [json.loads(x) for x in tail.stdout.splitlines()]
        assert len(lines) == 20 and {d["venue"] for d in lines} == {"okx"}
    finally:
        p.terminate()
        p.wait(10)


async def test_a_client_of_one_venue_ends_with_the_recording(recording):
    """`tail` against `replay --close-at-end` used to run forever, and the replay only ended
    once every recorded venue had been asked for: both end when the data ends."""
    out, live = recording
    okx_specs = [s for s in SPECS if s.startswith("okx")]
    server = ReplayServer(out, speed=0, close_at_end=True)
    async with server:
        got = []
        async with asyncio.timeout(20):
            async with tickwire.stream(*okx_specs, endpoints=server.endpoints) as feed:
                async for ev in feed:  # ends by itself: no close(), no timeout
                    got.append(ev)
            assert await server.wait_done(5)
    data = [norm(to_dict(e)) for e in got if not e.is_status]
    assert by_stream(data) == by_stream([d for d in live if d["venue"] == "okx"])
    ends = [e for e in got if type(e).__name__ == "Disconnected"]
    assert ends and all("end of recording" in e.reason and e.reconnect_in_s is None for e in ends)
