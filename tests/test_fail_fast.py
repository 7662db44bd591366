"""A run that can never succeed ends, with a clear one-line reason; a bad option is refused
before anything connects (each of these was observed to hang or go silent)."""

from __future__ import annotations

import asyncio
import socket

import pytest

import tickwire
from tickwire.model import Disconnected, Ticker, VenueError
from tickwire.net import FeedError
from tickwire.options import OptionError


SPEC = "bybit.linear:tickers:BTCUSDT"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("opts, words", [
    ({"timers": {"bybit": {"ping_intervl_s": 5}}}, ["ping_intervl_s", "did you mean 'ping_interval_s'"]),
    ({"timers": {"bybitt": {"ping_interval_s": 5}}}, ["'bybitt'", "bge, bybit, okx, okxdex"]),
    ({"timers": {"bybit": {"pong_timeout_s": "soon"}}}, ["pong_timeout_s='soon'", "number"]),
    ({"limits": {"bge": {"margin": 1.5}}}, ["margin=1.5", "[0, 1)"]),
    ({"proxy": "socks5h://127.0.0.1:1080"}, ["socks5h", "http, socks4, socks5"]),
    ({"proxy": "127.0.0.1:1080"}, ["no scheme"]),
    ({"proxy": "http://user:hunter2@proxy.example:3128x"}, ["port"]),
    ({"network": "testnett"}, ["testnett", "mainnet, testnet, demo"]),
    ({"network": {"okx": "testnet"}, "endpoints": {}}, None),  # bybit on mainnet: fine
    ({"max_retries": 0}, ["max_retries"]),
])
def test_bad_options_are_one_line_errors_before_any_connection(opts, words):
    if words is None:
        tickwire.Feed([SPEC], tickwire.FeedOptions(**opts))
        return
    with pytest.raises(OptionError) as e:
        tickwire.Feed([SPEC], tickwire.FeedOptions(**opts))
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    assert "hunter2" not in msg


def test_per_venue_network_is_accepted_and_checked():
    with pytest.raises(OptionError, match="okx has no 'testnet' network"):
        tickwire.Feed([SPEC, "okx:books:BTC-USDT"], tickwire.FeedOptions(network={"bybit": "testnet", "okx": "testnet"}))
    feed = tickwire.Feed([SPEC, "okx:books:BTC-USDT"], tickwire.FeedOptions(network={"bybit": "testnet", "okx": "demo"}))
    assert feed.network_of("bybit") == "testnet" and feed.network_of("okx") == "demo"


async def test_an_unreachable_host_gives_up_after_max_retries():
    events = []
    with pytest.raises(FeedError, match="gave up after 3 failed attempts") as e:
        async with tickwire.stream(SPEC, endpoints={"bybit": f"ws://127.0.0.1:{closed_port()}"}, max_retries=2,
                                   backoff_base_s=0.01) as feed:
            async with asyncio.timeout(10):
                async for ev in feed:
                    events.append(ev)
    assert "connect to ws://127.0.0.1" in str(e.value)
    assert sum(isinstance(x, Disconnected) for x in events) == 3


async def test_give_up_after_seconds_without_serving():
    with pytest.raises(FeedError, match="without serving"):
        async with tickwire.stream(SPEC, endpoints={"bybit": f"ws://127.0.0.1:{closed_port()}"},
                                   give_up_after_s=0.5, backoff_base_s=0.05, backoff_cap_s=0.2) as feed:
            async with asyncio.timeout(10):
                async for _ in feed:
                    pass


async def test_default_is_to_retry_forever():
    async with tickwire.stream(SPEC, endpoints={"bybit": f"ws://127.0.0.1:{closed_port()}"},
                               backoff_base_s=0.01, backoff_cap_s=0.02) as feed:
        n = 0
        async with asyncio.timeout(10):
            async for ev in feed:
                n += isinstance(ev, Disconnected)
                if n >= 20:
                    break
    assert n == 20


pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402


async def test_every_subscription_refused_ends_the_feed_and_names_them():
    async with Simulator(venues=["okx"], seed=31) as sim:
        events = []
        with pytest.raises(FeedError) as e:
            async with tickwire.stream("okx:books:BTCUSDT", "okx:trades:NOPE-USDT", endpoints=sim.endpoints) as feed:
                async with asyncio.timeout(15):
                    async for ev in feed:
                        events.append(ev)
    msg = str(e.value)
    assert "nothing left to stream" in msg and "okx:books:BTCUSDT" in msg and "okx:trades:NOPE-USDT" in msg
    # with the venue's own code and message (the first stream's), and no tickwire-internal code
    assert "60018" in msg and "doesn't exist" in msg and "venue code refused" not in msg
    assert sum(1 for x in events if isinstance(x, VenueError) and x.fatal and x.stream) == 2


async def test_many_refused_streams_make_one_short_line():
    async with Simulator(venues=["okx"], seed=33) as sim:
        specs = [f"okx:trades:NOPE{i}-USDT" for i in range(40)]
        with pytest.raises(FeedError) as e:
            async with tickwire.stream(*specs, endpoints=sim.endpoints) as feed:
                async with asyncio.timeout(15):
                    async for _ in feed:
                        pass
    msg = str(e.value)
    assert "and 37 more" in msg and len(msg) < 500, msg


async def test_a_partly_refused_run_goes_on_and_says_what_was_refused():
    async with Simulator(venues=["okx"], seed=32) as sim:
        async with tickwire.stream("okx:tickers:BTC-USDT", "okx:books:BTCUSDT", endpoints=sim.endpoints) as feed:
            events = []
            async with asyncio.timeout(15):
                async for ev in feed:
                    events.append(ev)
                    if sum(isinstance(x, Ticker) for x in events) >= 3:
                        break
    (err,) = [x for x in events if isinstance(x, VenueError)]
    assert err.fatal and err.stream == "okx:books:BTCUSDT"


async def test_a_refused_login_ends_a_run_of_public_and_private_streams():
    """Bug: with public streams beside the private ones, a refused login did not end the run."""
    from tickwire.credentials import Credentials

    bad = Credentials(api_key="sim-key", secret="not-the-secret", passphrase="sim-passphrase")
    async with Simulator(venues=["okx"], seed=33) as sim:
        with pytest.raises(FeedError, match="login refused"):
            async with tickwire.stream("okx:tickers:BTC-USDT", "okx:orders:ANY", endpoints=sim.endpoints,
                                       credentials={"okx": bad}) as feed:
                async with asyncio.timeout(10):
                    async for _ in feed:
                        pass
