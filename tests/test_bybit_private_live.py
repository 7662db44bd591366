"""Bybit v5 private streams end to end: the real client against the Bybit simulator over loopback.

The simulator's account activity (orders, fills from the public prints, positions, wallet) is the
simulator side's work; the tests that need it are skipped until the simulator says it pushes
private data (``BybitSim.PRIVATE_PUSHES``). Auth is simulated either way, so the refusal tests
always run."""

from __future__ import annotations

import asyncio
import json

import pytest

import tickwire
from tickwire.cli import main
from tickwire.model import Balance, Connected, Disconnected, Fill, Order, Position, VenueError
from tickwire.net.feed import FeedError
from tickwire.sim import VENUE_SIMS

from .conftest import collect

PUSHES = bool(getattr(VENUE_SIMS["bybit"], "PRIVATE_PUSHES", False))
needs_pushes = pytest.mark.skipif(not PUSHES, reason="the Bybit simulator does not push private data yet "
                                                     "(no BybitSim.PRIVATE_PUSHES)")
WRONG = {"bybit": {"api_key": "sim-key", "secret": "wrong-secret-0123456789"}}
ALL = ("bybit:order:ANY", "bybit:execution:ANY", "bybit:position:ANY", "bybit:wallet:ANY")


def has_all(kinds):
    return lambda evs: kinds <= {type(e) for e in evs}


@needs_pushes
async def test_orders_fills_positions_and_balances_from_the_simulator():
    s = tickwire.stream(*ALL, sim=True)
    async with s as feed:
        evs = await collect(feed, has_all({Order, Fill, Position, Balance}), timeout=40)
        account = s.simulator.venue("bybit").account("sim-key")
        truth = {x["execId"]: x for x in account.executions}
    assert not [e for e in evs if isinstance(e, VenueError)]
    fills = [e for e in evs if isinstance(e, Fill)]
    assert len({f.trade_id for f in fills}) == len(fills)  # each execution once
    for fl in fills:
        x = truth[fl.trade_id]
        assert (fl.symbol, fl.price, fl.size, fl.order_id) == (x["symbol"], x["execPrice"], x["execQty"], x["orderId"])
        assert fl.stream == "bybit:execution:ANY" and fl.market == x["category"] and fl.usymbol
    orders = [e for e in evs if isinstance(e, Order)]
    assert {o.status for o in orders} <= {"new", "partially_filled", "filled", "canceled", "partially_filled_canceled"}
    assert all(o.raw and o.order_id and o.market in ("spot", "linear", "inverse", "option") for o in orders)
    assert all(isinstance(b.currency, str) and b.currency for b in evs if isinstance(b, Balance))
    assert all(p.side in ("long", "short", "") for p in evs if isinstance(p, Position))


@needs_pushes
async def test_all_in_one_and_categorised_topics_are_served_side_by_side():
    async with tickwire.stream("bybit:order:ANY", "bybit:order.linear:ANY", sim=True) as feed:
        evs = await collect(feed, lambda evs: {e.stream for e in evs if isinstance(e, Order)} ==
                            {"bybit:order:ANY", "bybit:order.linear:ANY"}, timeout=40)
    assert not [e for e in evs if isinstance(e, VenueError)]
    assert all(o.market == "linear" for o in evs if isinstance(o, Order) and o.stream == "bybit:order.linear:ANY")


@needs_pushes
async def test_a_reconnect_authenticates_again_resubscribes_and_repeats_no_fill():
    s = tickwire.stream("bybit:execution:ANY", sim=True, backoff_base_s=0.05)
    async with s as feed:
        evs = await collect(feed, lambda evs: sum(isinstance(e, Fill) for e in evs) >= 2, timeout=40)
        s.simulator.venue("bybit").inject("drop")
        evs += await collect(feed, lambda e2: sum(isinstance(e, Connected) for e in e2) >= 1
                             and sum(isinstance(e, Fill) for e in e2) >= 2, timeout=40)
    assert any(isinstance(e, Disconnected) for e in evs)
    ids = [e.trade_id for e in evs if isinstance(e, Fill)]
    assert len(ids) == len(set(ids))


async def test_a_wrong_secret_ends_the_feed_with_the_venues_message_and_no_retry():
    s = tickwire.stream(*ALL, sim=True, credentials=WRONG)
    with pytest.raises(FeedError) as e:
        async with s as feed:
            async with asyncio.timeout(15):
                async for _ in feed:
                    pass
    text = str(e.value)
    assert "bybit" in text and "Params Error" in text and "refused the login" in text
    assert WRONG["bybit"]["secret"] not in text
    (conn,) = feed.stats()
    assert conn["reconnects"] == 0 and conn["fatal"]
    assert s.simulator.venue("bybit").stats.auth_failed == 1


async def test_max_active_time_reaches_the_venue():
    async with tickwire.stream("bybit:wallet:ANY", sim=True,
                               venue_options={"bybit": {"max_active_time": "45s"}}) as feed:
        await collect(feed, lambda evs: any(isinstance(e, Connected) for e in evs), timeout=10)
        (conn,) = feed.stats()
    assert conn["url"].endswith("/v5/private?max_active_time=45s")


def test_cli_wrong_secret_exits_3_with_the_venues_message(tmp_path, capsys):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps(WRONG))
    with pytest.raises(SystemExit) as e:
        main(["tail", "--sim", "--credentials", str(creds), "--duration", "20", "bybit:order:ANY", "bybit:wallet:ANY"])
    out = capsys.readouterr()
    assert e.value.code == 3
    assert "Params Error" in out.err and "bybit" in out.err
    assert WRONG["bybit"]["secret"] not in out.out + out.err


def test_cli_bad_max_active_time_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["tail", "--sim", "--venue-option", "bybit.max_active_time=5s", "bybit:order:ANY"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) <= 2 and "30s … 600s, or 1m … 10m" in err
