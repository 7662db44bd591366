"""The benchmark's generated streams are valid, and the floor client rebuilds their book over loopback."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import streams  # noqa: E402
from bench.clients import floor  # noqa: E402
from bench.server import ServerProcess, encode_chunks  # noqa: E402

BYBIT_PX = re.compile(r"^\d+\.\d0$")  # tick 0.10, two decimals
BYBIT_SZ = re.compile(r"^(0|\d+\.\d{3})$")
OKX_NUM = re.compile(r"^\d+(\.\d+)?$")


@pytest.fixture(scope="module")
def bybit() -> streams.Stream:
    return streams.bybit_orderbook(3000, seed=11)


@pytest.fixture(scope="module")
def okx() -> streams.Stream:
    return streams.okx_books(2000, seed=12)


def test_bybit_orderbook_is_valid(bybit: streams.Stream) -> None:
    frames = [json.loads(f) for f in bybit.frames]
    assert frames[0]["type"] == "snapshot"
    assert all(f["type"] == "delta" for f in frames[1:])
    assert len(frames[0]["data"]["b"]) == len(frames[0]["data"]["a"]) == 50
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    prev_u = None
    for i, f in enumerate(frames):
        assert f["topic"] == "orderbook.50.BTCUSDT"
        assert f["ts"] == streams.TS0 + i
        d = f["data"]
        if prev_u is not None:
            assert d["u"] == prev_u + 1  # strictly +1 per delta
            n = len(d["b"]) + len(d["a"])
            assert 1 <= n <= 6
        prev_u = d["u"]
        # deltas are ordered like snapshots: bids descending, asks ascending
        assert [float(p) for p, _ in d["b"]] == sorted((float(p) for p, _ in d["b"]), reverse=True)
        assert [float(p) for p, _ in d["a"]] == sorted(float(p) for p, _ in d["a"])
        for side, levels in ((bids, d["b"]), (asks, d["a"])):
            for p, s in levels:
                assert BYBIT_PX.match(p) and BYBIT_SZ.match(s), (p, s)
                if s == "0":
                    assert p in side  # deletes only for held levels
                    del side[p]
                else:
                    side[p] = s
        assert len(bids) <= 50 and len(asks) <= 50  # the 50-level window is never exceeded
        assert max(map(float, bids)) < min(map(float, asks))  # never crossed
    assert bids == bybit.expected_bids and asks == bybit.expected_asks
    assert streams.replay_book(bybit) == (bybit.expected_bids, bybit.expected_asks)


def test_okx_books_is_valid(okx: streams.Stream) -> None:
    frames = [json.loads(f) for f in okx.frames]
    assert frames[0]["action"] == "snapshot"
    assert all(f["action"] == "update" for f in frames[1:])
    prev = None
    for i, f in enumerate(frames):
        assert f["arg"] == {"channel": "books", "instId": "BTC-USDT"}
        (d,) = f["data"]
        assert d["checksum"] == 0 and d["ts"] == str(streams.TS0 + i)
        if prev is None:
            assert d["prevSeqId"] == -1
            assert len(d["bids"]) == len(d["asks"]) == 400
        else:
            assert d["prevSeqId"] == prev  # unbroken chain
            assert d["seqId"] > d["prevSeqId"]
        prev = d["seqId"]
        for lvl in d["bids"] + d["asks"]:
            assert len(lvl) == 4 and lvl[2] == "0" and all(isinstance(x, str) for x in lvl)
            assert OKX_NUM.match(lvl[0]) and OKX_NUM.match(lvl[1])
    bids, asks = streams.replay_book(okx)
    assert (bids, asks) == (okx.expected_bids, okx.expected_asks)
    assert len(bids) == len(asks) == 400


def test_trades_and_determinism() -> None:
    t = streams.bybit_trades(500, seed=5)
    msgs = [json.loads(f) for f in t.frames]
    trades = [x for m in msgs for x in m["data"]]
    assert len(trades) == t.expected_trades and trades[-1]["i"] == t.last_trade_id
    assert all(m["topic"] == "publicTrade.BTCUSDT" and m["type"] == "snapshot" for m in msgs)
    assert streams.bybit_trades(500, seed=5).frames == t.frames
    assert streams.bybit_orderbook(200, seed=1).frames == streams.bybit_orderbook(200, seed=1).frames


def test_control_replies(bybit: streams.Stream, okx: streams.Stream) -> None:
    (ack,), sub = bybit.control_replies(b'{"req_id":"7","op":"subscribe","args":["x"]}', "/v5/public/linear", "c1")
    assert sub and json.loads(ack) == {"success": True, "ret_msg": "", "conn_id": "c1", "req_id": "7", "op": "subscribe"}
    (pong,), sub = bybit.control_replies(b'{"op":"ping"}', "/v5/public/linear", "c1")
    assert not sub and json.loads(pong)["ret_msg"] == "pong"
    req = b'{"id":"1","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USDT"}]}'
    acks, sub = okx.control_replies(req, "/ws/v5/public", "c2")
    assert sub and [json.loads(a)["arg"]["channel"] for a in acks] == ["books", "trades"]
    assert json.loads(acks[0])["event"] == "subscribe" and json.loads(acks[0])["connId"] == "c2"
    assert okx.control_replies(b"ping", "/ws/v5/public", "c2") == ([b"pong"], False)


def test_chunks_hold_whole_frames(bybit: streams.Stream) -> None:
    blob = b"".join(encode_chunks(bybit.frames[:500], chunk=4096))
    out, i = [], 0
    while i < len(blob):
        assert blob[i] == 0x81
        n = blob[i + 1]
        i += 2
        if n == 126:
            n, i = int.from_bytes(blob[i:i + 2], "big"), i + 2
        elif n == 127:
            n, i = int.from_bytes(blob[i:i + 8], "big"), i + 8
        out.append(blob[i:i + n])
        i += n
    assert out == bybit.frames[:500]


@pytest.mark.parametrize("key", ["bybit", "okx", "bybit-trades"])
def test_floor_client_over_loopback(key: str) -> None:
    st = streams.GENERATORS[key](2000)
    with ServerProcess(st) as srv:
        path = "/ws/v5/public" if key == "okx" else "/v5/public/linear"
        res = floor.run(srv.url(path), key, st.expected_msgs)
    assert res["msgs"] == st.expected_msgs - 1
    assert res["cpu_s"] > 0 and res["wall_s"] > 0
    if st.kind == "book":
        assert res["final_bids"] == st.expected_bids
        assert res["final_asks"] == st.expected_asks
    else:
        assert res["trades"] == st.expected_trades and res["last_trade_id"] == st.last_trade_id


async def test_server_paths_acks_and_pings() -> None:
    """Unknown paths get 404; after the stream the socket stays open and answers text pings."""
    import asyncio

    from picows import WSError, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    st = streams.okx_books(50, seed=3)

    class Collect(WSListener):
        def __init__(self) -> None:
            self.texts: list[bytes] = []
            self.got = asyncio.Event()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                self.texts.append(frame.get_payload_as_bytes())
                self.got.set()

    async def wait_for(listener: Collect, pred) -> None:  # type: ignore[no-untyped-def]
        while not pred():
            listener.got.clear()
            await asyncio.wait_for(listener.got.wait(), 5)

    with ServerProcess(st) as srv:
        with pytest.raises((WSError, OSError)):
            await ws_connect(Collect, srv.url("/ws/v5/nope"))
        transport, listener = await ws_connect(Collect, srv.url("/ws/v5/public?brokerId=9999"))
        try:
            transport.send(WSMsgType.TEXT, b'{"id":"9","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}')
            await wait_for(listener, lambda: len(listener.texts) >= 1 + len(st.frames))
            ack = json.loads(listener.texts[0])
            assert ack["event"] == "subscribe" and ack["id"] == "9" and ack["arg"]["instId"] == "BTC-USDT"
            assert listener.texts[1:] == st.frames
            transport.send(WSMsgType.TEXT, b"ping")
            await wait_for(listener, lambda: listener.texts[-1] == b"pong")
        finally:
            transport.disconnect()


# -- the latency / scale / record suites' plumbing --------------------------------------------


def test_symbol_and_depth_parameters() -> None:
    s = streams.bybit_orderbook(50, seed=21, symbol="B0001USDT", depth=200)
    first = json.loads(s.frames[0])
    assert first["topic"] == "orderbook.200.B0001USDT" and first["data"]["s"] == "B0001USDT"
    assert len(first["data"]["b"]) == len(first["data"]["a"]) == 200
    assert streams.replay_book(s) == (s.expected_bids, s.expected_asks)
    o = streams.okx_books(20, seed=22, inst="D0001-USDT")
    assert json.loads(o.frames[1])["arg"] == {"channel": "books", "instId": "D0001-USDT"}
    # the throughput streams are unchanged by the new parameters
    assert streams.bybit_orderbook(30).frames == streams.bybit_orderbook(30, 1, "BTCUSDT", 50).frames


def test_pacer_schedule() -> None:
    from bench.pacer import make_books

    spread = make_books(4, rate=400, seconds=1, mode="spread")
    assert spread.rounds == 100 and spread.total == 400 and spread.owner_idx[:6] == [0, 1, 2, 3, 0, 1]
    assert [spread.due_ns(i) for i in range(5)] == [0, 2_500_000, 5_000_000, 7_500_000, 10_000_000]
    burst = make_books(4, rate=400, seconds=1, mode="burst")
    assert [burst.due_ns(i) for i in range(6)] == [0, 0, 0, 0, 10_000_000, 10_000_000]
    # per book: that book's deltas in order, after its snapshot
    b1 = [json.loads(f[f.index(b"{"):]) for f, k in zip(spread.frames, spread.owner_idx) if k == 1]
    assert [m["ts"] for m in b1[:3]] == [streams.TS0 + 1, streams.TS0 + 2, streams.TS0 + 3]
    assert all(m["topic"] == "orderbook.50." + spread.symbols[1] for m in b1)


def test_percentiles() -> None:
    from bench.common import percentiles

    p = percentiles(list(range(1000, 0, -1)))
    assert p["n"] == 1000 and p["p50"] == 500 and p["p99"] == 990 and p["p99.9"] == 999 and p["max"] == 1000


def test_results_sections_are_independent(tmp_path: Path) -> None:
    from bench import results

    out = tmp_path / "RESULTS.md"
    results.update(out, "latency", "## Latency\n\nfirst\n")
    results.update(out, "record", "## Recording\n\nrec\n")
    results.update(out, "latency", "## Latency\n\nsecond\n")
    text = out.read_text()
    assert "second" in text and "first" not in text and "rec" in text
    assert text.count("<!-- bench:latency -->") == 1 and "Not run yet" in text  # throughput, scale
    assert text.index("bench:latency") < text.index("bench:record") < text.index("## Machine")


def test_paced_server_with_floor_latency_client() -> None:
    from bench.clients.latency import floor_run
    from bench.pacer import PacedServerProcess, make_books

    plan = make_books(5, rate=2000, seconds=0.5, mode="spread")
    with PacedServerProcess(plan) as srv:
        res = floor_run(srv.base, plan.specs, plan.total, warm=100, timeout=20)
        import time

        deadline = time.monotonic() + 5  # the server counts a write just after making it
        while srv.stats()["sent"] < plan.total and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = srv.stats()
    assert res["books"] == 5 and res["msgs"] == plan.total - 100
    assert res["lat_ns"]["n"] == plan.total - 100 and res["lat_ns"]["p50"] > 0
    assert stats["sent"] == plan.total and stats["runs"] == 1
