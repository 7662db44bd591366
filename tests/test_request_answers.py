"""Every venue's answers to our subscribes are matched to their requests.

A subscribe with neither an answer nor data within ``request_timeout_s`` is reported
(``no-answer``) and sent again. That safety net must not fire for a stream the venue did
answer: here every venue's simulator serves public and private streams, quiet ones included
(private streams without activity), with the timeout cut to 1.5 s, and not one ``no-answer``
error may come in 6 s."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.credentials import Credentials
from tickwire.model import VenueError

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402

KEY = Credentials(api_key="sim-key", secret="sim-secret", passphrase="sim-passphrase")
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
SPECS = {
    "bybit": ["bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT", "bybit.linear:tickers:BTCUSDT",
              "bybit.spot:orderbook.1:BTCUSDT", "bybit:order:ANY", "bybit:execution:ANY", "bybit:position:ANY",
              "bybit:wallet:ANY"],
    "okx": ["okx:books:BTC-USDT", "okx:trades:BTC-USDT", "okx:tickers:BTC-USDT", "okx:candle1m:BTC-USDT",
            "okx:orders:ANY", "okx:account:ANY", "okx:positions:ANY"],
    "bge": ["bge:ticker:BTC_USDT", "bge:book:BTC_USDT", "bge:trade:BTC_USDT", "bge:orders:BTC_USDT",
            "bge:assets:BTC_USDT"],
    "okxdex": [f"okxdex:price:1/{USDT}", f"okxdex:dex-token-candle1m:1/{USDT}"],
}


@pytest.mark.parametrize("venue", sorted(SPECS))
async def test_no_answered_subscribe_is_taken_for_unanswered(venue):
    errors: list[VenueError] = []
    async with Simulator(venues=[venue], seed=11) as sim:
        async with tickwire.stream(*SPECS[venue], endpoints=sim.endpoints, credentials={venue: KEY},
                                   timers={venue: {"request_timeout_s": 1.5}}) as feed:
            async def consume() -> None:
                async for ev in feed:
                    if isinstance(ev, VenueError):
                        errors.append(ev)
            try:
                await asyncio.wait_for(consume(), 6)
            except asyncio.TimeoutError:
                pass
            stats = feed.stats()
    assert not errors, [f"{e.code}: {e.msg}" for e in errors]
    assert sorted(x for c in stats for x in c["streams"]) == sorted(tickwire.parse(x).spec for x in SPECS[venue])
    assert all(c["connected"] and not c["fatal"] and c["frames"] > 0 for c in stats), stats


@pytest.mark.parametrize("venue", ["bybit", "okx", "bge"])
async def test_a_lost_subscribe_request_is_sent_again(venue):
    """The venue never received our subscribe (``lose-requests``): no answer, no data. The
    stream is reported (no-answer) and subscribed again, then its data flows."""
    spec = {"bybit": "bybit.linear:publicTrade:BTCUSDT", "okx": "okx:trades:BTC-USDT",
            "bge": "bge:ticker:BTC_USDT"}[venue]
    async with Simulator(venues=[venue], seed=12) as sim:
        sim.venue(venue).inject("lose-requests=1")
        errors, data = [], []
        async with tickwire.stream(spec, endpoints=sim.endpoints, timers={venue: {"request_timeout_s": 1.0}}) as feed:
            async def consume() -> None:
                async for ev in feed:
                    if isinstance(ev, VenueError):
                        errors.append(ev)
                    elif not ev.is_status:
                        data.append(ev)
                        return
            await asyncio.wait_for(consume(), 15)
        lost = [f for f in sim.venue(venue).truth.faults if f.kind == "lose-requests"]
    assert len(lost) == 1
    assert [e.code for e in errors] == ["no-answer"] and spec.split(":", 1)[1].split(":")[0] in errors[0].msg
    assert data and data[0].stream == tickwire.parse(spec).spec
