"""Prometheus /metrics scraped over real HTTP during a simulator run."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.model import BookUpdate, Gap, Resynced, Trade

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402

FAST = {"ping_interval_s": 0.3, "pong_timeout_s": 1.0, "resync_min_interval_s": 0.05}


async def scrape(url: str) -> dict[str, list]:
    host, _, rest = url.removeprefix("http://").partition(":")
    port = int(rest.split("/")[0])
    r, w = await asyncio.open_connection(host, port)
    w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await w.drain()
    raw = await r.read()
    w.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(m, name, **labels):
    return sum(v for lab, v in m.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


async def test_metrics_endpoint_during_a_simulator_run():
    async with Simulator(venues=["bybit", "okx"], seed=41) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT",
                                   "okx:books:BTC-USDT", endpoints=sim.endpoints, timers={"bybit": FAST, "okx": FAST},
                                   metrics_port=0) as feed:
            seen = {"trades": 0, "books": 0, "gap": False, "resynced": False}
            injected = False
            async with asyncio.timeout(20):
                async for ev in feed:
                    if isinstance(ev, Trade):
                        seen["trades"] += 1
                    elif isinstance(ev, BookUpdate):
                        seen["books"] += 1
                    elif isinstance(ev, Gap):
                        seen["gap"] = True
                    elif isinstance(ev, Resynced):
                        seen["resynced"] = True
                    if not injected and seen["books"] > 50:
                        sim.venue("bybit").inject("skip-u")
                        injected = True
                    if seen["resynced"] and seen["trades"] > 20 and seen["books"] > 300:
                        break
            m = await scrape(feed.metrics.url)
            m2 = await scrape(feed.metrics.url)
    assert value(m, "tickwire_build_info") == 1
    assert value(m, "tickwire_frames_received_total", venue="bybit") > 100
    assert value(m, "tickwire_received_bytes_total", venue="okx") > 1000
    assert value(m, "tickwire_events_total", venue="bybit", type="Trade") >= seen["trades"]
    assert value(m, "tickwire_events_total", venue="bybit", type="BookUpdate") > 50
    assert value(m, "tickwire_events_total", venue="okx", type="BookUpdate") > 0
    assert value(m, "tickwire_connections", venue="bybit", state="connected") == 1
    assert value(m, "tickwire_gaps_total", venue="bybit") >= 1
    assert value(m, "tickwire_resyncs_total", venue="bybit") >= 1
    assert value(m, "tickwire_resync_duration_seconds_count", venue="bybit") >= 1
    assert value(m, "tickwire_exchange_lag_seconds_count", venue="bybit") > 0
    assert value(m, "tickwire_delivery_lag_seconds_count") > 0
    assert value(m, "tickwire_ping_rtt_seconds", venue="bybit") > 0
    assert 0 <= value(m, "tickwire_stream_last_event_age_seconds", stream="bybit.linear:publicTrade:BTCUSDT") < 5
    assert "tickwire_queue_depth_events" in m and value(m, "tickwire_overflow_dropped_events_total") == 0
    # counters only grow between scrapes
    for name in ("tickwire_frames_received_total", "tickwire_events_total", "tickwire_delivery_lag_seconds_count"):
        assert value(m2, name) >= value(m, name)


async def test_a_scrape_of_another_path_is_404_and_bad_ports_are_refused():
    from tickwire.options import OptionError

    with pytest.raises(OptionError, match="metrics_port"):
        tickwire.Feed(["bybit.linear:tickers:BTCUSDT"], tickwire.FeedOptions(metrics_port=70000))
    async with Simulator(venues=["bybit"], seed=42) as sim:
        async with tickwire.stream("bybit.linear:tickers:BTCUSDT", endpoints=sim.endpoints, metrics_port=0) as feed:
            r, w = await asyncio.open_connection("127.0.0.1", feed.metrics.port)
            w.write(b"GET /nope HTTP/1.1\r\n\r\n")
            await w.drain()
            assert (await r.read()).startswith(b"HTTP/1.1 404")
            w.close()
