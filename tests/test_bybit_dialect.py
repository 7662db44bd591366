"""Bybit dialect, sans-I/O: specs, batching, acks, pongs, the `u` chain, recorded frames."""

from __future__ import annotations

import json

import msgspec
import pytest

from tickwire.decode import decode_lines
from tickwire.model import BookUpdate, Candle, Gap, Liquidation, Resynced, Ticker, Trade, VenueError
from tickwire.subscription import SpecError
from tickwire.venues import get_venue, parse
from tickwire.venues.base import SessionOptions

from .conftest import recorded
from .contract import closed_reason, events, sends


def session(market="linear", specs=()):
    v = get_venue("bybit")
    s = v.new_session(f"public/{market}", "t#1", SessionOptions())
    s.add([parse(x) for x in specs])
    s.start(1)
    return s


def sent(s):
    out = [json.loads(x.payload) for x in sends(s)]
    return out


def frame(obj) -> bytes:
    return msgspec.json.encode(obj)


def book(topic, typ, u, b=(), a=(), ts=1700000000000):
    return frame({"topic": topic, "type": typ, "ts": ts, "data": {"s": topic.rsplit(".", 1)[1], "b": list(b),
                                                                    "a": list(a), "u": u, "seq": u * 10}})


# -- specs ------------------------------------------------------------------------------

def test_native_names_and_aliases_resolve_to_the_same_stream():
    assert parse("bybit.linear:book:BTCUSDT").spec == parse("bybit.linear:orderbook.50:BTCUSDT").spec
    assert parse("bybit.spot:trades:BTCUSDT").topic == "publicTrade.BTCUSDT"
    assert parse("bybit:candles.1m:BTCUSDT").topic == "kline.1.BTCUSDT"
    assert parse("bybit.linear:liquidations:BTCUSDT").topic == "allLiquidation.BTCUSDT"
    assert parse("bybit:ticker:ETHUSDT").spec == "bybit.linear:tickers:ETHUSDT"


@pytest.mark.parametrize("spec,needle", [
    ("bybit.linear:orderbook.30:BTCUSDT", "depths: 1, 50, 200, 1000"),
    ("bybit.futures:book:BTCUSDT", "linear, spot, inverse, option"),
    ("bybit.linear:nope:BTCUSDT", "orderbook.N, publicTrade"),
    ("bybit.linear:book:btcusdt", "upper case"),
    ("bybit.spot:liquidations:BTCUSDT", "linear and inverse"),
    ("nope:book:X", "known venues"),
    ("bybit:book", "VENUE[.MARKET]:CHANNEL:SYMBOL"),
])
def test_bad_specs_say_what_is_allowed(spec, needle):
    with pytest.raises(SpecError) as e:
        parse(spec)
    assert needle in str(e.value)


# -- requests ---------------------------------------------------------------------------

def test_spot_subscribe_is_batched_at_10_args_per_request():
    specs = [f"bybit.spot:publicTrade:SYM{i}USDT" for i in range(25)]
    frames = sent(session("spot", specs))
    assert [len(f["args"]) for f in frames] == [10, 10, 5]
    assert all(f["op"] == "subscribe" and f["req_id"] for f in frames)
    assert sorted(a for f in frames for a in f["args"]) == sorted(f"publicTrade.SYM{i}USDT" for i in range(25))


def test_planner_keeps_args_under_21000_chars_and_option_under_2000_per_connection():
    v = get_venue("bybit")
    subs = [parse(f"bybit.linear:orderbook.50:SYMBOL{i:05d}USDT") for i in range(2000)]
    groups = v.plan(subs)
    assert len(groups) > 1
    assert all(sum(len(s.topic) for s in g) <= 21000 for g in groups)
    assert sum(len(g) for g in groups) == 2000
    opt = [parse(f"bybit.option:orderbook.25:B-{i}-C") for i in range(4500)]
    assert all(len(g) <= 2000 for g in v.plan(opt))


def test_ping_is_sent_on_schedule_and_every_pong_shape_is_recognised():
    s = session("linear", ["bybit.linear:orderbook.50:BTCUSDT"])
    sent(s)
    s.on_timer(1 + int(19e9))
    assert sent(s) == []
    s.on_timer(1 + int(20e9))
    (ping,) = sent(s)
    assert ping["op"] == "ping"
    for pong in ({"success": True, "ret_msg": "pong", "conn_id": "x", "req_id": "", "op": "ping"},
                 {"args": ["1672916271846"], "op": "pong"},
                 {"req_id": "t", "op": "pong", "args": ["1675418560633"], "conn_id": "c"}):
        s.pong_pending = True
        s.ping_sent_ns = 100
        assert s.on_frame(frame(pong), False, 200) == []
        assert s.pong_pending is False and s.rtt_ns == 100


def test_missing_pong_kills_the_connection():
    s = session("linear", ["bybit.linear:tickers:BTCUSDT"])
    s.on_timer(int(20e9) + 1)
    assert s.pong_pending
    s.on_timer(int(31e9) + 1)
    assert closed_reason(s) and "pong" in closed_reason(s)


def test_failed_batch_reports_the_bad_topic_and_resubscribes_the_rest():
    s = session("linear", ["bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:orderbook.50:NOPEUSDT"])
    (req,) = sent(s)
    ev = s.on_frame(frame({"success": False, "ret_msg": "error:handler not found,topic:orderbook.50.NOPEUSDT",
                           "conn_id": "c", "req_id": req["req_id"], "op": "subscribe"}), False, 5)
    (err,) = ev
    assert isinstance(err, VenueError) and err.fatal
    assert err.venue == "bybit" and err.stream == "bybit.linear:orderbook.50:NOPEUSDT"
    assert "handler not found" in err.msg and "orderbook.50.NOPEUSDT" in err.request
    (again,) = sent(s)
    assert again["op"] == "subscribe" and again["args"] == ["orderbook.50.BTCUSDT"]
    assert "orderbook.50.NOPEUSDT" in s.refused


# -- books -------------------------------------------------------------------------------

def test_gap_marks_book_invalid_and_resyncs_that_topic_only():
    t = "orderbook.50.BTCUSDT"
    s = session("linear", ["bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:orderbook.50:ETHUSDT"])
    sent(s)
    (snap,) = s.on_frame(book(t, "snapshot", 100, [["10", "1"]], [["11", "1"]]), False, 1)
    assert isinstance(snap, BookUpdate) and snap.snapshot and snap.book.valid
    (d,) = s.on_frame(book(t, "delta", 101, [["10", "2"]]), False, 2)
    assert d.book.bids == {"10": "2"} and d.prev_seq == 100
    (gap,) = s.on_frame(book(t, "delta", 103, [["9", "1"]]), False, 3)
    assert isinstance(gap, Gap) and gap.expected == 102 and gap.received == 103
    assert not d.book.valid
    assert s.on_frame(book(t, "delta", 104, [["9", "1"]]), False, 4) == []  # ignored while broken
    s.on_timer(10)
    frames = sent(s)
    assert [(f["op"], f["args"]) for f in frames] == [("unsubscribe", [t]), ("subscribe", [t])]
    ev = s.on_frame(book(t, "snapshot", 200, [["8", "1"]], [["12", "1"]]), False, 11)
    assert isinstance(ev[0], BookUpdate) and ev[0].snapshot and isinstance(ev[1], Resynced)
    assert ev[0].book.valid and ev[0].book.bids == {"8": "1"}


def test_repeated_gaps_back_off_instead_of_storming():
    t = "orderbook.50.BTCUSDT"
    s = session("linear", ["bybit.linear:orderbook.50:BTCUSDT"])
    sent(s)
    now = 0
    requests = 0
    for i in range(50):
        now += int(0.1e9)
        s.on_frame(book(t, "snapshot", 1000 * i + 5), False, now)
        s.on_frame(book(t, "delta", 1000 * i + 9), False, now)  # always broken
        s.on_timer(now)
        requests += len(sent(s))
    # 5 s of a stream that breaks every 100 ms: resyncs limited by the per-topic backoff
    assert requests <= 2 * 6


def test_restart_snapshot_u1_resets_the_book():
    t = "orderbook.50.BTCUSDT"
    s = session("linear", ["bybit.linear:orderbook.50:BTCUSDT"])
    s.on_frame(book(t, "snapshot", 500, [["10", "1"], ["9", "1"]], [["11", "1"]]), False, 1)
    (ev,) = s.on_frame(book(t, "delta", 1, [["5", "1"]], [["6", "1"]]), False, 2)
    assert ev.snapshot and ev.book.bids == {"5": "1"} and ev.book.asks == {"6": "1"}
    (ev,) = s.on_frame(book(t, "delta", 2, [["5", "2"]]), False, 3)
    assert ev.book.bids == {"5": "2"}


def test_level1_repeat_with_same_u_is_not_a_gap():
    t = "orderbook.1.BTCUSDT"
    s = session("linear", ["bybit.linear:orderbook.1:BTCUSDT"])
    for _ in range(3):
        (ev,) = s.on_frame(book(t, "snapshot", 7, [["10", "1"]], [["11", "1"]]), False, 1)
        assert isinstance(ev, BookUpdate)


def test_malformed_frame_is_a_venue_error_and_decoding_continues():
    s = session("linear", ["bybit.linear:orderbook.50:BTCUSDT"])
    (err,) = s.on_frame(b"{not json", False, 1)
    assert isinstance(err, VenueError) and err.venue == "bybit" and "undecodable" in err.msg
    (ev,) = s.on_frame(book("orderbook.50.BTCUSDT", "snapshot", 3, [["1", "1"]]), False, 2)
    assert isinstance(ev, BookUpdate)


def test_ticker_deltas_merge_into_a_full_ticker():
    s = session("linear", ["bybit.linear:tickers:BTCUSDT"])
    (a,) = s.on_frame(frame({"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1, "cs": 1,
                             "data": {"symbol": "BTCUSDT", "lastPrice": "100.0", "bid1Price": "99.5",
                                      "markPrice": "100.1"}}), False, 1)
    (b,) = s.on_frame(frame({"topic": "tickers.BTCUSDT", "type": "delta", "ts": 2, "cs": 2,
                             "data": {"symbol": "BTCUSDT", "markPrice": "100.2"}}), False, 2)
    assert isinstance(b, Ticker)
    assert (b.last, b.bid, b.mark_price) == ("100.0", "99.5", "100.2")


# -- recorded frames (conformance) ---------------------------------------------------------

def test_orderbook500_recording_rebuilds_the_exact_final_book_without_gaps():
    path = recorded("bybit_orderbook.500_nautilus.jsonl")
    events = list(decode_lines("bybit.linear", open(path, "rb")))
    assert not [e for e in events if isinstance(e, (Gap, VenueError))]
    books = [e for e in events if isinstance(e, BookUpdate)]
    assert len(books) == 50 and books[0].snapshot
    # rebuild independently from the events' own levels and compare with the maintained book
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    for e in books:
        if e.snapshot:
            bids, asks = {}, {}
        for side, lv in ((bids, e.bids), (asks, e.asks)):
            for p, q in lv:
                if q == "0":
                    side.pop(p, None)
                else:
                    side[p] = q
    final = books[-1].book
    assert final.bids == bids and final.asks == asks and final.valid
    # and from the raw frames themselves
    raw_b: dict[str, str] = {}
    for line in open(path, "rb"):
        d = json.loads(line)["data"]
        if json.loads(line)["type"] == "snapshot":
            raw_b = {}
        for p, q in d["b"]:
            raw_b.pop(p, None) if q == "0" else raw_b.__setitem__(p, q)
    assert final.bids == raw_b
    assert books[-1].seq == 20254918


@pytest.mark.parametrize("name,kinds", [
    ("bybit_orderbook_ccxt.jsonl", {BookUpdate}),
    ("bybit_publicTrade_ccxt.jsonl", {Trade}),
    ("bybit_publicTrade_tardis.jsonl", {Trade}),
    ("bybit_tickers_ccxt.jsonl", {Ticker}),
    ("bybit_tickers_tardis.jsonl", {Ticker}),
    ("bybit_orderbook.1_tardis.jsonl", {BookUpdate, Gap}),
])
def test_recorded_files_decode_to_events(name, kinds):
    path = recorded(name)
    events = list(decode_lines("bybit.linear", open(path, "rb")))
    assert events and {type(e) for e in events} <= kinds
    assert not [e for e in events if isinstance(e, VenueError)]
    for e in events:
        if isinstance(e, Trade):
            assert e.price and e.size and e.side in ("buy", "sell") and e.exch_ns > 1e18
        if isinstance(e, Ticker):
            assert e.last


def test_every_server_frame_in_the_examples_is_understood():
    path = recorded("bybit_examples.jsonl")
    events = list(decode_lines("bybit.linear", open(path, "rb")))
    kinds = {type(e) for e in events}
    assert {Trade, Ticker, BookUpdate, Candle, Liquidation} <= kinds
    errors = [e for e in events if isinstance(e, VenueError)]
    # the file holds exactly two documented error replies: auth Params Error, unknown symbol
    assert sorted(e.msg for e in errors) == ["Params Error", "error:handler not found,topic:orderbook.50.NOPEUSDT"]


def test_trade_prices_are_exactly_the_venue_strings():
    path = recorded("bybit_publicTrade_ccxt.jsonl")
    raw = [t for line in open(path, "rb") if b'"topic"' in line for t in json.loads(line)["data"]]
    events = [e for e in decode_lines("bybit.linear", open(path, "rb")) if isinstance(e, Trade)]
    assert [(e.price, e.size, e.trade_id) for e in events] == [(t["p"], t["v"], t["i"]) for t in raw]


def test_a_silent_level1_book_is_resubscribed_but_a_repeating_one_is_not():
    t = "orderbook.1.BTCUSDT"
    s = session("linear", ["bybit.linear:orderbook.1:BTCUSDT"])
    sent(s)
    s.on_frame(book(t, "snapshot", 7, [["10", "1"]], [["11", "1"]]), False, 1)
    for sec in range(1, 30):  # the venue repeats the snapshot every 3 s: fine
        now = int(sec * 1e9)
        if sec % 3 == 0:
            s.on_frame(book(t, "snapshot", 7, [["10", "1"]], [["11", "1"]]), False, now)
        s.pong_pending = False
        s.on_timer(now)
    assert not events(s) and not [f for f in sent(s) if f["op"] != "ping"]
    for sec in range(30, 45):  # then nothing at all for 15 s
        s.pong_pending = False
        s.on_timer(int(sec * 1e9))
    (gap,) = events(s)
    assert isinstance(gap, Gap) and "no update" in gap.reason
    assert [(f["op"], f["args"]) for f in sent(s) if f["op"] != "ping"] == [("unsubscribe", [t]), ("subscribe", [t])]


async def test_an_unknown_network_is_a_clear_error_before_any_connection():
    import tickwire

    with pytest.raises(SpecError, match="okx has no 'testnet' network"):
        async with tickwire.stream("okx:books:BTC-USDT", network="testnet"):
            pass


# -- frames that cannot be used (issue 17: each a precise VenueError, never "internal") ------------

DEEP = b"[" * 100_000 + b"]" * 100_000  # far beyond any decoder's recursion limit
OPTION = "bybit.option:orderbook.25:BTC-27DEC26-100000-C"


@pytest.mark.parametrize("data,shown", [
    (None, "b'null'"),                                                       # no data at all
    (b'{"failTopics":"abc","successTopics":[]}', '"failTopics":"abc"'),      # a list that is a string
    (b'{"failTopics":[],"successTopics":["\x87rderbook.25.BTC-27DEC26-100000-C"]}', "\\x87rderbook"),  # not UTF-8
], ids=["null", "wrong-type", "bad-utf8"])
def test_option_command_resp_with_unusable_data_is_a_decode_error_naming_the_field(data, shown):
    s = session("option", [OPTION])
    sent(s)
    head = b'{"success":true,"conn_id":"c","type":"COMMAND_RESP"'
    (err,) = s.on_frame(head + (b',"data":' + data if data is not None else b"") + b"}", False, 1)
    assert isinstance(err, VenueError) and err.code == "decode" and "\n" not in err.msg
    assert "COMMAND_RESP" in err.msg and "data" in err.msg and shown in err.msg and "failTopics" in err.msg, err.msg
    ok = frame({"success": True, "conn_id": "c", "type": "COMMAND_RESP",
                "data": {"failTopics": [], "successTopics": ["orderbook.25.BTC-27DEC26-100000-C"]}})
    assert s.on_frame(ok, False, 2) == [] and not s.ledger.requests
    (ev,) = s.on_frame(book("orderbook.25.BTC-27DEC26-100000-C", "snapshot", 3, [["1", "1"]]), False, 3)
    assert isinstance(ev, BookUpdate) and ev.book.valid


def test_absurdly_deep_nesting_is_a_decode_error():
    s = session("linear", ["bybit.linear:publicTrade:BTCUSDT", "bybit.linear:tickers:BTCUSDT"])
    for f in (b'{"x":' + DEEP + b"}",
              b'{"topic":"publicTrade.BTCUSDT","ts":1,"type":"snapshot","data":[' + DEEP + b"]}",
              b'{"topic":"tickers.BTCUSDT","ts":1,"type":"snapshot","data":' + DEEP + b"}"):
        (err,) = s.on_frame(f, False, 1)
        assert isinstance(err, VenueError) and err.code == "decode" and "nested" in err.msg, err.msg
    (t,) = s.on_frame(frame({"topic": "publicTrade.BTCUSDT", "ts": 1, "type": "snapshot", "data": [
        {"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "2", "i": "x"}]}), False, 2)
    assert isinstance(t, Trade) and t.price == "2"


@pytest.mark.parametrize("broken", [
    lambda good: good[:-20],                                      # truncated: not JSON at all
    lambda good: good[:-2] + b',"x":' + DEEP + b"}}",             # valid JSON, nested too deep
    lambda good: good.replace(b'"u":101', b'"u":"101"'),          # the envelope decodes, its data does not
], ids=["truncated", "deep", "bad-type"])
def test_an_undecodable_delta_of_a_book_breaks_it_at_once(broken):
    t = "orderbook.50.BTCUSDT"
    s = session("linear", ["bybit.linear:orderbook.50:BTCUSDT"])
    sent(s)
    s.on_frame(book(t, "snapshot", 100, [["10", "1"]], [["11", "1"]]), False, 1)
    err, gap = s.on_frame(broken(book(t, "delta", 101, [["10", "2"]])), False, 2)
    assert isinstance(err, VenueError) and err.code == "decode" and err.stream == "bybit.linear:orderbook.50:BTCUSDT"
    assert isinstance(gap, Gap) and s.broken() == ["bybit.linear:orderbook.50:BTCUSDT"]
    s.on_timer(int(2e9))
    assert [(x["op"], x["args"]) for x in sent(s)] == [("unsubscribe", [t]), ("subscribe", [t])]
    ev = s.on_frame(book(t, "snapshot", 200, [["8", "1"]], [["12", "1"]]), False, int(3e9))
    assert ev[0].book.valid and isinstance(ev[1], Resynced)


def test_an_undecodable_push_of_level1_or_an_unknown_book_only_reports():
    s = session("linear", ["bybit.linear:orderbook.1:BTCUSDT", "bybit.linear:orderbook.50:BTCUSDT"])
    s.on_frame(book("orderbook.1.BTCUSDT", "snapshot", 7, [["10", "1"]], [["11", "1"]]), False, 1)
    s.on_frame(book("orderbook.50.BTCUSDT", "snapshot", 7, [["10", "1"]], [["11", "1"]]), False, 1)
    (err,) = s.on_frame(book("orderbook.1.BTCUSDT", "snapshot", 8, [["10", "2"]])[:-20], False, 2)
    assert err.code == "decode" and s.broken() == []  # level 1 pushes full snapshots: the next one is exact
    (err,) = s.on_frame(book("orderbook.50.ETHUSDT", "delta", 8, [["10", "2"]])[:-20], False, 3)
    assert err.code == "decode" and s.broken() == []
    (ev,) = s.on_frame(book("orderbook.50.BTCUSDT", "delta", 8, [["10", "3"]]), False, 4)
    assert ev.book.valid and ev.book.bids == {"10": "3"}
