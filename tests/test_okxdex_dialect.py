"""OKX DEX dialect, sans-I/O: specs, login-first, packing under the per-key connection rule, events."""

from __future__ import annotations

import json

import msgspec
import pytest

from tickwire.credentials import Credentials
from tickwire.decode import decode_lines
from tickwire.model import ConnCount, DexCandle, DexPrice, DexSignal, DexTrade, Notice, VenueError
from tickwire.subscription import SpecError
from tickwire.venues import get_venue, parse
from tickwire.venues.base import SessionOptions
from tickwire.venues.okx_gateway import sign

from .conftest import recorded
from .contract import sends

USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
CRED = Credentials(api_key="dex-key-0000000", secret="dex-secret", passphrase="pp")


def session(specs, cred=CRED):
    s = get_venue("okxdex").new_session("dex", "dex#1", SessionOptions(credentials=cred))
    s.add([parse(x) for x in specs])
    s.start(1_700_000_000 * 10**9)
    return s


def sent(s):
    out = [json.loads(x.payload) for x in sends(s)]
    return out


def test_spec_forms_lower_case_evm_addresses_and_accept_both_candle_spellings():
    p = parse(f"okxdex:price:1/{USDT.upper().replace('0X', '0x')}")
    assert p.params == {"channel": "price", "chainIndex": "1", "tokenContractAddress": USDT}
    assert parse(f"okxdex:candle1m:1/{USDT}").spec == parse(f"okxdex:dex-token-candle1m:1/{USDT}").spec
    assert parse(f"okxdex:candles.1h:1/{USDT}").channel == "dex-token-candle1H"
    assert get_venue("okxdex").url("dex") == "wss://wsdex.okx.com/ws/v6/dex"
    with pytest.raises(SpecError, match="CHAIN_INDEX/TOKEN_ADDRESS"):
        parse("okxdex:price:0xabc")
    with pytest.raises(SpecError, match="unknown channel"):
        parse(f"okxdex:books:1/{USDT}")


def test_login_first_then_one_subscribe_for_all_args():
    specs = [f"okxdex:price:1/0x{i:040x}" for i in range(40)]
    s = session(specs)
    (login,) = sent(s)
    assert login["op"] == "login" and login["args"][0]["sign"] == sign(CRED.secret, "1700000000")
    s.on_frame(b'{"event":"login","code":"0","msg":"","connId":"a"}', False, 2)
    (sub,) = sent(s)
    assert sub["op"] == "subscribe" and len(sub["args"]) == 40


def test_planner_packs_many_streams_on_few_connections():
    v = get_venue("okxdex")
    subs = [parse(f"okxdex:{ch}:1/0x{i:040x}") for i in range(20) for ch in ("price", "candle1m")]
    assert len(v.plan(subs)) == 1
    many = [parse(f"okxdex:price:1/0x{i:040x}") for i in range(3000)]
    assert len(v.plan(many)) == 15
    with pytest.raises(SpecError, match="30 per API key"):
        v.plan([parse(f"okxdex:price:1/0x{i:040x}") for i in range(3200)])


def test_push_frames_become_dex_events():
    s = session([f"okxdex:price:1/{USDT}", f"okxdex:dex-token-candle1m:1/{USDT}", f"okxdex:trades:1/{USDT}",
                 "okxdex:dex-market-new-signal-openapi:1"])
    arg = {"chainIndex": "1", "tokenContractAddress": USDT}
    (p,) = s.on_frame(msgspec.json.encode({"arg": {"channel": "price", **arg},
                                           "data": [{"time": "1716892020000", "price": "1.0001"}]}), False, 1)
    assert isinstance(p, DexPrice) and p.price == "1.0001" and p.token == USDT and p.exch_ns == 1716892020000 * 10**6
    (c,) = s.on_frame(msgspec.json.encode({"arg": {"channel": "dex-token-candle1m", **arg},
                                           "data": [{"ts": "1", "o": "1", "h": "2", "l": "0.5", "c": "1.5",
                                                     "vol": "10", "volUsd": "15", "confirm": "1"}]}), False, 2)
    assert isinstance(c, DexCandle) and c.closed and c.interval == "1m" and c.volume_usd == "15"
    for legs_key in ("changedTokenInfo", "amountExchanged"):
        (t,) = s.on_frame(msgspec.json.encode({"arg": {"channel": "trades", **arg}, "data": [{
            "id": "9", "type": "buy", "price": "1.0", "volume": "500", "time": "5", "txHashUrl": "https://x/tx",
            legs_key: [{"amount": "500", "tokenSymbol": "USDT", "tokenContractAddress": USDT},
                       {"amount": "0.2", "tokenSymbol": "ETH", "tokenContractAddress": "0xeee"}]}]}), False, 3)
        assert isinstance(t, DexTrade) and t.size == "500" and t.side == "buy" and t.volume_usd == "500"
    (sig,) = s.on_frame(msgspec.json.encode({"arg": {"channel": "dex-market-new-signal-openapi", "chainIndex": "1"},
                                             "data": [{"timestamp": "7", "chainIndex": "1", "price": "3"}]}), False, 4)
    assert isinstance(sig, DexSignal) and sig.data["price"] == "3"


def test_conn_count_error_ends_only_that_channel():
    s = session([f"okxdex:price:1/{USDT}", f"okxdex:trades:1/{USDT}"])
    (cc,) = s.on_frame(b'{"event":"channel-conn-count","channel":"price","connCount":"2","connId":"a"}', False, 1)
    assert isinstance(cc, ConnCount) and cc.count == 2
    (err,) = s.on_frame(b'{"event":"channel-conn-count-error","channel":"prices","connCount":"30","connId":"a"}',
                        False, 2)
    assert isinstance(err, VenueError) and err.fatal and err.stream == f"okxdex:price:1/{USDT}"
    assert [st.sub.channel for st in s.streams.values()] == ["trades"]


def test_examples_dex_frames_decode():
    events = list(decode_lines("okxdex", open(recorded("okx_examples.jsonl"), "rb")))
    kinds = {type(e) for e in events}
    assert {DexPrice, DexCandle, Notice, ConnCount} <= kinds


# -- frames that cannot be used (issue 17: each a precise VenueError, never "internal") ------------

def test_conn_count_that_is_not_a_number_is_a_decode_error_naming_the_field():
    s = session([f"okxdex:price:1/{USDT}"])
    for bad, shown in ((b'"1.2.3"', "'1.2.3'"), (b'"-4"', "'-4'"), (b"-4", "-4")):
        (err,) = s.on_frame(b'{"event":"channel-conn-count","channel":"price","connCount":' + bad + b',"connId":"a"}',
                            False, 1)
        assert isinstance(err, VenueError) and err.code == "decode", err
        assert "connCount" in err.msg and shown in err.msg and "integer" in err.msg
    (cc,) = s.on_frame(b'{"event":"channel-conn-count","channel":"price","connCount":"2","connId":"a"}', False, 2)
    assert isinstance(cc, ConnCount) and cc.count == 2


def test_absurdly_deep_nesting_is_a_decode_error():
    s = session([f"okxdex:trades:1/{USDT}"])
    deep = b"[" * 100_000 + b"]" * 100_000
    arg = msgspec.json.encode({"channel": "trades", "chainIndex": "1", "tokenContractAddress": USDT})
    (err,) = s.on_frame(b'{"arg":' + arg + b',"data":' + deep + b"}", False, 1)
    assert isinstance(err, VenueError) and err.code == "decode" and "nested" in err.msg
    (t,) = s.on_frame(b'{"arg":' + arg + b',"data":[{"price":"2","time":"1"}]}', False, 2)
    assert isinstance(t, DexTrade) and t.price == "2"
