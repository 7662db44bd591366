"""The chaos run, short (``python -m bench chaos`` is the full one): every venue under its faults,
checked against the simulator's ground truth. Plus regression tests for what the chaos run found.

Each case: a fresh simulator and feed, books and trades on several symbols, a few seconds of
faults with compressed timers, then ``clear`` and a settle. A case passes when every injected
sequence break was followed by a Gap then Resynced (every connection fault by a reconnect), no
Gap or reconnect lacked an injected cause, every maintained book equalled the venue's at the same
sequence, no trade the venue sent was lost outside a reported gap or delivered twice, the venue
never refused or closed us for one of its limits, no stream stayed silent unreported beyond its
stall timer, and nothing was raised out of the feed (``bench/chaos.py``, ``Row.findings``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec
import pytest

from tickwire.model import Gap, Resynced, VenueError
from tickwire.venues import get_venue, parse
from tickwire.venues.base import SessionOptions

from .contract import events, sends

pytest.importorskip("tickwire.sim")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import chaos  # noqa: E402

T0 = 1_700_000_000_000_000_000


# -- regressions: what the chaos run found --------------------------------------------------

def _bge(specs):
    v = get_venue("bge")
    s = v.new_session("public", "t#1", SessionOptions(timers=v.timers()))
    s.add([parse(x) for x in specs])
    return s


def _book(seq, product="BTC_USDT", gear="0"):
    return msgspec.json.encode({"id": "1689143926", "biz": "market", "type": "orderbook",
                                "data": {"seq_id": seq, "bids": [["100", "1"]], "asks": [["101", "1"]]},
                                "product": product, "interval": gear})


def test_bge_refused_orderbook_sub_without_interval_in_the_ack_is_retried():
    """Found by the chaos run (bge sub-fail): the documented FAIL ack echoes ``type`` and ``product``
    but no ``interval``; for an orderbook the refusal matched no request, so a transient 500 was
    only reported, the subscribe stayed pending, and the book stayed broken for good."""
    s = _bge(["bge:orderbook.0:BTC_USDT", "bge:orderbook.6:BTC_USDT"])
    s.start(T0)
    assert [json.loads(x.payload)["interval"] for x in sends(s)] == ["0", "6"]
    fail = msgspec.json.encode({"biz": "market", "type": "orderbook", "product": "BTC_USDT", "ts": 1, "code": 500,
                                "status": "FAIL", "event": "sub"})
    (err,) = s.decode_safely(fail, False, T0 + 1)
    assert isinstance(err, VenueError) and err.stream == "bge:orderbook.0:BTC_USDT" and "retrying" in err.msg
    s.on_timer(T0 + 2_000_000_000)
    again = [json.loads(x.payload) for x in sends(s)]
    assert [(m["event"], m.get("interval")) for m in again] == [("sub", "0")]
    out = s.decode_safely(_book(10), False, T0 + 3_000_000_000)
    assert out and out[0].book.valid


def test_a_gap_carried_over_a_reconnect_is_retried_when_the_new_subscribe_brings_no_snapshot():
    """Found by the chaos run (bge sub-fail before the fix above): after a reconnect the broken
    book is subscribed once; when that subscribe never brings a snapshot (answer lost, or matched
    to nothing) the stream stayed broken silently: the resync retry only followed resyncs made on
    the same connection. Now it is sent again after ``resync_timeout_s``, with a Gap each time."""
    old = _bge(["bge:orderbook.0:BTC_USDT"])
    old.start(T0)
    sends(old)
    old.decode_safely(_book(10), False, T0 + 1)
    gap = old.on_close(T0 + 2)
    assert isinstance(gap[0], Gap)
    new = _bge(["bge:orderbook.0:BTC_USDT"])
    new.inherit(old)
    t = T0 + 3
    new.start(t)
    assert [json.loads(x.payload)["event"] for x in sends(new)] == ["sub"]
    # the venue answers with something that names no request (or nothing at all)
    new.decode_safely(msgspec.json.encode({"biz": "market", "type": "orderbook", "product": "ETH_USDT", "ts": 1,
                                           "code": 500, "status": "FAIL", "event": "sub"}), False, t + 1)
    subs = []
    for _ in range(150):  # 15 s of timer ticks (resync_timeout_s is 10 s)
        t += 100_000_000
        new.on_timer(t)
        subs += [json.loads(x.payload)["event"] for x in sends(new) if b'"pong"' not in x.payload]
    assert "sub" in subs
    retries = [e for e in events(new) if isinstance(e, Gap)]
    assert retries and "still broken" in retries[0].reason
    out = new.decode_safely(_book(20), False, t + 1)
    assert [type(e) for e in out][-1] is Resynced and new.broken() == []


_DEX = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
_BAD_TRADES = {
    "bybit.linear": lambda p, v: {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1, "data": [
        {"T": 1, "s": "BTCUSDT", "S": "Buy", "v": v, "p": p, "L": "PlusTick", "i": "t1", "BT": False, "seq": 1}]},
    "okx": lambda p, v: {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [
        {"instId": "BTC-USDT", "tradeId": "1", "px": p, "sz": v, "side": "buy", "ts": "1"}]},
    "bge": lambda p, v: {"id": "1", "biz": "market", "type": "fills", "product": "BTC_USDT", "data": [
        {"vol": v, "ts": 1, "price": p, "direction": "buy", "id": 1}]},
    "okxdex": lambda p, v: {"arg": {"channel": "trades", "chainIndex": "1", "tokenContractAddress": _DEX}, "data": [
        {"id": "1", "price": p, "volume": "5", "type": "buy", "time": "1",
         "changedTokenInfo": [{"amount": v, "tokenSymbol": "WETH", "tokenContractAddress": _DEX}]}]},
}


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "spaced"])
@pytest.mark.parametrize("venue", list(_BAD_TRADES))
@pytest.mark.parametrize("price, size", [("65000.1", "-1"), ("65000.1", "-0.5"), ("", "1"), ("NaN", "1"),
                                         ("65000.1", "\x00"), ("--1", "1"), ("65000.1", "0"), ("1,5", "1")])
def test_a_trade_whose_price_or_size_is_no_number_is_a_venue_error_not_a_trade(venue, price, size, compact):
    """Found by the chaos run (garbled frames): trades with size "-1", "-0.5", "\\x00" or price ""
    were delivered as valid Trades on OKX and BG Exchange (and would have been on Bybit and OKX DEX):
    a print whose price or size is not a non-negative decimal (a positive size) is now a VenueError
    ``bad-trade`` for its stream, as a bad book level is."""
    from tickwire.decode import decoder_session
    from tickwire.model import DexTrade, Trade

    s = decoder_session(venue)
    frame = json.dumps(_BAD_TRADES[venue](price, size), separators=(",", ":") if compact else None).encode()
    out = s.decode_safely(frame, False, 1)
    assert not [e for e in out if isinstance(e, (Trade, DexTrade))], out
    (err,) = out
    assert isinstance(err, VenueError) and err.code == "bad-trade" and err.stream
    good = s.decode_safely(json.dumps(_BAD_TRADES[venue]("65000.1", "0.5")).encode(), False, 2)
    assert [type(e).__name__ for e in good] in (["Trade"], ["DexTrade"])


# -- the short chaos run ----------------------------------------------------------------------

SHORT = {
    "bybit": ["skip-u", "drop", "restart-snapshot", "malformed", "garble"],
    "okx": ["skip-seq", "bad-checksum", "reorder-seq", "notice", "close-4004", "sub-fail"],
    "bge": ["reorder-seq", "dup-seq", "sub-fail", "ignore-pong", "garble"],
    "okxdex": ["drop", "notice"],
}


@pytest.fixture(scope="module")
def short_run():
    import asyncio

    async def run():
        cases = [c for v, names in SHORT.items() for c in chaos.cases_for(v, 2.5) if c.name in names]
        rows = []
        sem = asyncio.Semaphore(4)

        async def one(case, **kw):
            async with sem:
                rows.append(await chaos.run_case(case, seconds=2.5, settle_s=1.2, check_s=0.2, **kw))

        slow = next(c for c in chaos.cases_for("bybit", 2.5) if c.name == "skip-u")
        await asyncio.gather(*(one(c) for c in cases), one(slow, slow=True, mode="slow consumer"))
        loaded = next(c for c in chaos.cases_for("okx", 2.5) if c.name == "skip-seq")
        rows.append(await chaos.run_case(loaded, seconds=2.5, settle_s=1.2, loaded=True, mode="sim under CPU load"))
        return rows

    return asyncio.run(run())


def test_every_case_is_clean(short_run):
    bad = {f"{r.venue} {r.case} {r.mode}": r.findings for r in short_run if r.findings}
    print("\n" + chaos.table(short_run) + "\n" + chaos.totals_text(chaos.totals(short_run)))
    assert not bad, bad


def test_the_short_run_injects_detects_and_compares(short_run):
    t = chaos.totals(short_run)
    assert t["injected"] >= 60 and t["sequence breaks"] >= 30
    assert t["detected"] == t["reactions needed"] and t["resynced"] == t["detected"]
    assert t["book comparisons"] >= 300 and t["inexact"] == 0 and t["exact"] >= 0.95 * t["book comparisons"]
    assert t["trades delivered"] > 500 and t["trades lost"] == 0 and t["duplicated"] == 0
    assert t["bans"] == 0 and t["unexplained gaps/reconnects"] == 0 and t["raised"] == 0
    assert {r.venue for r in short_run} == set(SHORT)
    assert any(r.mode == "sim under CPU load" and r.checks > 0 for r in short_run)
