"""A run that can never succeed ends, with a clear one-line reason; a bad option is refused
before anything connects (each of these was observed to hang or go silent)."""

from __future__ import annotations

import asyncio
import re
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


def test_a_network_named_for_a_venue_is_checked_even_with_its_own_endpoint():
    """{"okx": "moon"} is a typo wherever OKX connects; a network for all venues may not fit one
    with its own endpoint (OKX has no testnet) and is then ignored for it."""
    with pytest.raises(OptionError, match="okx has no 'moon' network; it has: mainnet, demo"):
        tickwire.Feed(["okx:books:BTC-USDT"], tickwire.FeedOptions(network={"okx": "moon"},
                                                                   endpoints={"okx": "ws://127.0.0.1:9"}))
    tickwire.Feed([SPEC, "okx:books:BTC-USDT"], tickwire.FeedOptions(network="testnet",
                                                                     endpoints={"okx": "ws://127.0.0.1:9"}))


@pytest.mark.parametrize("venue,spec,opts,named", [
    ("okx", "okx:books:BTC-USDT", {"prot": 8443}, "'prot' (did you mean 'port'?); valid: max_inflated_bytes, path, port"),
    ("okx", "okx:books:BTC-USDT", {"port": "x"}, "port='x'"),
    ("okx", "okx:books:BTC-USDT", {"snapshot_wait_s": -1}, "snapshot_wait_s=-1"),
    ("okxdex", "okxdex:price:1/0xdac17f958d2ee523a2206206994597c13d831ec7", {"paht": "v5"}, "'paht'"),
    ("bge", "bge:ticker:BTC_USDT", {"zipp": True}, "'zipp' (did you mean 'zip'?); valid: max_inflated_bytes, zip"),
    ("bybit", SPEC, {"max_active_tme": "1m"}, "'max_active_tme'"),
])
def test_every_venue_checks_its_venue_options_up_front(venue, spec, opts, named):
    """A typo in a venue option was taken silently on OKX, OKX DEX and BG Exchange (only Bybit
    checked): `--venue-option okx.prot=8443` connected to 443 without a word."""
    with pytest.raises(OptionError, match=re.escape(named)):
        tickwire.Feed([spec], tickwire.FeedOptions(venue_options={venue: opts}))


def test_good_venue_options_are_taken_and_converted():
    f = tickwire.Feed(["okx:books:BTC-USDT", "bge:ticker:BTC_USDT"], tickwire.FeedOptions(
        venue_options={"okx": {"port": "8443", "verify_checksum": "false"}, "bge": {"zip": "true"}}))
    assert f.options.venue_options == {"okx": {"port": 8443, "verify_checksum": False}, "bge": {"zip": True}}


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
