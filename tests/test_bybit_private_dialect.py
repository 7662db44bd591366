"""Bybit v5 private streams, sans-I/O: specs, auth and its ordering, refusals, the planner's
split of all-in-one and categorised topics, pushes -> Order/Fill/Position/Balance/Greeks,
execution dedup, recorded frames."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import msgspec
import pytest

from tickwire.credentials import Credentials
from tickwire.decode import decode_lines
from tickwire.model import Balance, Fill, Greeks, Order, Position, VenueError
from tickwire.options import OptionError
from tickwire.subscription import SpecError
from tickwire.venues import get_venue, parse
from tickwire.venues.base import SessionOptions
from tickwire.venues.bybit import max_active_time
from tickwire.venues.bybit.session import sign

from .conftest import recorded
from .contract import closed_reason, events, fatal, sends

CRED = Credentials(api_key="bybit-key-0123456789", secret="bybit-secret-do-not-show")
NOW = 1_700_000_000 * 10**9
ALL = ["bybit:order:ANY", "bybit:execution:ANY", "bybit:position:ANY", "bybit:wallet:ANY"]


def session(specs=ALL, cred=CRED, **extra):
    s = get_venue("bybit").new_session("private", "bybit/private#1", SessionOptions(credentials=cred, extra=extra))
    s.add([parse(x) for x in specs])
    s.start(NOW)
    return s


def sent(s):
    return [json.loads(x.payload) for x in sends(s)]


def f(obj) -> bytes:
    return msgspec.json.encode(obj)


AUTH_OK = {"success": True, "ret_msg": "", "op": "auth", "conn_id": "cejreaspqfh3sjdnldmg-p"}


def logged_in(specs=ALL, **kw):
    s = session(specs, **kw)
    sent(s)
    assert s.on_frame(f(AUTH_OK), False, NOW + 1) == []
    return s


def push(topic, items, creation=1774779351206, **kw):
    return f({"id": f"140894896_{topic}_1", "topic": topic, "creationTime": creation, "data": items, **kw})


# -- signature and specs ------------------------------------------------------------------------

def test_signature_matches_the_test_vector():
    # bybit.md §4.1: secret test_secret, expires 1662350400000
    assert sign("test_secret", 1662350400000) == "dad2d67a66c9ee401d2e6e7bf26ebd10eb1026db8a703bf3139c6950ce11a5c6"
    want = hmac.new(b"s3cr3t", b"GET/realtime1234", hashlib.sha256).hexdigest()
    assert sign("s3cr3t", "1234") == want


def test_private_specs_in_the_okx_style_route_to_the_private_endpoint():
    for spec, topic, market, kind in [
        ("bybit:order:ANY", "order", "", "orders"),
        ("bybit:orders:any", "order", "", "orders"),
        ("bybit:order.linear:ANY", "order.linear", "linear", "orders"),
        ("bybit.linear:order:ANY", "order.linear", "linear", "orders"),
        ("bybit:execution:ANY", "execution", "", "fills"),
        ("bybit:execution.fast:ANY", "execution.fast", "", "fills"),
        ("bybit:execution.fast.spot:ANY", "execution.fast.spot", "spot", "fills"),
        ("bybit:position.inverse:ANY", "position.inverse", "inverse", "positions"),
        ("bybit:wallet:ANY", "wallet", "", "balances"),
        ("bybit:balances:ANY", "wallet", "", "balances"),
        ("bybit:greeks:ANY", "greeks", "", "greeks"),
    ]:
        sub = parse(spec)
        assert (sub.topic, sub.market, sub.kind, sub.endpoint, sub.needs_auth) == (topic, market, kind, "private", True)
        assert sub.spec == f"bybit:{topic}:ANY" and parse(sub.spec) == sub


@pytest.mark.parametrize("spec,needle", [
    ("bybit:position.spot:ANY", "position has no 'spot' variant; categories: linear, inverse, option"),
    ("bybit.spot:position:ANY", "position has no 'spot' variant"),
    ("bybit:wallet.linear:ANY", "wallet has no per-category variant: write bybit:wallet:ANY"),
    ("bybit:order:BTCUSDT", "take no symbol filter: write bybit:order:ANY"),
    ("bybit.inverse:order.linear:ANY", "contradicts topic order.linear"),
])
def test_bad_private_specs_say_what_is_allowed(spec, needle):
    with pytest.raises(SpecError) as e:
        parse(spec)
    assert needle in str(e.value)


def test_private_urls_per_network_and_max_active_time():
    v = get_venue("bybit")
    assert v.connect_url("private", None, "mainnet", {}) == "wss://stream.bybit.com/v5/private"
    assert v.connect_url("private", None, "testnet", {}) == "wss://stream-testnet.bybit.com/v5/private"
    assert v.connect_url("private", None, "demo", {}) == "wss://stream-demo.bybit.com/v5/private"
    assert v.connect_url("public/linear", None, "demo", {}) == "wss://stream.bybit.com/v5/public/linear"
    assert v.connect_url("private", "ws://127.0.0.1:9", "mainnet", {"max_active_time": "1m"}) == \
        "ws://127.0.0.1:9/v5/private?max_active_time=1m"
    # public connections never carry it
    assert v.connect_url("public/spot", None, "mainnet", {"max_active_time": "1m"}).endswith("/v5/public/spot")
    assert [max_active_time(x) for x in ("30s", "600s", "1m", "10m", 45, 45.0, " 2m ")] == \
        ["30s", "600s", "1m", "10m", "45s", "45s", "2m"]


@pytest.mark.parametrize("bad", ["29s", "601s", "0m", "11m", "5", "1h", "", "abc", 29, 45.5, True, "-30s"])
def test_a_bad_max_active_time_is_one_line_naming_the_valid_range(bad):
    v = get_venue("bybit")
    opts = {"max_active_time": bad}
    if bad == "":
        assert v.check_options(opts) == opts  # empty: not set
        return
    with pytest.raises(OptionError) as e:
        v.check_options(opts)
    text = str(e.value)
    assert "\n" not in text and "bybit.max_active_time" in text and "30s … 600s, or 1m … 10m" in text


def test_unknown_venue_options_are_refused_with_the_valid_ones():
    with pytest.raises(OptionError, match="max_active_time"):
        get_venue("bybit").check_options({"max_activ_time": "1m"})
    with pytest.raises(OptionError, match="auth_expires_s"):
        get_venue("bybit").check_options({"auth_expires_s": 0})


async def test_a_bad_venue_option_stops_the_feed_before_anything_connects():
    import tickwire

    with pytest.raises(OptionError, match="30s … 600s"):
        async with tickwire.stream("bybit:order:ANY", venue_options={"bybit": {"max_active_time": "5s"}},
                                   endpoints={"bybit": "ws://127.0.0.1:9"}):
            pass


# -- auth --------------------------------------------------------------------------------------

def test_auth_goes_first_and_nothing_is_subscribed_before_its_reply():
    s = session()
    (auth,) = sent(s)
    key, expires, sig = auth["args"]
    assert auth["op"] == "auth" and auth["req_id"] and key == CRED.api_key
    assert expires == NOW // 10**6 + 10_000 and sig == sign(CRED.secret, expires)
    # streams added, frames and timers before the reply: still nothing but pings goes out
    s.add([parse("bybit:greeks:ANY")])
    s.on_frame(f({"req_id": "p1", "op": "pong", "args": ["1675418560633"]}), False, NOW + 1)
    for t in range(1, 9):
        s.on_timer(NOW + t * 10**9)
    assert [x for x in sent(s) if x["op"] != "ping"] == []
    s.on_frame(f(AUTH_OK), False, NOW + 9 * 10**9)
    subs = sent(s)
    assert [x["op"] for x in subs] == ["subscribe"]
    assert sorted(subs[0]["args"]) == ["execution", "greeks", "order", "position", "wallet"]


def test_auth_expiry_window_is_a_venue_option():
    s = session(auth_expires_s=30.0)
    (auth,) = sent(s)
    assert auth["args"][1] == NOW // 10**6 + 30_000


def test_no_auth_reply_reconnects():
    s = session()
    s.on_timer(NOW + 11 * 10**9)
    assert "no login reply" in closed_reason(s)


def test_a_new_connection_authenticates_again_then_subscribes_everything_again():
    first = logged_in()
    sent(first)
    v = get_venue("bybit")
    again = v.new_session("private", "bybit/private#1", SessionOptions(credentials=CRED))
    again.add(list(first.streams[t].sub for t in first.streams))
    again.inherit(first)
    again.start(NOW + 5 * 10**9)
    (auth,) = sent(again)
    assert auth["op"] == "auth"
    again.on_frame(f({**AUTH_OK, "req_id": "auth"}), False, NOW + 6 * 10**9)
    (sub,) = sent(again)
    assert sorted(sub["args"]) == ["execution", "order", "position", "wallet"]


@pytest.mark.parametrize("reply,code,text", [
    ({"conn_id": "cldfn8fcgepd64b9hgg0-o8uhe", "op": "auth", "ret_msg": "Params Error", "success": False},
     "auth", "Params Error"),
    ({"retCode": 10004, "retMsg": "Invalid sign", "op": "auth", "connId": "x"}, "10004", "Invalid sign"),
    ({"success": False, "ret_msg": f"error: key {CRED.api_key} sig with {CRED.secret}", "op": "auth"}, "auth",
     "error: key *** sig with ***"),
])
def test_a_refused_login_is_fatal_names_the_key_redacted_and_never_the_secret(reply, code, text, caplog):
    caplog.set_level(logging.DEBUG)
    s = session()
    sent(s)
    (err,) = s.on_frame(f(reply), False, NOW + 1)
    assert isinstance(err, VenueError) and err.fatal and err.venue == "bybit" and err.code == code
    assert text in err.msg and "byb…89" in err.msg and "refused the login" in err.msg
    assert fatal(s) is err and closed_reason(s)
    assert not [x for x in sent(s) if x["op"] == "subscribe"]  # and no retry of anything
    shown = " ".join([repr(err), str(err.request), repr(s.options), repr(CRED), str(CRED), caplog.text,
                      msgspec.json.encode(err).decode()])
    assert CRED.secret not in shown and CRED.api_key not in shown


def test_missing_credentials_is_a_clear_fatal_error():
    s = session(cred=None)
    err = fatal(s)
    assert err is not None and "TICKWIRE_BYBIT_API_KEY" in err.msg and "TICKWIRE_BYBIT_SECRET" in err.msg
    assert "bybit:order:ANY" in err.msg and not sends(s)


def test_credentials_come_from_the_environment_file_or_argument(tmp_path, monkeypatch):
    from tickwire.credentials import load_file, resolve

    monkeypatch.setenv("TICKWIRE_BYBIT_API_KEY", "env-key-123456")
    monkeypatch.setenv("TICKWIRE_BYBIT_SECRET", "env-secret-123456")
    assert resolve("bybit").api_key == "env-key-123456" and resolve("bybit").passphrase == ""
    assert resolve("bybit", {"bybit": {"api_key": "arg-key", "secret": "arg-secret"}}).api_key == "arg-key"
    p = tmp_path / "c.toml"
    p.write_text('[bybit]\napi_key = "file-key"\nsecret = "file-secret"\n')
    assert load_file(str(p))["bybit"].secret == "file-secret"


# -- heartbeat, acks -----------------------------------------------------------------------------

def test_private_heartbeat_every_20s_and_its_pong_shape():
    s = logged_in()
    sent(s)
    s.on_timer(NOW + int(19.9e9))
    assert sent(s) == []
    s.on_timer(NOW + int(20e9))
    (ping,) = sent(s)
    assert ping["op"] == "ping"
    for pong in ({"req_id": "test", "op": "pong", "args": ["1675418560633"], "conn_id": "cfcb4ocsvfriu23r3er0-1b"},
                 {"op": "pong", "args": ["1699766561376"], "conn_id": "cl48jjpqo29jk1nbp4e0-98gm"},
                 {"success": True, "ret_msg": "pong", "conn_id": "x", "op": "ping"}):
        s.pong_pending, s.ping_sent_ns = True, NOW + 100
        assert s.on_frame(f(pong), False, NOW + 300) == []
        assert not s.pong_pending and s.rtt_ns == 200


def test_acks_without_req_id_answer_the_oldest_request():
    s = logged_in(["bybit:order:ANY", "bybit:order.linear:ANY"])
    assert len(s.ledger.requests) == 2
    # real capture: the private subscribe ack carries no req_id (bybit.md §3.1)
    assert s.on_frame(f({"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "cl48jjpqo29jk1nbp4e0-97x2"}),
                      False, NOW + 2) == []
    assert [r.topics for r in s.ledger.requests.values()] == [["order.linear"]]


# -- the planner: all-in-one and categorised topics never share a request --------------------------------

def test_all_in_one_and_categorised_topics_never_share_a_request():
    specs = ["bybit:order:ANY", "bybit:order.linear:ANY", "bybit:execution.spot:ANY", "bybit:execution.fast:ANY",
             "bybit:position:ANY", "bybit:position.option:ANY", "bybit:wallet:ANY", "bybit:greeks:ANY",
             "bybit:execution.fast.inverse:ANY"]
    s = session(specs)
    sent(s)
    s.on_frame(f(AUTH_OK), False, NOW + 1)
    frames = sent(s)
    assert [x["op"] for x in frames] == ["subscribe", "subscribe"]
    whole, split = frames
    assert sorted(whole["args"]) == ["execution.fast", "greeks", "order", "position", "wallet"]
    assert sorted(split["args"]) == ["execution.fast.inverse", "execution.spot", "order.linear", "position.option"]
    # later additions and removals keep the rule
    s.add([parse("bybit:execution:ANY"), parse("bybit:order.spot:ANY")])
    s.remove([parse("bybit:order:ANY"), parse("bybit:order.linear:ANY")])
    later = sent(s)
    assert [(x["op"], x["args"]) for x in later] == [
        ("subscribe", ["execution"]), ("subscribe", ["order.spot"]),
        ("unsubscribe", ["order"]), ("unsubscribe", ["order.linear"]),
    ]


def test_a_batch_refused_without_naming_a_topic_is_asked_for_one_topic_at_a_time():
    s = logged_in(["bybit:order:ANY", "bybit:wallet:ANY"])
    (req,) = sent(s)
    (err,) = s.on_frame(f({"success": False, "ret_msg": "error:all-in-one and categorised topics cannot be mixed",
                           "op": "subscribe", "req_id": req["req_id"]}), False, NOW + 2)
    assert isinstance(err, VenueError) and not err.fatal and "alone" in err.msg
    assert sorted(x["args"][0] for x in sent(s)) == ["order", "wallet"]


def test_a_refusal_naming_its_topic_drops_that_stream_only():
    s = logged_in(["bybit:order:ANY", "bybit:greeks:ANY"])
    (req,) = sent(s)
    (err,) = s.on_frame(f({"success": False, "ret_msg": "error:handler not found,topic:greeks", "op": "subscribe",
                           "req_id": req["req_id"]}), False, NOW + 2)
    assert err.fatal and err.stream == "bybit:greeks:ANY" and "greeks" in s.refused
    (again,) = sent(s)
    assert again["args"] == ["order"]


# -- pushes -> events ----------------------------------------------------------------------------

ORDER = {"category": "linear", "symbol": "BTCPERP", "orderId": "88d84f9a-a6b5-4ff6-b746-1cc9978afca4",
         "orderLinkId": "my-1", "side": "Buy", "orderStatus": "Filled", "cancelType": "UNKNOWN",
         "rejectReason": "EC_NoError", "price": "69795.6", "qty": "0.001", "avgPrice": "66473.5", "cumExecQty": "0.001",
         "orderType": "Market", "createdTime": "1774779351198", "updatedTime": "1774779351201"}


def test_order_pushes_map_to_orders_with_the_native_item_kept():
    s = logged_in()
    (o,) = s.on_frame(push("order", [ORDER]), False, NOW + 5)
    assert isinstance(o, Order)
    assert (o.venue, o.market, o.symbol, o.stream) == ("bybit", "linear", "BTCPERP", "bybit:order:ANY")
    assert (o.order_id, o.client_order_id, o.side, o.order_type, o.status) == (
        ORDER["orderId"], "my-1", "buy", "market", "filled")
    assert (o.price, o.size, o.filled_size, o.avg_price) == ("69795.6", "0.001", "0.001", "66473.5")
    assert o.exch_ns == 1774779351201 * 10**6 and o.recv_ns == NOW + 5 and o.raw == ORDER
    new = dict(ORDER, orderStatus="New", avgPrice="", cumExecQty="0", orderType="Limit")
    (o2,) = s.on_frame(push("order", [new]), False, NOW + 6)
    assert (o2.status, o2.avg_price, o2.order_type) == ("new", None, "limit")
    cancelled = dict(ORDER, orderStatus="Cancelled")
    (o3,) = s.on_frame(push("order", [cancelled]), False, NOW + 7)
    assert o3.status == "canceled"


def test_a_cancel_racing_a_fill_gives_two_filled_orders_both_passed_on():
    s = logged_in()
    race = dict(ORDER, cancelType="CancelByUser", rejectReason="EC_OrigClOrdIDDoesNotExist")
    a, b = s.on_frame(push("order", [ORDER, race]), False, NOW + 5)
    assert a.status == b.status == "filled" and a.order_id == b.order_id and a.filled_size == b.filled_size
    assert b.raw["cancelType"] == "CancelByUser" and b.raw["rejectReason"] == "EC_OrigClOrdIDDoesNotExist"


def execution(exec_id, symbol="BTCUSDT", seq=1, **kw):
    return {"category": "linear", "symbol": symbol, "execId": exec_id, "execPrice": "66473.5", "execQty": "0.001",
            "execType": "Trade", "execFee": "0.0365", "feeCurrency": "USDT", "isMaker": False, "orderId": "o-1",
            "orderLinkId": "", "side": "Sell", "execTime": "1774779351198", "seq": seq, **kw}


def test_executions_map_to_fills_and_are_deduplicated_by_exec_id():
    s = logged_in()
    (fill,) = s.on_frame(push("execution", [execution("e1")]), False, NOW + 5)
    assert isinstance(fill, Fill)
    assert (fill.market, fill.symbol, fill.order_id, fill.trade_id, fill.side, fill.price, fill.size) == (
        "linear", "BTCUSDT", "o-1", "e1", "sell", "66473.5", "0.001")
    assert (fill.fee, fill.fee_ccy, fill.liquidity, fill.exch_ns) == ("0.0365", "USDT", "taker", 1774779351198 * 10**6)
    # the same execution again (alone, or in a later message with a new one): once
    assert s.on_frame(push("execution", [execution("e1")]), False, NOW + 6) == []
    again = s.on_frame(push("execution", [execution("e1"), execution("e2", isMaker=True)]), False, NOW + 7)
    assert [(x.trade_id, x.liquidity) for x in again] == [("e2", "maker")]
    # seq is unique only with the symbol: the same seq on two symbols is two fills
    both = s.on_frame(push("execution", [execution("e3", "BTCUSDT", 7), execution("e4", "ETHUSDT", 7)]), False, NOW + 8)
    assert [x.symbol for x in both] == ["BTCUSDT", "ETHUSDT"]


def test_a_garbled_execution_does_not_hide_its_correct_copy():
    """An execution dropped as garbled (its side not a string) was still remembered by its
    execId, so Bybit's correct re-send of it was suppressed as a duplicate: the fill was lost."""
    s = logged_in()
    (err,) = s.on_frame(push("execution", [execution("e9", side=7)]), False, NOW + 5)
    assert isinstance(err, VenueError) and err.code == "decode"
    (fill,) = s.on_frame(push("execution", [execution("e9")]), False, NOW + 6)
    assert isinstance(fill, Fill) and fill.trade_id == "e9"
    assert s.on_frame(push("execution", [execution("e9")]), False, NOW + 7) == []


def test_dedup_survives_a_reconnect_and_is_per_stream():
    s = logged_in(["bybit:execution:ANY", "bybit:execution.fast:ANY"])
    s.on_frame(push("execution", [execution("e1")]), False, NOW + 5)
    fast = {k: v for k, v in execution("e1").items() if k not in ("execType", "execFee", "feeCurrency")}
    (f1,) = s.on_frame(push("execution.fast", [fast]), False, NOW + 6)  # another stream: its own copy
    assert f1.stream == "bybit:execution.fast:ANY" and f1.fee is None and f1.fee_ccy is None
    again = get_venue("bybit").new_session("private", "bybit/private#1", SessionOptions(credentials=CRED))
    again.add([st.sub for st in s.streams.values()])
    again.inherit(s)
    again.start(NOW + 10)
    again.on_frame(f(AUTH_OK), False, NOW + 11)
    assert again.on_frame(push("execution", [execution("e1")]), False, NOW + 12) == []
    (new,) = again.on_frame(push("execution", [execution("e2")]), False, NOW + 13)
    assert new.trade_id == "e2"


def test_funding_settlements_are_not_fills():
    s = logged_in()
    out = s.on_frame(push("execution", [execution("f1", execType="Funding"), execution("t1")]), False, NOW + 5)
    assert [x.trade_id for x in out] == ["t1"]


def test_positions_wallet_and_greeks():
    s = logged_in(ALL + ["bybit:greeks:ANY"])
    pos = {"positionIdx": 0, "symbol": "BTCPERP", "side": "Buy", "size": "0.001", "entryPrice": "66473.5",
           "unrealisedPnl": "-0.00148", "updatedTime": "1774779351201", "category": "linear", "seq": 37449201146}
    (p,) = s.on_frame(push("position", [pos]), False, NOW + 5)
    assert isinstance(p, Position) and (p.market, p.symbol, p.side, p.size, p.avg_price, p.unrealized_pnl) == (
        "linear", "BTCPERP", "long", "0.001", "66473.5", "-0.00148")
    (flat,) = s.on_frame(push("position", [dict(pos, side="", size="0", entryPrice="0")]), False, NOW + 6)
    assert (flat.side, flat.size, flat.avg_price) == ("", "0", None)
    (short,) = s.on_frame(push("position", [dict(pos, side="Sell")]), False, NOW + 7)
    assert short.side == "short"
    wallet = {"accountType": "UNIFIED", "totalEquity": "10", "coin": [
        {"coin": "USDT", "equity": "9.5", "walletBalance": "10", "availableToWithdraw": "", "locked": "0.5"},
        {"coin": "BTC", "equity": "0.1", "walletBalance": "0.1", "availableToWithdraw": "0.1", "locked": "0"}]}
    usdt, btc = s.on_frame(push("wallet", [wallet], creation=1774779351206), False, NOW + 8)
    assert isinstance(usdt, Balance) and (usdt.symbol, usdt.currency, usdt.total, usdt.available, usdt.frozen) == (
        "USDT", "USDT", "9.5", None, "0.5")
    assert (btc.available, btc.exch_ns) == ("0.1", 1774779351206 * 10**6)
    (g,) = s.on_frame(push("greeks", [{"baseCoin": "ETH", "totalDelta": "0.06", "totalGamma": "-0.00002",
                                       "totalVega": "-0.00016", "totalTheta": "0.0001"}]), False, NOW + 9)
    assert isinstance(g, Greeks) and (g.symbol, g.base_coin, g.delta, g.theta) == ("ETH", "ETH", "0.06", "0.0001")


def test_late_pushes_of_a_left_topic_and_bad_frames():
    s = logged_in(["bybit:order:ANY"])
    assert s.on_frame(push("wallet", [{"coin": []}]), False, NOW + 5) == []
    (err,) = s.on_frame(b"not json", False, NOW + 6)
    assert isinstance(err, VenueError) and err.code == "decode"
    (err,) = s.on_frame(f({"topic": "order", "creationTime": 1, "data": "oops"}), False, NOW + 7)
    assert isinstance(err, VenueError) and err.stream == "bybit:order:ANY"


# -- recorded frames -----------------------------------------------------------------------------

def test_every_private_frame_of_the_examples_is_understood():
    path = recorded("bybit_examples.jsonl")
    evs = list(decode_lines("bybit.private", open(path, "rb")))
    errors = [e for e in evs if isinstance(e, VenueError)]
    # the file's two error replies: the auth failure (line 8) and an unknown public topic (line 20)
    assert len(errors) == 2 and "Params Error" in errors[0].msg and errors[0].fatal
    assert errors[1].msg == "error:handler not found,topic:orderbook.50.NOPEUSDT"
    orders = [e for e in evs if isinstance(e, Order)]
    fills = [e for e in evs if isinstance(e, Fill)]
    positions = [e for e in evs if isinstance(e, Position)]
    balances = [e for e in evs if isinstance(e, Balance)]
    assert [(o.symbol, o.status, o.order_type, o.avg_price) for o in orders] == [
        ("BTCPERP", "filled", "market", "66473.5")]
    assert [(x.stream, x.symbol, x.trade_id, x.price, x.size, x.liquidity, x.fee) for x in fills] == [
        ("bybit:execution.fast:ANY", "BTCPERP", "a7fc9663-3eef-5f52-a500-4d961a86f1bc", "66473.5", "0.001", "taker",
         None),
        ("bybit:execution.spot:ANY", "BTCUSDT", "2100000000047469164", "32635.00", "0.000306", "taker",
         "0.000000306"),
    ]
    assert [(p.symbol, p.side, p.size, p.avg_price) for p in positions] == [("BTCPERP", "long", "0.001", "66473.5")]
    assert [(b.currency, b.total, b.available) for b in balances] == [("USDC", "-0.0679535", None)]
    assert fills[1].market == "spot" and fills[0].usymbol == "BTC/USDC:USDC" and fills[1].usymbol == "BTC/USDT"


# -- items that cannot be used (issue 17: each a precise VenueError, never "internal") -------------

@pytest.mark.parametrize("topic,item,field,shown", [
    ("order", dict(ORDER, orderStatus=1.5), "orderStatus", "1.5"),
    ("order", dict(ORDER, orderType=["Market"]), "orderType", "['Market']"),
    ("order", dict(ORDER, side={"x": 1}), "side", "{'x': 1}"),
    ("execution", execution("e9", side=7), "side", "7"),
    ("position", {"symbol": "BTCUSD", "side": [None], "size": "1", "category": "inverse"}, "side", "[None]"),
], ids=["order-status", "order-type", "order-side", "fill-side", "position-side"])
def test_an_item_whose_text_field_is_not_text_is_reported_and_the_others_delivered(topic, item, field, shown):
    s = logged_in()
    good = {"order": ORDER, "execution": execution("e8"),
            "position": {"symbol": "BTCUSD", "side": "Buy", "size": "1", "category": "inverse"}}[topic]
    err, ev = s.on_frame(push(topic, [item, good]), False, NOW + 5)
    assert isinstance(err, VenueError) and err.code == "decode" and err.stream == f"bybit:{topic}:ANY"
    assert f"{field} {shown}" in err.msg and "string" in err.msg and "\n" not in err.msg, err.msg
    assert isinstance(ev, (Order, Fill, Position)) and ev.side in ("buy", "sell", "long")
    (again,) = s.on_frame(push(topic, [dict(good, execId="e7") if topic == "execution" else good]), False, NOW + 6)
    assert type(again) is type(ev)


def test_wallet_coins_that_are_not_objects_are_reported_and_the_others_delivered():
    s = logged_in()
    wallet = {"accountType": "UNIFIED", "coin": ["USDT", {"coin": "BTC", "equity": "0.1"}]}
    err, btc = s.on_frame(push("wallet", [wallet]), False, NOW + 5)
    assert isinstance(err, VenueError) and err.code == "decode" and err.stream == "bybit:wallet:ANY"
    assert "coin[0] 'USDT'" in err.msg and "object" in err.msg, err.msg
    assert isinstance(btc, Balance) and btc.currency == "BTC"
    (err,) = s.on_frame(push("wallet", [dict(wallet, coin="USDT")]), False, NOW + 6)
    assert err.code == "decode" and "coin 'USDT'" in err.msg and "list" in err.msg, err.msg


def test_absurdly_deep_nesting_is_a_decode_error():
    s = logged_in()
    deep = b"[" * 100_000 + b"]" * 100_000
    (err,) = s.on_frame(b'{"topic":"order","creationTime":1,"data":' + deep + b"}", False, NOW + 5)
    assert isinstance(err, VenueError) and err.code == "decode" and "nested" in err.msg
    (o,) = s.on_frame(push("order", [ORDER]), False, NOW + 6)
    assert isinstance(o, Order)
