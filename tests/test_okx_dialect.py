"""OKX dialect, sans-I/O: specs and routing, login, acks/errors, notices, books, checksum, recorded frames."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import msgspec
import pytest

from tickwire.credentials import Credentials
from tickwire.decode import decode_lines
from tickwire.model import BookUpdate, Candle, ConnCount, Gap, Notice, Resynced, Ticker, Trade, VenueError
from tickwire.subscription import SpecError
from tickwire.venues import get_venue, parse
from tickwire.venues.base import Send, SessionOptions
from tickwire.venues.okx.session import checksum
from tickwire.venues.okx_gateway import sign

from .conftest import recorded
from .contract import FailOver, FetchSnapshot, actions, closed_reason, fatal, sends, take

CRED = Credentials(api_key="key-1234567890", secret="example-secret-key", passphrase="pass-phrase")


def session(endpoint="public", specs=(), cred=None, **extra):
    v = get_venue("okx")
    s = v.new_session(endpoint, "okx#1", SessionOptions(credentials=cred, extra=extra))
    s.add([parse(x) for x in specs])
    s.start(1_700_000_000 * 10**9)
    return s


def sent(s):
    out = [p.decode() if p in (b"ping", b"pong") else json.loads(p) for _, p, _ in sends(s)]
    return out


def f(obj) -> bytes:
    return msgspec.json.encode(obj)


def books(inst, action, bids=(), asks=(), seq=None, prev=None, cs=0, channel="books"):
    d = {"asks": [list(a) + ["0", "1"] for a in asks], "bids": [list(b) + ["0", "1"] for b in bids],
         "ts": "1700000000000", "checksum": cs}
    if seq is not None:
        d["seqId"] = seq
    if prev is not None:
        d["prevSeqId"] = prev
    return f({"arg": {"channel": channel, "instId": inst}, "action": action, "data": [d]})


def test_signature_matches_the_verified_vector():
    assert sign("example-secret-key", "1700000000") == "cxLD0hDCxyLX5QJHWNySj4yLUkx9IruuOOLQQdBS+GQ="
    mac = hmac.new(b"s3cr3t", b"1234GET/users/self/verify", hashlib.sha256).digest()
    assert sign("s3cr3t", "1234") == base64.b64encode(mac).decode()


def test_checksum_matches_the_documented_vectors():
    assert checksum([("42000.5", "1.20"), ("42000", "0.5"), ("41999.9", "3")],
                    [("42001", "0.25"), ("42001.7", "2.001")]) == 556363934
    assert checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]) == -1881014294


def test_channels_are_routed_to_the_endpoint_that_serves_them():
    assert parse("okx:candle1m:BTC-USDT").endpoint == "business"
    assert parse("okx:candles.1h:BTC-USDT").channel == "candle1H"
    assert parse("okx:trades-all:BTC-USDT").endpoint == "business"
    assert parse("okx:books:BTC-USDT").endpoint == "public"
    assert parse("okx:orders:ANY").endpoint == "private" and parse("okx:orders:ANY").needs_auth
    assert parse("okx:books-l2-tbt:BTC-USDT").needs_auth and parse("okx:books-l2-tbt:BTC-USDT").endpoint == "public"
    assert parse("okx:book:BTC-USDT-SWAP").market == "swap"
    assert parse("okx:liquidations:SWAP").params == {"channel": "liquidation-orders", "instType": "SWAP"}
    v = get_venue("okx")
    assert v.url("business") == "wss://ws.okx.com/ws/v5/business"
    assert v.url_with_port(v.url("public", network="demo"), 8443) == "wss://wspap.okx.com:8443/ws/v5/public"
    assert v.url("public", "ws://127.0.0.1:9000") == "ws://127.0.0.1:9000/ws/v5/public"


@pytest.mark.parametrize("spec,needle", [("okx:candle7m:BTC-USDT", "bars: 1s 1m"),
                                         ("okx:nope:BTC-USDT", "unknown channel"),
                                         ("okx:books:btc-usdt", "upper-case")])
def test_bad_specs_say_what_is_allowed(spec, needle):
    with pytest.raises(SpecError) as e:
        parse(spec)
    assert needle in str(e.value)


def test_login_comes_first_then_subscribe_after_the_ack():
    s = session("private", ["okx:orders:ANY"], cred=CRED)
    (login,) = sent(s)
    a = login["args"][0]
    assert login["op"] == "login" and a["timestamp"] == "1700000000"
    assert a["sign"] == sign(CRED.secret, "1700000000") and a["apiKey"] == CRED.api_key
    s.on_frame(f({"event": "login", "code": "0", "msg": "", "connId": "a4d3ae55"}), False, 2)
    (sub,) = sent(s)
    assert sub["op"] == "subscribe" and sub["args"] == [{"channel": "orders", "instType": "ANY"}]


def test_login_failure_is_fatal_and_never_shows_secrets():
    s = session("private", ["okx:orders:ANY"], cred=CRED)
    sent(s)
    (err,) = s.on_frame(f({"event": "error", "code": "60009", "msg": "Login failed.", "connId": "x"}), False, 2)
    assert isinstance(err, VenueError) and err.fatal and err.code == "60009" and "Login failed" in err.msg
    assert fatal(s) is err and closed_reason(s)
    text = repr(err) + repr(s.options) + repr(CRED) + str(CRED)
    assert CRED.secret not in text and CRED.passphrase not in text and CRED.api_key not in text


def test_login_without_credentials_is_a_clear_fatal_error():
    s = session("public", ["okx:books-l2-tbt:BTC-USDT"])
    assert fatal(s) is not None and "TICKWIRE_OKX_API_KEY" in fatal(s).msg


def test_ping_only_after_silence_and_pong_is_recognised():
    s = session("public", ["okx:tickers:BTC-USDT"])
    sent(s)
    t0 = s.started_ns
    s.on_frame(f({"event": "subscribe", "arg": {"channel": "tickers", "instId": "BTC-USDT"}}), False, t0 + 1)
    s.on_timer(t0 + int(19e9))
    assert sent(s) == []
    s.on_timer(t0 + int(21e9))
    assert sent(s) == ["ping"]
    assert s.on_frame(b"pong", False, t0 + int(21.5e9)) == []
    assert not s.pong_pending and s.rtt_ns == int(0.5e9) - (int(21e9) - int(21e9))


def test_error_for_a_batch_retries_each_arg_alone_then_refuses_only_the_bad_one():
    s = session("public", ["okx:tickers:BTC-USDT", "okx:tickers:NOPE-USDT"])
    (req,) = sent(s)
    (info,) = s.on_frame(f({"id": req["id"], "event": "error", "code": "60018", "msg": "doesn't exist"}), False, 2)
    assert not info.fatal
    singles = sent(s)
    assert [x["args"] for x in singles] == [[{"channel": "tickers", "instId": "BTC-USDT"}],
                                            [{"channel": "tickers", "instId": "NOPE-USDT"}]]
    (err,) = s.on_frame(f({"id": singles[1]["id"], "event": "error", "code": "60018",
                           "msg": "Wrong URL or channel:tickers,instId:NOPE-USDT doesn't exist"}), False, 3)
    assert err.fatal and err.stream == "okx:tickers:NOPE-USDT" and err.code == "60018"
    assert "NOPE-USDT" in err.request and "tickers:NOPE-USDT" in s.refused


def test_too_frequent_slows_down_instead_of_hammering():
    s = session("public", ["okx:tickers:BTC-USDT"])
    (req,) = sent(s)
    (err,) = s.on_frame(f({"id": req["id"], "event": "error", "code": "60014", "msg": "Requests too frequent."}), False, 10)
    assert not err.fatal and "retrying in 1s" in err.msg
    s.on_timer(10 + int(0.5e9))
    assert sent(s) == []
    s.on_timer(10 + int(1.1e9))
    assert [x["op"] for x in sent(s)] == ["subscribe"]  # it was refused: nothing to unsubscribe


def test_notice_and_conn_count_events():
    s = session("private", ["okx:orders:ANY"], cred=CRED)
    (n,) = s.on_frame(f({"event": "notice", "code": "64008", "msg": "upgrade", "connId": "a"}), False, 5)
    assert isinstance(n, Notice) and n.code == "64008" and [a.notice_ns for a in actions(s, FailOver)] == [n.recv_ns]
    (c,) = s.on_frame(f({"event": "channel-conn-count", "channel": "orders", "connCount": "2", "connId": "a"}), False, 6)
    assert isinstance(c, ConnCount) and c.count == 2 and c.channel == "orders"
    (e,) = s.on_frame(f({"event": "channel-conn-count-error", "channel": "orders", "connCount": "30",
                         "connId": "a"}), False, 7)
    assert e.fatal and e.stream == "okx:orders:ANY" and "okx:orders:ANY" not in [st.sub.spec for st in s.streams.values()]


def test_seq_chain_keepalive_reset_and_gap():
    s = session("public", ["okx:books:BTC-USDT"])
    sent(s)
    (a,) = s.on_frame(books("BTC-USDT", "snapshot", [("10", "1")], [("11", "1")], seq=10, prev=-1), False, 1)
    assert a.snapshot and a.prev_seq == -1 and a.seq == 10
    (b,) = s.on_frame(books("BTC-USDT", "update", [("10", "2")], seq=15, prev=10), False, 2)
    assert b.book.bids == {"10": "2"} and b.prev_seq == 10
    assert s.on_frame(books("BTC-USDT", "update", seq=15, prev=15), False, 3) == []  # keepalive
    (c,) = s.on_frame(books("BTC-USDT", "update", [("9", "1")], seq=3, prev=15), False, 4)  # reset
    assert c.seq == 3 and c.book.valid
    (d,) = s.on_frame(books("BTC-USDT", "update", asks=[("12", "1")], seq=5, prev=3), False, 5)
    assert d.book.asks == {"11": "1", "12": "1"}
    (g,) = s.on_frame(books("BTC-USDT", "update", asks=[("13", "1")], seq=9, prev=7), False, 6)
    assert isinstance(g, Gap) and not d.book.valid
    s.on_timer(7)
    assert [(x["op"], x["args"]) for x in sent(s)] == [("unsubscribe", [{"channel": "books", "instId": "BTC-USDT"}]),
                                                       ("subscribe", [{"channel": "books", "instId": "BTC-USDT"}])]
    ev = s.on_frame(books("BTC-USDT", "snapshot", [("8", "1")], [("14", "1")], seq=100, prev=-1), False, 8)
    assert ev[0].book.valid and isinstance(ev[1], Resynced)


def test_book_update_with_an_odd_ts_still_applies_with_no_exchange_time():
    s = session("public", ["okx:books:BTC-USDT"])
    (a,) = s.on_frame(books("BTC-USDT", "snapshot", [("10", "1")], [("11", "1")], seq=10, prev=-1), False, 1)
    assert a.exch_ns == 1_700_000_000_000 * 10**6
    odd = books("BTC-USDT", "update", [("10", "2")], seq=11, prev=10).replace(b'"ts":"1700000000000"', b'"ts":""')
    (b,) = s.on_frame(odd, False, 2)  # not the hot path's shape: the generic path takes it
    assert isinstance(b, BookUpdate) and b.exch_ns == 0 and b.book.bids == {"10": "2"} and b.seq == 11


def test_nonzero_checksum_is_verified_and_zero_is_skipped():
    s = session("public", ["okx:books:BTC-USDT"])
    good = checksum([("10", "1")], [("11", "1")])
    (a,) = s.on_frame(books("BTC-USDT", "snapshot", [("10", "1")], [("11", "1")], seq=1, prev=-1, cs=good), False, 1)
    assert isinstance(a, BookUpdate)
    (b,) = s.on_frame(books("BTC-USDT", "update", [("10", "5")], seq=2, prev=1, cs=0), False, 2)
    assert isinstance(b, BookUpdate)
    (g,) = s.on_frame(books("BTC-USDT", "update", [("10", "6")], seq=3, prev=2, cs=12345), False, 3)
    assert isinstance(g, Gap) and "checksum" in g.reason


def test_no_ws_snapshot_buffers_deltas_and_aligns_a_rest_snapshot():
    s = session("public", ["okx:books:BTC-USDT"], snapshot_wait_s=0.5)
    t = s.started_ns
    for seq in (105, 110, 120):
        assert s.on_frame(books("BTC-USDT", "update", [(str(seq), "1")], seq=seq, prev=seq - 5 if seq != 120 else 110),
                          False, t + seq) == []
    s.on_timer(t + int(1e9))
    (req,) = actions(s, FetchSnapshot)
    body = {"code": "0", "msg": "", "data": [{"bids": [["100", "1", "0", "1"], ["105", "1", "0", "1"]],
                                              "asks": [["200", "1", "0", "1"]], "ts": "1", "seqId": 105}]}
    assert req.path == "/api/v5/market/books?instId=BTC-USDT&sz=400&source=0"
    ev = s.on_rest_snapshot(req.topic, body, t + int(2e9))
    assert [type(e) for e in ev] == [BookUpdate, BookUpdate, BookUpdate]
    assert ev[0].snapshot and ev[1].prev_seq == 105 and ev[2].seq == 120
    assert ev[-1].book.bids == {"100": "1", "105": "1", "110": "1", "120": "1"} and ev[-1].book.valid


def test_binary_raw_deflate_frames_are_inflated():
    import zlib

    s = session("public", ["okx:trades:BTC-USDT"])
    frame = f({"arg": {"channel": "trades", "instId": "BTC-USDT"},
               "data": [{"instId": "BTC-USDT", "tradeId": "1", "px": "1.50", "sz": "2", "side": "buy", "ts": "5"}]})
    c = zlib.compressobj(wbits=-15)
    (t,) = s.on_frame(c.compress(frame) + c.flush(), True, 1)
    assert isinstance(t, Trade) and t.price == "1.50"
    c = zlib.compressobj(wbits=-15)
    assert s.on_frame(c.compress(b"pong") + c.flush(), True, 2) == []


# -- recorded frames ----------------------------------------------------------------------

def test_all_290_legacy_checksums_verify_and_a_tampered_size_fails():
    path = recorded("okx_books_cryptofeed.jsonl")
    lines = open(path, "rb").read().splitlines()
    events = list(decode_lines("okx", lines))
    updates = [e for e in events if isinstance(e, BookUpdate)]
    assert len(updates) == 290 and not [e for e in events if isinstance(e, (Gap, VenueError))]
    # final books rebuilt independently from the raw frames equal the maintained ones
    raw: dict[str, dict[str, dict[str, str]]] = {}
    for line in lines:
        m = json.loads(line)
        if "data" not in m:
            continue
        inst = m["arg"]["instId"]
        if m["action"] == "snapshot":
            raw[inst] = {"bids": {}, "asks": {}}
        for side in ("bids", "asks"):
            for px, sz, *_ in m["data"][0][side]:
                raw[inst][side].pop(px, None) if sz == "0" else raw[inst][side].__setitem__(px, sz)
    last = {e.symbol: e.book for e in updates}
    for inst, b in raw.items():
        assert last[inst].bids == b["bids"] and last[inst].asks == b["asks"]
    # tamper with one size in one update: its checksum must fail
    i = next(i for i, ln in enumerate(lines) if b'"update"' in ln)
    m = json.loads(lines[i])
    px, sz, *rest = m["data"][0]["bids"][0] if m["data"][0]["bids"] else m["data"][0]["asks"][0]
    side = "bids" if m["data"][0]["bids"] else "asks"
    m["data"][0][side][0] = [px, str(int(float(sz)) + 7) if sz != "0" else "7", *rest]
    tampered = lines[:i] + [json.dumps(m).encode()] + lines[i + 1:]
    gaps = [e for e in decode_lines("okx", tampered) if isinstance(e, Gap)]
    assert gaps and "checksum" in gaps[0].reason


@pytest.mark.parametrize("name,kinds", [("okx_trades_cryptofeed.jsonl", {Trade}), ("okx_tickers_cryptofeed.jsonl", {Ticker}),
                                        ("okx_books5_ccxt.jsonl", {BookUpdate}), ("okx_trades_ccxt.jsonl", {Trade}),
                                        ("okx_tickers_ccxt.jsonl", {Ticker})])
def test_recorded_files_decode(name, kinds):
    events = list(decode_lines("okx", open(recorded(name), "rb")))
    assert events and {type(e) for e in events} == kinds


def test_examples_every_server_frame_is_understood():
    events = list(decode_lines("okx", open(recorded("okx_examples.jsonl"), "rb")))
    kinds = {type(e) for e in events}
    assert {BookUpdate, Ticker, Trade, Candle, Notice, ConnCount} <= kinds
    errors = sorted(e.code for e in events if isinstance(e, VenueError))
    # the documented error replies, plus the textual close-frame description line
    assert errors == ["60009", "60012", "channel-conn-count-error", "decode"]


# -- frames that cannot be used (issue 17: each a precise VenueError, never "internal") ------------

DEEP = b"[" * 100_000 + b"]" * 100_000  # far beyond any decoder's recursion limit


def test_conn_count_that_is_not_a_number_is_a_decode_error_naming_the_field():
    s = session("private", ["okx:orders:ANY"], cred=CRED)
    (err,) = s.on_frame(f({"event": "channel-conn-count", "channel": "orders", "connCount": "1.2.3",
                           "connId": "a"}), False, 6)
    assert isinstance(err, VenueError) and err.code == "decode"
    assert "connCount" in err.msg and "'1.2.3'" in err.msg and "integer" in err.msg and "\n" not in err.msg
    (c,) = s.on_frame(f({"event": "channel-conn-count", "channel": "orders", "connCount": "2", "connId": "a"}), False, 7)
    assert isinstance(c, ConnCount) and c.count == 2


def test_account_details_that_are_not_objects_are_reported_and_the_good_ones_delivered():
    from tickwire.model import Balance

    s = session("private", ["okx:account:ANY"], cred=CRED)
    push = {"arg": {"channel": "account", "ccy": "ANY", "uid": "1"},
            "data": [{"uTime": "1700000000000", "details": ["junk", {"ccy": "USDT", "eq": "5", "availBal": "4"}]}]}
    err, bal = s.on_frame(f(push), False, 6)
    assert isinstance(err, VenueError) and err.code == "decode" and err.stream == "okx:account:ANY"
    assert "details[0]" in err.msg and "'junk'" in err.msg and "object" in err.msg
    assert isinstance(bal, Balance) and (bal.currency, bal.total) == ("USDT", "5")
    (err,) = s.on_frame(f(dict(push, data=[{"uTime": "1", "details": "abc"}])), False, 7)
    assert err.code == "decode" and "details" in err.msg and "'abc'" in err.msg and "list" in err.msg
    (bal,) = s.on_frame(f(dict(push, data=[{"uTime": "1", "details": [{"ccy": "BTC", "eq": "1"}]}])), False, 8)
    assert isinstance(bal, Balance) and bal.currency == "BTC"


def test_absurdly_deep_nesting_is_a_decode_error():
    s = session("public", ["okx:tickers:BTC-USDT"])
    for frame in (b'{"x":' + DEEP + b"}", b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":' + DEEP + b"}",
                  b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[' + DEEP + b"]}"):
        (err,) = s.on_frame(frame, False, 2)
        assert isinstance(err, VenueError) and err.code == "decode" and "nested" in err.msg, err.msg
    (t,) = s.on_frame(f({"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": [{"last": "1"}]}), False, 3)
    assert isinstance(t, Ticker) and t.last == "1"


@pytest.mark.parametrize("broken", [
    lambda good: good[:-30],                                         # truncated: not JSON at all
    lambda good: good[:-2] + b"," + DEEP + b"]}",                        # valid JSON, nested too deep
    lambda good: good.replace(b'"seqId":11', b'"seqId":"eleven"'),  # the envelope decodes, its data does not
], ids=["truncated", "deep", "bad-type"])
def test_an_undecodable_delta_of_a_book_breaks_it_at_once(broken):
    s = session("public", ["okx:books:BTC-USDT"])
    sent(s)
    s.on_frame(books("BTC-USDT", "snapshot", [("10", "1")], [("11", "1")], seq=10, prev=-1), False, 1)
    err, gap = s.on_frame(broken(books("BTC-USDT", "update", [("10", "2")], seq=11, prev=10)), False, 2)
    assert isinstance(err, VenueError) and err.code == "decode" and err.stream == "okx:books:BTC-USDT"
    assert isinstance(gap, Gap) and gap.stream == "okx:books:BTC-USDT" and s.broken() == ["okx:books:BTC-USDT"]
    assert not s.books()["okx:books:BTC-USDT"].valid
    s.on_timer(int(2e9))
    assert [x["op"] for x in sent(s)] == ["unsubscribe", "subscribe"]
    ev = s.on_frame(books("BTC-USDT", "snapshot", [("9", "1")], [("12", "1")], seq=20, prev=-1), False, int(3e9))
    assert ev[0].book.valid and isinstance(ev[1], Resynced)


def test_an_undecodable_push_of_a_snapshot_book_or_an_unknown_one_only_reports():
    s = session("public", ["okx:books5:BTC-USDT", "okx:books:BTC-USDT"])
    s.on_frame(books("BTC-USDT", "snapshot", [("10", "1")], [("11", "1")], channel="books5"), False, 1)
    s.on_frame(books("BTC-USDT", "snapshot", [("10", "1")], [("11", "1")], seq=10, prev=-1), False, 1)
    (err,) = s.on_frame(books("BTC-USDT", "snapshot", [("10", "2")], channel="books5")[:-30], False, 2)
    assert err.code == "decode" and s.broken() == []  # every books5 push is a full book: the next one is exact
    (err,) = s.on_frame(books("ETH-USDT", "update", [("10", "2")], seq=11, prev=10)[:-30], False, 3)
    assert err.code == "decode" and s.broken() == []
    (ev,) = s.on_frame(books("BTC-USDT", "update", [("10", "3")], seq=11, prev=10), False, 4)
    assert ev.book.valid and ev.book.bids == {"10": "3"}


def test_a_huge_venue_text_makes_a_short_error_message():
    """A refusal's text, or a connCount, of any size gives a message of bounded size."""
    s = session(specs=["okx:books:BTC-USDT"])
    huge = "x" * 100_000
    (err,) = s.on_frame(json.dumps({"event": "error", "code": "60012", "msg": huge}).encode(), False, 2)
    assert err.code == "60012" and len(err.msg) < 600 and "100,000 characters" in err.msg
    (cc,) = s.on_frame(json.dumps({"event": "channel-conn-count-error", "channel": "books",
                                   "connCount": "9" * 5000}).encode(), False, 2)
    assert cc.code == "channel-conn-count-error" and len(cc.msg) < 300


def test_a_subscribe_never_answered_is_sent_again_and_reported():
    """No ack and no data for a subscribe (the answer lost, or unreadable): the stream was
    silently dead for the life of the connection. After request_timeout_s it is reported and
    subscribed again; a stream whose data flows counts as answered."""
    t0 = 1_700_000_000 * 10**9
    s = session(specs=["okx:trades:BTC-USDT", "okx:books:ETH-USDT"])
    assert [x["op"] for x in sent(s)] == ["subscribe"]
    s.on_timer(t0 + 10**8)  # the engine's first tick (the timeout counts from the tick that sees a request)
    s.on_frame(f({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [
        {"instId": "BTC-USDT", "tradeId": "1", "px": "1", "sz": "1", "side": "buy", "ts": "1700000000000"}]}),
        False, t0 + 10**9)
    take(s)
    s.on_timer(t0 + 20 * 10**9)
    assert [x for x in sent(s) if x != "ping"] == [] and not [e for e in take(s) if isinstance(e, VenueError)]
    s.on_timer(t0 + 31 * 10**9)
    out = take(s)
    (err,) = [e for e in out if isinstance(e, VenueError)]
    assert err.code == "no-answer" and "books:ETH-USDT" in err.msg and "trades" not in err.msg
    s.on_timer(t0 + 33 * 10**9)  # again after the stream's backoff (1 s at first)
    again = [json.loads(x.payload) for x in take(s) if isinstance(x, Send) and x.payload not in (b"ping",)]
    assert [(x["op"], x["args"]) for x in again] == [
        ("unsubscribe", [{"channel": "books", "instId": "ETH-USDT"}]),
        ("subscribe", [{"channel": "books", "instId": "ETH-USDT"}])]
    # answered this time: nothing more
    s.on_frame(f({"event": "subscribe", "arg": {"channel": "books", "instId": "ETH-USDT"}, "connId": "x"}), False,
               t0 + 34 * 10**9)
    take(s)
    s.on_timer(t0 + 70 * 10**9)
    assert not [e for e in take(s) if isinstance(e, VenueError) and e.code == "no-answer"]
