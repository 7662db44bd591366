"""BG Exchange V2 dialect, sans-I/O: specs, requests, ping/pong, gzip, seq_id, errors, login, recorded frames."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import zlib

import msgspec
import pytest

from tickwire.credentials import Credentials
from tickwire.decode import decode_lines, frame_of_line
from tickwire.model import (Balance, BookUpdate, Candle, Gap, Order, Resynced, Ticker, Trade, VenueError,
                            to_json)
from tickwire.subscription import SpecError
from tickwire.venues import get_venue, parse
from tickwire.venues.base import CONTROL, REQUEST, SessionOptions

from .conftest import recorded
from .contract import closed_reason, fatal, sends, take

KEY = "HKBGE-6fc437d24902cce8635806b6d79921f2"
SECRET = "43767b4d0c7a29f0e1d4a9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b0506b"
T0 = 1_700_000_000_000_000_000  # ns


def session(specs=(), endpoint="public", start=True, creds=None, now=T0, **extra):
    v = get_venue("bge")
    s = v.new_session(endpoint, "t#1", SessionOptions(timers=v.timers(), credentials=creds, extra=extra))
    s.add([parse(x) for x in specs])
    if start:
        s.start(now)
    return s


def sent(s, kind=None):
    return [json.loads(x.payload) for x in sends(s, kind)]


def frame(obj) -> bytes:
    return msgspec.json.encode(obj)


def book(seq, bids=(), asks=(), product="BTC_USDT", gear="0", id_="1689143926"):
    return frame({"id": id_, "biz": "market", "type": "orderbook",
                  "data": {"seq_id": seq, "bids": list(bids), "asks": list(asks)},
                  "product": product, "interval": gear})


def ack(event, typ, product, interval=None, code=200, status="OK"):
    f = {"biz": "exchange" if typ in ("orders", "assets") else "market", "type": typ, "ts": 1666851880448,
         "code": code, "status": status, "event": event, "product": product}
    if interval is not None:
        f["interval"] = interval
    return frame(f)


# -- specs --------------------------------------------------------------------------------

def test_native_names_and_aliases_resolve_to_the_same_stream():
    assert parse("bge:book:BTC_USDT").spec == parse("bge:orderbook.0:BTC_USDT").spec == "bge:orderbook.0:BTC_USDT"
    assert parse("bge:book.20:BTC_USDT").spec == "bge:orderbook.6:BTC_USDT"
    assert parse("bge.spot:trades:BTC_USDT").spec == parse("bge:fills:BTC_USDT").spec == "bge:fills:BTC_USDT"
    assert parse("bge:candles.15m:BTC_USDT").spec == "bge:candles.15min:BTC_USDT"
    assert parse("bge:candles.1h:BTC_USDT").spec == "bge:candles.60min:BTC_USDT"
    assert parse("bge:candles.4hour:BTC_USDT").channel == "candles.4hour"
    assert parse("bge:tickers:ETH_USDT").spec == "bge:ticker:ETH_USDT"
    assert parse("bge:percent10:BTC_USDT").kind == "book"
    s = parse("bge:orders:ALL")
    assert (s.spec, s.endpoint, s.needs_auth, s.kind) == ("bge:orders:all", "private", True, "orders")
    b = parse("bge:balances:ETH_USDT")
    assert (b.spec, b.endpoint, b.kind) == ("bge:assets:ETH_USDT", "private", "balances")
    t = parse("bge:fills:BTC_USDT")
    assert (t.venue, t.market, t.symbol, t.endpoint, t.needs_auth) == ("bge", "spot", "BTC_USDT", "public", False)


@pytest.mark.parametrize("spec,needle", [
    ("bge:orderbook.12:BTC_USDT", "gears 0..11"),
    ("bge:book.50:BTC_USDT", "150 or 20"),
    ("bge:candles.2h:BTC_USDT", "1min 5min 15min 30min 60min 4hour 1day 1week 1mon"),
    ("bge:candles:BTC_USDT", "candles.I"),
    ("bge:kline:BTC_USDT", "native: orderbook.G"),
    ("bge:fills:btc_usdt", "upper case"),
    ("bge:fills:BTCUSDT", "BASE_QUOTE, e.g. BTC_USDT"),
    ("bge:assets:all", "only for orders"),
    ("bge.linear:fills:BTC_USDT", "one spot market"),
    ("bge:fills", "VENUE[.MARKET]:CHANNEL:SYMBOL"),
])
def test_bad_specs_say_what_is_allowed(spec, needle):
    with pytest.raises(SpecError) as e:
        parse(spec)
    assert needle in str(e.value)


def test_url_default_and_endpoint_override_append_the_v2_path():
    v = get_venue("bge")
    assert v.url("public") == v.url("private") == "wss://ws.bg.exchange/v2/ws"
    assert v.url("public", "ws://127.0.0.1:9000") == "ws://127.0.0.1:9000/v2/ws"
    assert v.url("private", "ws://127.0.0.1:9000/") == "ws://127.0.0.1:9000/v2/ws"
    assert v.url("public", "ws://127.0.0.1:9000/v2/ws") == "ws://127.0.0.1:9000/v2/ws"
    with pytest.raises(ValueError, match="mainnet"):
        v.url("public", None, "testnet")


# -- requests and limits ---------------------------------------------------------------------

def test_subscribe_requests_are_flat_one_per_stream_with_zip_false_by_default():
    s = session(["bge:candles.15min:BTC_USDT", "bge:fills:BTC_USDT", "bge:orderbook.0:BTC_USDT",
                 "bge:percent10:BTC_USDT", "bge:ticker:BTC_USDT"])
    frames = sends(s)
    assert all(k == REQUEST for k, _, _ in frames)
    assert [json.loads(x.payload) for x in frames] == [
        {"event": "sub", "biz": "market", "type": "candles", "product": "BTC_USDT", "interval": "15min", "zip": False},
        {"event": "sub", "biz": "market", "type": "fills", "product": "BTC_USDT", "zip": False},
        {"event": "sub", "biz": "market", "type": "orderbook", "product": "BTC_USDT", "interval": "0", "zip": False},
        {"event": "sub", "biz": "market", "type": "percent10", "product": "BTC_USDT", "zip": False},
        {"event": "sub", "biz": "market", "type": "ticker", "product": "BTC_USDT", "zip": False},
    ]
    s.remove([parse("bge:fills:BTC_USDT")])
    assert sent(s) == [{"event": "unsub", "biz": "market", "type": "fills", "product": "BTC_USDT", "zip": False}]


def test_zip_option_requests_gzip():
    s = session(["bge:ticker:BTC_USDT"], zip=True)
    assert sent(s)[0]["zip"] is True
    assert sent(session(["bge:ticker:BTC_USDT"], zip="false"))[0]["zip"] is False


def test_300_products_fit_one_connection_and_the_50_per_second_rule():
    v = get_venue("bge")
    assert v.limits.max_msgs_per_s == 50
    subs = [parse(f"bge:orderbook.0:C{i:03d}_USDT") for i in range(300)]
    assert [len(g) for g in v.plan(subs)] == [300]
    s = session([x.spec for x in subs])
    frames = sent(s)
    assert len(frames) == 300 and {f["product"] for f in frames} == {f"C{i:03d}_USDT" for i in range(300)}
    # the engine sends REQUESTs at 40/s (20% of 50/s kept for pongs): 7.5 s < the 30 s window
    assert len(frames) / (0.8 * v.limits.max_msgs_per_s) < 30
    assert [len(g) for g in v.plan([parse(f"bge:fills:C{i:04d}_USDT") for i in range(1000)])] == [400, 400, 200]


# -- heartbeat -------------------------------------------------------------------------------------

def test_server_ping_is_answered_at_once_with_the_same_value_as_control():
    s = session(["bge:ticker:BTC_USDT"])
    sent(s)
    assert s.client_pings is False
    assert s.on_frame(b'{"ping": 1635065532000}', False, T0 + 1) == []
    assert [(k, json.loads(p)) for k, p, _ in sends(s)] == [(CONTROL, {"pong": 1635065532000})]
    assert s.on_frame(b'{"ping":1635065532001}', False, T0 + 2) == []
    ((kind, payload, _),) = sends(s)
    assert kind == CONTROL and payload == b'{"pong":1635065532001}'


def test_we_never_ping_and_silence_beyond_stale_s_is_a_dead_link():
    v = get_venue("bge")
    assert v.timers().stale_s is not None and 30 < v.timers().stale_s <= 60
    s = session(["bge:ticker:BTC_USDT"])
    sent(s)
    s.on_frame(ack("sub", "ticker", "BTC_USDT"), False, T0)
    for i in range(1, 8):  # server pings every 15 s keep it alive
        now = T0 + int(i * 15e9)
        s.on_frame(frame({"ping": now // 1_000_000}), False, now)
        s.on_timer(now + int(1e9))
        assert [k for k, _, _ in sends(s)] == [CONTROL]  # only the pong, never a ping of ours
        assert closed_reason(s) is None
    s.on_timer(now + int(v.timers().stale_s * 1e9) + 1)
    assert closed_reason(s) and "no frame" in closed_reason(s)


# -- gzip ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pack", [gzip.compress, zlib.compress, lambda b: zlib.compress(b)[2:-4]],
                         ids=["gzip", "zlib", "deflate"])
def test_binary_compressed_frames_are_decoded(pack):
    s = session(["bge:orderbook.0:BTC_USDT"], zip=True)
    sent(s)
    (ev,) = s.on_frame(pack(book(5, [["10", "1"]], [["11", "2"]])), True, T0)
    assert isinstance(ev, BookUpdate) and ev.book.bids == {"10": "1"}
    assert s.on_frame(pack(b'{"ping":1700000000123}'), True, T0) == []
    assert sent(s) == [{"pong": 1700000000123}]


def test_gzip_as_base64_text_and_garbage_binary():
    s = session(["bge:ticker:BTC_USDT"])
    sent(s)
    assert s.on_frame(base64.b64encode(gzip.compress(b'{"ping":7}')), False, T0) == []
    assert sent(s) == [{"pong": 7}]
    (err,) = s.on_frame(b"\x00\x01garbage", True, T0)
    assert isinstance(err, VenueError) and err.code == "decode"
    assert s.on_frame(b'{"ping":8}', False, T0) == [] and sent(s) == [{"pong": 8}]


# -- books and seq_id ------------------------------------------------------------------------------

def test_every_orderbook_push_is_a_full_snapshot_that_resets_the_book():
    s = session(["bge:orderbook.0:BTC_USDT"])
    (a,) = s.on_frame(book(100, [["10", "1"], ["9", "2"]], [["11", "1"]]), False, T0)
    assert a.snapshot and a.book.valid and a.seq == 100 and a.exch_ns == 1689143926 * 10**9
    (b,) = s.on_frame(book(150, [["8", "3"]], []), False, T0 + 1)
    assert b.snapshot and b.prev_seq == 100
    assert b.book.bids == {"8": "3"} and b.book.asks == {}
    assert b.book.top(5) == ([("8", "3")], [])


def test_seq_id_forward_jumps_are_normal_duplicates_dropped_regression_is_a_gap_and_resync():
    t = "orderbook.0:BTC_USDT"
    s = session(["bge:orderbook.0:BTC_USDT", "bge:orderbook.0:ETH_USDT"])
    s.on_frame(ack("sub", "orderbook", "BTC_USDT", 0), False, T0)
    sent(s)
    (a,) = s.on_frame(book(100, [["10", "1"]]), False, T0)
    (b,) = s.on_frame(book(5000, [["10", "2"]]), False, T0 + 1)  # global counter: jumps are fine
    assert isinstance(b, BookUpdate) and b.seq == 5000
    assert s.on_frame(book(5000, [["10", "2"]]), False, T0 + 2) == []  # duplicate dropped
    (gap,) = s.on_frame(book(4000, [["10", "9"]]), False, T0 + 3)  # went back: integrity lost
    assert isinstance(gap, Gap) and gap.stream == "bge:orderbook.0:BTC_USDT" and gap.received == 4000
    assert not b.book.valid and b.book.bids == {"10": "2"}
    assert s.on_frame(book(6000, [["10", "7"]]), False, T0 + 4) == []  # ignored until the resync
    s.on_timer(T0 + 5)
    assert [(f["event"], f["product"]) for f in sent(s)] == [("unsub", "BTC_USDT"), ("sub", "BTC_USDT")]
    ev = s.on_frame(book(10, [["12", "1"]], [["13", "1"]]), False, T0 + 6)  # venue reset: accepted afresh
    assert isinstance(ev[0], BookUpdate) and ev[0].snapshot and isinstance(ev[1], Resynced)
    assert ev[0].book.valid and ev[0].book.bids == {"12": "1"}
    (c,) = s.on_frame(book(11, [["12", "2"]]), False, T0 + 7)
    assert c.prev_seq == 10
    assert s.streams["orderbook.0:ETH_USDT"].resyncs == 0 and s.streams[t].resyncs == 1


def test_ticker_and_candle_duplicates_are_dropped():
    s = session(["bge:ticker:BTC_USDT", "bge:candles.15min:BTC_USDT"])
    tick = {"id": "1689144487", "biz": "market", "type": "ticker", "product": "BTC_USDT",
            "data": [{"id": 1689144487, "seq_id": 7, "open": "1", "close": "2", "high": "3", "low": "0.5",
                      "filled_size": "10", "vol": "5", "count": 1, "change": "1", "change_percent": "1"}]}
    (t,) = s.on_frame(frame(tick), False, T0)
    assert isinstance(t, Ticker) and (t.last, t.open_24h, t.volume_24h, t.turnover_24h) == ("2", "1", "5", "10")
    assert t.exch_ns == 1689144487 * 10**9
    assert s.on_frame(frame(tick), False, T0) == []
    candle = {"id": "1689144300", "biz": "market", "type": "candles", "product": "BTC_USDT", "interval": "15min",
              "data": {"id": 1689144300, "open": "1", "close": "2", "high": "3", "low": "0.5",
                       "filled_size": "20", "vol": "4", "count": 3, "seq_id": 9}}
    (c,) = s.on_frame(frame(candle), False, T0)
    assert isinstance(c, Candle) and (c.interval, c.start_ns, c.volume, c.turnover, c.closed) == \
        ("15m", 1689144300 * 10**9, "4", "20", False)
    assert s.on_frame(frame(candle), False, T0) == []


def test_trades_keep_the_venue_strings():
    s = session(["bge:fills:BTC_USDT"])
    evs = s.on_frame(frame({"id": "310529", "biz": "market", "type": "fills", "product": "BTC_USDT",
                            "data": [{"vol": "0.79", "ts": 1689152279117, "price": "3.41340", "direction": "buy",
                                      "id": 310529000},
                                     {"vol": "1.0", "ts": 1689152279118, "price": "3.4", "direction": "sell",
                                      "id": 310529001}]}), False, T0)
    assert [(e.price, e.size, e.side, e.trade_id, e.exch_ns) for e in evs] == [
        ("3.41340", "0.79", "buy", "310529000", 1689152279117 * 10**6),
        ("3.4", "1.0", "sell", "310529001", 1689152279118 * 10**6)]
    assert all(isinstance(e, Trade) and e.stream == "bge:fills:BTC_USDT" for e in evs)


def test_late_data_of_an_unsubscribed_stream_is_ignored():
    s = session(["bge:fills:BTC_USDT"])
    assert s.on_frame(book(1, [["1", "1"]], product="ETH_USDT"), False, T0) == []


# -- errors --------------------------------------------------------------------------------------------

def test_failed_ack_with_int_code_names_the_request_and_retries_a_transient_failure():
    s = session(["bge:ticker:BTC_USDT", "bge:fills:BTC_USDT"])
    sent(s)
    (err,) = s.on_frame(ack("sub", "fills", "BTC_USDT", code=500, status="FAIL"), False, T0 + 1)
    assert isinstance(err, VenueError) and err.code == "500" and not err.fatal
    assert err.stream == "bge:fills:BTC_USDT" and json.loads(err.request)["type"] == "fills"
    assert "fills:BTC_USDT" not in s.refused
    s.on_timer(T0 + int(0.5e9))
    assert sent(s) == []
    s.on_timer(T0 + int(1.1e9))
    assert sent(s) == [{"event": "sub", "biz": "market", "type": "fills", "product": "BTC_USDT", "zip": False}]


def test_string_code_error_without_echo_is_matched_to_the_oldest_pending_request():
    s = session(["bge:ticker:BTC_USDT", "bge:fills:NOPE_USDT", "bge:fills:ETH_USDT"])
    sent(s)
    s.on_frame(ack("sub", "ticker", "BTC_USDT"), False, T0)
    (err,) = s.on_frame(frame({"event": "sub", "code": "400", "msg": "pair does not exist"}), False, T0 + 1)
    assert isinstance(err, VenueError)
    assert (err.code, err.msg, err.fatal, err.stream) == ("400", "pair does not exist", True, "bge:fills:NOPE_USDT")
    assert json.loads(err.request)["product"] == "NOPE_USDT"
    assert "fills:NOPE_USDT" in s.refused and "fills:NOPE_USDT" not in s.streams
    assert "fills:ETH_USDT" in s.streams and "ticker:BTC_USDT" in s.streams
    assert sent(s) == []  # nothing retried: fatal for that stream only


def test_data_proves_a_subscription_whose_ack_went_missing():
    s = session(["bge:fills:BTC_USDT", "bge:fills:NOPE_USDT"])
    sent(s)
    s.on_frame(frame({"id": "1", "biz": "market", "type": "fills", "product": "BTC_USDT",
                      "data": [{"vol": "1", "ts": 1, "price": "1", "direction": "sell", "id": 1}]}), False, T0)
    (err,) = s.on_frame(frame({"event": "sub", "code": 400, "msg": "no such pair"}), False, T0)
    assert err.stream == "bge:fills:NOPE_USDT" and s.refused == {"fills:NOPE_USDT"}
    assert "fills:BTC_USDT" in s.streams


def test_error_echoing_the_request_is_matched_to_that_request():
    s = session(["bge:ticker:BTC_USDT", "bge:percent10:ETH_USDT"])
    sent(s)
    msg = ('Invalid request: {"event":"sub","biz":"market","type":"percent10","pairCode":"ETH_USDT",'
           '"zip":false}')
    (err,) = s.on_frame(frame({"event": "sub", "code": "400", "msg": msg}), False, T0)
    assert err.code == "400" and err.msg == msg and err.fatal
    assert err.stream == "bge:percent10:ETH_USDT" and '"percent10"' in err.request
    assert s.refused == {"percent10:ETH_USDT"} and "ticker:BTC_USDT" in s.streams


def test_draft_style_error_event_and_malformed_frames_are_reported():
    s = session(["bge:ticker:BTC_USDT"])
    sent(s)
    (err,) = s.on_frame(frame({"event": "error", "code": 400, "msg": "bad"}), False, T0)
    assert err.code == "400" and "ticker" in err.request
    (bad,) = s.on_frame(b"{not json", False, T0)
    assert isinstance(bad, VenueError) and "undecodable" in bad.msg
    (odd,) = s.on_frame(b'{"something":"new"}', False, T0)
    assert odd.code == "unrecognized"
    assert s.on_frame(b'{"something":"new"}', False, T0) == []  # reported once per shape


# -- private: login, assets, orders --------------------------------------------------------------------

def expected_sign(secret: str, ts: int) -> str:
    return base64.b64encode(hmac.new(secret.encode(), str(ts).encode(), hashlib.sha256).digest()).decode()


def test_login_signature_matches_an_independent_hmac_and_the_documented_vector():
    from tickwire.venues.bge.session import sign

    assert sign("test_secret", 1690364037503) == "ZNk8pY6LMZSCYXA8KZ63PnmokszyLiRFHI8jCrrma3g="
    s = session(["bge:orders:all", "bge:assets:ETH_USDT"], endpoint="private",
                creds=Credentials(api_key=KEY, secret=SECRET), now=1690364037503 * 10**6 + 123)
    (login,) = sent(s)  # login first, nothing else until it is acked
    p = login["params"]
    assert login["event"] == "login" and p["type"] == "api" and p["access_key"] == KEY
    assert p["access_timestamp"] == 1690364037503
    assert p["access_sign"] == expected_sign(SECRET, 1690364037503)
    s2 = session([], endpoint="private", creds=Credentials(api_key=KEY, secret="test_secret"),
                 now=1690364037503 * 10**6)
    assert sent(s2)[0]["params"]["access_sign"] == "ZNk8pY6LMZSCYXA8KZ63PnmokszyLiRFHI8jCrrma3g="
    assert s.on_frame(frame({"ts": 1690364037503, "code": 200, "status": "OK", "event": "login"}), False, T0) == []
    assert s.logged_in
    assert sent(s) == [{"event": "sub", "biz": "exchange", "type": "orders", "product": "all", "zip": False},
                       {"event": "sub", "biz": "exchange", "type": "assets", "product": "ETH_USDT", "zip": False}]


def test_refused_login_is_fatal_and_no_secret_leaks_anywhere():
    creds = Credentials(api_key=KEY, secret=SECRET)
    s = session(["bge:orders:all"], endpoint="private", creds=creds)
    signature = sent(s)[0]["params"]["access_sign"]
    echo = f'Invalid request: {{"access_key":"{KEY}","access_sign":"{signature}"}}'
    (err,) = s.on_frame(frame({"event": "login", "code": 40010, "msg": echo}), False, T0)
    assert isinstance(err, VenueError) and err.fatal and err.code == "40010"
    assert fatal(s) is err and fatal(s).code == "40010" and closed_reason(s)
    assert '"access_sign":"***"' in err.request
    (err2,) = s.on_frame(frame({"event": "login", "code": 40001, "msg": "ACCESS_KEY cannot be empty"}), False, T0)
    assert err2.msg == "ACCESS_KEY cannot be empty" and err2.fatal
    texts = [to_json(err).decode(), to_json(err2).decode(), repr(err), repr(s), str(s), repr(s.options),
             repr(creds), closed_reason(s), fatal(s).msg]
    for t in texts:
        for secret in (SECRET, KEY, signature):
            assert secret not in t, t
    assert sends(s) == []


def test_login_system_error_reconnects_without_being_fatal_and_missing_credentials_are_fatal():
    s = session(["bge:orders:all"], endpoint="private", creds=Credentials(api_key=KEY, secret=SECRET))
    sent(s)
    (err,) = s.on_frame(frame({"event": "login", "code": 500, "msg": "busy"}), False, T0)
    assert not err.fatal and fatal(s) is None and closed_reason(s)
    n = session(["bge:orders:all"], endpoint="private", creds=None)
    assert sent(n) == [] and fatal(n) is not None and fatal(n).fatal and closed_reason(n)
    assert "TICKWIRE_BGE_API_KEY" in fatal(n).msg


def test_unanswered_login_kills_the_connection():
    s = session(["bge:orders:all"], endpoint="private", creds=Credentials(api_key=KEY, secret=SECRET))
    s.on_timer(T0 + int(5e9))
    assert closed_reason(s) is None
    s.on_timer(T0 + int(11e9))
    assert closed_reason(s) and "login" in closed_reason(s) and fatal(s) is None


def test_assets_and_orders_become_balance_and_order_events():
    s = session(["bge:orders:all", "bge:assets:ETH_USDT"], endpoint="private",
                creds=Credentials(api_key=KEY, secret=SECRET))
    s.on_frame(frame({"code": 200, "status": "OK", "event": "login", "ts": 1}), False, T0)
    bal = s.on_frame(frame({"biz": "exchange", "type": "assets", "product": "ETH_USDT",
                            "data": [{"currency": "USDT", "available": "999970.5238", "hold": "29.4762"}]}), False, T0)
    assert [(b.currency, b.available, b.frozen, b.total, b.symbol) for b in bal] == [
        ("USDT", "999970.5238", "29.4762", "1000000.0000", "ETH_USDT")]
    assert isinstance(bal[0], Balance) and bal[0].stream == "bge:assets:ETH_USDT"
    order = {"order_id": "179577241915696235", "product": "BTC_USDT", "side": "buy", "price": "3.53340000",
             "size": "1.00000000", "filled_amount": "0.25000000", "funds": "1.00000000",
             "filled_size": "0.88335000", "type": "limit", "status": "2", "client_oid": "abc"}
    for product in ("all", "BTC_USDT"):  # pushes for an `all` subscription, either way they are labelled
        (o,) = s.on_frame(frame({"biz": "exchange", "type": "orders", "product": product, "data": [order]}), False, T0)
        assert isinstance(o, Order) and o.stream == "bge:orders:all"
        assert (o.order_id, o.symbol, o.side, o.order_type, o.status, o.price, o.size, o.filled_size,
                o.client_order_id) == ("179577241915696235", "BTC_USDT", "buy", "limit", "partially_filled",
                                       "3.53340000", "1.00000000", "0.25000000", "abc")
        assert o.raw["status"] == "2"


# -- recorded frames (conformance) ------------------------------------------------------------------------

def test_every_server_frame_in_the_examples_is_understood():
    path = recorded("bge_examples.jsonl")
    s = get_venue("bge").decoder("public")
    errors: list[tuple[dict, VenueError]] = []
    kinds = set()
    n = 0
    for line in open(path, "rb"):
        wrapped = json.loads(line)
        if wrapped["direction"] != "server->client":
            continue
        n += 1
        events = s.on_frame(frame_of_line(line), False, T0)
        take(s)
        kinds |= {type(e) for e in events}
        if events:
            for e in events:
                if isinstance(e, VenueError):
                    errors.append((wrapped["frame"], e))
        else:
            assert s.last_kind in ("ping", "ack", "login"), (s.last_kind, wrapped)
    assert n == 25
    assert {Trade, Ticker, BookUpdate, Candle, Balance, Order} <= kinds
    # exactly the documented error replies, carrying the venue's own code and message
    assert len(errors) == 3
    for f, e in errors:
        assert e.code == str(f["code"]) and e.venue == "bge"
        assert e.msg == f.get("msg", e.msg) and e.msg
        assert "code" in f and f["code"] not in (200, "200")
    assert {e.code for _, e in errors} == {"400", "40001", "500"}


def test_decode_cli_path_rebuilds_books_exactly():
    path = recorded("bge_examples.jsonl")
    events = list(decode_lines("bge", open(path, "rb")))
    books = [e for e in events if isinstance(e, BookUpdate)]
    first = books[0]
    assert first.stream == "bge:orderbook.0:BTC_USDT" and first.seq == 112588640
    assert first.book.top(2) == ([("3.7366", "0.66"), ("3.6866", "0.98")], [("3.9966", "0.9")])
    v1 = books[-1]  # the deprecated V1 orderBook example: numeric levels keep their exact digits
    assert v1.bids[0] == ("3781.85", "0.30656") and v1.book.best_ask() == ("3835", "0.19948")
    assert not [e for e in events if isinstance(e, Gap)]


# -- frames that cannot be used (issue 17: each a precise VenueError, never "internal") ------------

def test_absurdly_deep_nesting_is_a_decode_error():
    s = session(["bge:fills:BTC_USDT"])
    sent(s)
    deep = b"[" * 100_000 + b"]" * 100_000
    for f in (b'{"ping":' + deep + b"}", b'{"biz":"market","type":"fills","product":"BTC_USDT","data":' + deep + b"}"):
        (err,) = s.on_frame(f, False, T0)
        assert isinstance(err, VenueError) and err.code == "decode" and "nested" in err.msg, err.msg
    assert s.on_frame(b'{"ping":9}', False, T0) == [] and sent(s) == [{"pong": 9}]


def test_a_refusal_quoting_an_absurdly_deep_request_is_still_matched_and_reported():
    s = session(["bge:ticker:BTC_USDT"])
    sent(s)
    msg = "Invalid request: " + '{"a":' * 100_000 + "1" + "}" * 100_000
    (err,) = s.on_frame(frame({"event": "sub", "code": 400, "msg": msg}), False, T0)
    assert err.code == "400" and err.stream == "bge:ticker:BTC_USDT" and err.fatal
