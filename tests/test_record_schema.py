"""Recorder: table schemas, exact round-trips, layout, and queries over the dataset."""

from __future__ import annotations

import msgspec
import pyarrow.parquet as pq
import pytest

from tickwire import model as m
from tickwire.book import Book
from tickwire.decode import decode_lines
from tickwire.sinks.query import connect, query
from tickwire.sinks.recorder import Recorder
from tickwire.sinks.schema import COMMON, KINDS, arrow_schema

from .conftest import recorded

NS = 1_732_000_000_123_456_789  # 2024-11-19 UTC
DAY = 86_400 * 10**9


def base(**kw):
    d = dict(venue="bybit", market="linear", symbol="BTCUSDT", stream="bybit.linear:x:BTCUSDT",
             exch_ns=NS - 5_000_000, recv_ns=NS)
    d.update(kw)
    return d


def one(con, sql):
    return con.sql(sql).fetchall()[0]


def read(root, kind):
    return pq.read_table(root / kind).to_pylist()


def test_every_model_field_is_stored_or_documented_as_not_stored():
    status = KINDS["status"]
    for kind in KINDS.values():
        cols = set(kind.column_names)
        for ev in kind.events:
            fields = set(ev.__struct_fields__) - {"venue"}  # venue is a partition column
            if kind is status:
                continue  # status rows keep every field in `detail`
            missing = fields - cols - set(kind.not_stored)
            assert not missing, f"{ev.__name__} fields {missing} neither stored in {kind.name} nor listed"
        assert kind.column_names[:5] == list(COMMON)
        assert arrow_schema(kind).names == kind.column_names
    recorded_events = {e for k in KINDS.values() for e in k.events}
    market_data = {t for t in m.AnyEvent.__args__}
    assert market_data <= recorded_events | {m.BookUpdate}


def test_generic_kinds_round_trip_exactly(tmp_path):
    evs = [
        m.Trade(**base(), price="65000.10", size="0.00100000", side="buy", trade_id="t-1", seq=42),
        m.Trade(**base(exch_ns=0), price="1e-8", size="12", side="sell", trade_id="", seq=0),
        m.Ticker(**base(), last="65000.1", bid="65000.0", bid_size="1.5", ask=None, next_funding_ns=NS + DAY,
                 raw={"lastPrice": "65000.1"}),
        m.Candle(**base(), interval="1m", start_ns=NS - 60 * 10**9, open="1.0", high="2.00", low="0.5",
                 close="1.50", volume="10", turnover=None, closed=True),
        m.Funding(**base(), rate="0.0001", next_rate="-0.00005", funding_time_ns=NS, next_funding_ns=None),
        m.MarkPrice(**base(), price="65000.25"),
        m.IndexPrice(**base(), price="64999.75"),
        m.OpenInterest(**base(), open_interest="123.456", open_interest_usd="8000000"),
        m.Liquidation(**base(), side="buy", price="64000", size="0.5"),
        m.DexPrice(**base(venue="okxdex", market="", symbol=""), chain="1", token="0xabc", price="0.000001234"),
        m.DexCandle(**base(venue="okxdex"), chain="1", token="0xabc", interval="1m", start_ns=NS, open="1",
                    high="2", low="0.9", close="1.1", volume="100", volume_usd="110", closed=False),
        m.DexTrade(**base(venue="okxdex"), chain="501", token="So1", price="150.1", size="2", side="buy",
                   tx_hash="0xdead", raw={"k": [1, "2"]}),
        m.DexSignal(**base(venue="okxdex"), channel="dex-signal", data={"a": 1}),
        m.Order(**base(), order_id="o1", side="buy", price="1.0", raw={"x": "y"}),
        m.Fill(**base(), order_id="o1", trade_id="f1", side="buy", price="1.0", size="2", fee="-0.001",
               fee_ccy="USDT", liquidity="maker"),
        m.Balance(**base(), currency="USDT", total="100.5", available="100", frozen="0.5"),
        m.Position(**base(), side="long", size="1", avg_price="60000", unrealized_pnl="5000"),
        m.Connected(**base(), conn="bybit/public/linear#1", url="ws://127.0.0.1:1/v5/public/linear"),
        m.Gap(**base(), conn="c#1", reason="u jumped", expected=5, received=7),
        m.VenueError(**base(), conn="c#1", code="10001", msg="bad topic", request="subscribe x", fatal=True),
        m.Greeks(**base(market="option", symbol="BTC"), base_coin="BTC", delta="0.01", gamma="-0.0000005",
                 vega=None, theta="-1.5", raw={"baseCoin": "BTC"}),
        m.LineSwitch(**base(), conn="c#1", from_host="ws.okx.com", to_host="wsaws.okx.com", reason="rtt"),
    ]
    with Recorder(tmp_path, raw=False) as rec:
        rec.add_many(evs)

    t = read(tmp_path, "trades")
    assert [(r["price"], r["size"], r["side"], r["trade_id"], r["seq"]) for r in t] == [
        ("65000.10", "0.00100000", "buy", "t-1", 42), ("1e-8", "12", "sell", "", 0)]
    assert t[0]["exch_ns"] == NS - 5_000_000 and t[1]["exch_ns"] is None  # 0 = not sent = null
    assert t[0]["recv_ns"] == NS and t[0]["venue"] == "bybit" and t[0]["date"] == "2024-11-19"
    tk = read(tmp_path, "tickers")[0]
    assert (tk["last"], tk["bid"], tk["ask"], tk["next_funding_ns"]) == ("65000.1", "65000.0", None, NS + DAY)
    c = read(tmp_path, "candles")[0]
    assert (c["high"], c["close"], c["turnover"], c["closed"]) == ("2.00", "1.50", None, True)
    assert read(tmp_path, "funding")[0]["next_rate"] == "-0.00005"
    assert read(tmp_path, "mark_prices")[0]["price"] == "65000.25"
    assert read(tmp_path, "index_prices")[0]["price"] == "64999.75"
    assert read(tmp_path, "open_interest")[0]["open_interest_ccy"] is None
    assert read(tmp_path, "liquidations")[0]["size"] == "0.5"
    dp = read(tmp_path, "dex_prices")[0]
    assert (dp["venue"], dp["price"], dp["token"]) == ("okxdex", "0.000001234", "0xabc")
    assert read(tmp_path, "dex_candles")[0]["volume_usd"] == "110"
    dt = read(tmp_path, "dex_trades")[0]
    assert msgspec.json.decode(dt["raw"]) == {"k": [1, "2"]} and dt["tx_hash"] == "0xdead"
    assert msgspec.json.decode(read(tmp_path, "dex_signals")[0]["data"]) == {"a": 1}
    assert read(tmp_path, "fills")[0]["fee"] == "-0.001"
    assert read(tmp_path, "balances")[0]["frozen"] == "0.5"
    assert read(tmp_path, "positions")[0]["unrealized_pnl"] == "5000"
    assert msgspec.json.decode(read(tmp_path, "orders")[0]["raw"]) == {"x": "y"}
    st = read(tmp_path, "status")
    assert [(r["type"], r["conn"], r["code"]) for r in st] == [
        ("Connected", "bybit/public/linear#1", ""), ("Gap", "c#1", ""), ("VenueError", "c#1", "10001"),
        ("LineSwitch", "c#1", "rtt")]
    assert st[3]["message"] == "ws.okx.com -> wsaws.okx.com"
    g = read(tmp_path, "greeks")[0]
    assert (g["symbol"], g["base_coin"], g["gamma"], g["vega"]) == ("BTC", "BTC", "-0.0000005", None)
    assert st[0]["message"].startswith("ws://") and st[2]["message"] == "bad topic"
    gap = msgspec.json.decode(st[1]["detail"])
    assert (gap["type"], gap["expected"], gap["received"]) == ("Gap", 5, 7)
    # the Parquet files carry their kind and schema version
    f = next((tmp_path / "trades").rglob("*.parquet"))
    meta = pq.read_schema(f).metadata
    assert meta[b"tickwire.kind"] == b"trades" and meta[b"tickwire.schema_version"] == b"1"


def test_book_changes_one_row_per_level_in_venue_order_with_markers(tmp_path):
    book = Book("bybit", "BTCUSDT")
    snap_b = [("100.10", "1.000"), ("100.00", "2")]
    snap_a = [("100.20", "0.5")]
    book.apply_snapshot(snap_b, snap_a, 10)
    evs = [
        m.BookUpdate(**base(), bids=snap_b, asks=snap_a, snapshot=True, seq=10, prev_seq=0, book=book),
        m.BookUpdate(**base(recv_ns=NS + 1), bids=[["100.10", "0"]], asks=[["100.30", "3"], ["100.20", "0.25"]],
                     seq=11, prev_seq=10),
        m.BookUpdate(**base(recv_ns=NS + 2), bids=[], asks=[], seq=12, prev_seq=11),  # changed nothing
        m.BookUpdate(**base(recv_ns=NS + 3), bids=[["99.9", "4", "0", "2"]], asks=[], seq=13, prev_seq=12),
    ]
    with Recorder(tmp_path, raw=False, book_snapshot_interval=0) as rec:
        rec.add_many(evs)
    rows = read(tmp_path, "book_changes")
    got = [(r["recv_ns"] - NS, r["seq"], r["prev_seq"], r["snapshot"], r["side"], r["price"], r["size"]) for r in rows]
    assert got == [
        (0, 10, 0, True, "bid", "100.10", "1.000"), (0, 10, 0, True, "bid", "100.00", "2"),
        (0, 10, 0, True, "ask", "100.20", "0.5"),
        (1, 11, 10, False, "bid", "100.10", "0"), (1, 11, 10, False, "ask", "100.30", "3"),
        (1, 11, 10, False, "ask", "100.20", "0.25"),
        (2, 12, 11, False, None, None, None),          # marker: the seq chain stays complete
        (3, 13, 12, False, "bid", "99.9", "4"),        # extra venue fields (OKX orders count) not stored
    ]
    assert not (tmp_path / "book_snapshots").exists()


def test_book_snapshots_are_periodic_top_n_of_valid_books(tmp_path):
    book = Book("bybit", "BTCUSDT")
    rec = Recorder(tmp_path, raw=False, book_snapshot_interval=1.0, book_snapshot_depth=3)
    for i in range(30):  # one update every 100 ms for 3 s; the recorder reads the live book at add()
        if i == 0:
            book.apply_snapshot([(f"{100 - k}.0", "1") for k in range(30)], [(f"{101 + k}.0", "2") for k in range(30)], 1)
        else:
            book.apply_delta([("100.0", str(i))], [], i + 1)
        if 10 <= i < 12:
            book.invalidate()  # a gap: no snapshot of an invalid book, the next valid one is taken
        if i == 12:
            book.apply_snapshot([("100.0", "9")], [("101.0", "9")], 13)
        rec.add(m.BookUpdate(**base(recv_ns=NS + i * 100_000_000), bids=[("100.0", str(i))], asks=[],
                             seq=i + 1, prev_seq=i, book=book))
    rec.close()
    snaps = read(tmp_path, "book_snapshots")
    assert [(s["recv_ns"] - NS) // 100_000_000 for s in snaps] == [0, 12, 22]
    assert snaps[0]["bid_price"] == ["100.0", "99.0", "98.0"] and snaps[0]["ask_size"] == ["2", "2", "2"]
    assert (snaps[1]["bid_price"], snaps[1]["bid_size"], snaps[1]["seq"]) == (["100.0"], ["9"], 13)
    assert (snaps[2]["bid_size"], snaps[2]["seq"]) == (["22"], 23)


def test_layout_is_hive_partitioned_by_venue_and_utc_date(tmp_path):
    evs = [m.Trade(**base(recv_ns=NS + d * DAY, venue=v), price="1", size="1", side="buy")
           for d in (0, 1) for v in ("bybit", "okx")]
    with Recorder(tmp_path, raw=False) as rec:
        rec.add_many(evs)
    dirs = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert dirs == ["trades/venue=bybit/date=2024-11-19", "trades/venue=bybit/date=2024-11-20",
                    "trades/venue=okx/date=2024-11-19", "trades/venue=okx/date=2024-11-20"]
    assert all(p.name.startswith("part-") for p in tmp_path.rglob("*.parquet"))
    assert not (tmp_path / "_wal").exists()  # a clean close leaves nothing unpublished
    import pandas as pd

    df = pd.read_parquet(tmp_path / "trades")
    assert len(df) == 4 and set(df["venue"].astype(str)) == {"bybit", "okx"}


def test_polars_reads_the_dataset(tmp_path):
    pl = pytest.importorskip("polars")
    with Recorder(tmp_path, raw=False) as rec:
        rec.add(m.Trade(**base(), price="65000.10", size="0.001", side="buy"))
    df = pl.read_parquet(str(tmp_path / "trades" / "**" / "*.parquet"), hive_partitioning=True)
    assert df["price"].to_list() == ["65000.10"] and df["venue"].to_list() == ["bybit"]


def test_recorded_bybit_frames_through_the_dialect_to_duckdb(tmp_path):
    events = []
    for name in ("bybit_publicTrade_ccxt.jsonl", "bybit_orderbook_ccxt.jsonl", "bybit_tickers_tardis.jsonl"):
        with open(recorded(name), "rb") as f:
            events.extend(decode_lines("bybit.linear", f))
    trades = [e for e in events if isinstance(e, m.Trade)]
    books = [e for e in events if isinstance(e, m.BookUpdate)]
    tickers = [e for e in events if isinstance(e, m.Ticker)]
    assert trades and books and tickers
    with Recorder(tmp_path) as rec:
        rec.add_many(events)
    con = connect(tmp_path)
    assert one(con, "SELECT count(*) FROM trades")[0] == len(trades)
    assert one(con, "SELECT count(DISTINCT (recv_ns, stream, seq)) FROM book_changes")[0] == len(
        {(e.recv_ns, e.stream, e.seq) for e in books})
    n_levels = sum(max(1, len(e.bids) + len(e.asks)) for e in books)
    assert one(con, "SELECT count(*) FROM book_changes")[0] == n_levels
    assert one(con, "SELECT count(*) FROM tickers")[0] == len(tickers)
    # exact strings, and the documented exact cast
    prices = sorted(e.price for e in trades)
    assert [r[0] for r in con.sql("SELECT price FROM trades ORDER BY price").fetchall()] == prices
    total = one(con, "SELECT sum(CAST(price AS DECIMAL(38,10)) * CAST(size AS DECIMAL(38,10))) FROM trades")[0]
    from decimal import Decimal

    assert total == sum(Decimal(e.price) * Decimal(e.size) for e in trades)
    assert one(con, "SELECT typeof(recv_time), typeof(date) FROM trades LIMIT 1") == ("TIMESTAMP_NS", "DATE")
    con.close()


def test_query_helper_returns_dataframes_and_empty_tables_are_typed(tmp_path):
    with Recorder(tmp_path, raw=False) as rec:
        rec.add(m.Trade(**base(), price="2.5", size="4", side="buy"))
    df = query("SELECT price, size, venue, recv_time FROM trades", data=tmp_path)
    assert df.to_dict("records")[0]["price"] == "2.5" and str(df["recv_time"].dtype).startswith("datetime64[ns")
    empty = query("SELECT * FROM liquidations", data=tmp_path)
    assert len(empty) == 0 and "price" in empty.columns and "venue" in empty.columns
    for kind in KINDS:  # every table is queryable, with or without files
        query(f"SELECT count(*) FROM {kind}", data=tmp_path)
    with pytest.raises(FileNotFoundError):
        query("SELECT 1", data=tmp_path / "nope")


def test_the_documentation_covers_every_table_and_column():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "recording.md").read_text()
    for kind in KINDS.values():
        assert f"`{kind.name}`" in doc, kind.name
        if kind.name in ("orders", "fills", "balances", "positions"):
            continue  # documented by reference to tickwire.model
        for col in kind.column_names:
            assert f"`{col}`" in doc, f"{kind.name}.{col} is not documented"


def test_a_field_of_the_wrong_type_is_recorded_as_text_not_the_end_of_the_recording(tmp_path):
    """Events do not check their field types and a venue can send a number where its documents
    say string (an order id, a price): that stopped the whole recording (ArrowTypeError in the
    writer: RecorderError). It is stored as its text; everything else is recorded."""
    evs = [
        m.Order(**base(), order_id=123456, side="buy", price=1.5, raw={"ordId": 123456}),
        m.Trade(**base(), price="2", size="3", side="sell", trade_id=99, seq="7"),
        m.Trade(**base(), price="2.5", size="1", side="buy", trade_id="t-2", seq=8),
        m.Position(**base(), side=True, size=["1"], avg_price=None),
    ]
    with Recorder(tmp_path, raw=False) as rec:
        rec.add_many(evs)
    o = read(tmp_path, "orders")[0]
    assert (o["order_id"], o["price"]) == ("123456", "1.5")
    assert [(t["trade_id"], t["seq"]) for t in read(tmp_path, "trades")] == [("99", 7), ("t-2", 8)]
    p = read(tmp_path, "positions")[0]
    assert (p["side"], p["size"]) == ("True", '["1"]')


def test_book_rows_of_several_instruments_in_one_batch_keep_each_its_own_symbol():
    """A batch of an instrument-keyed ("" stream) buffer: market/symbol per message, marker rows
    for messages that changed nothing (book_changes_batch and the loop-built rows share _explode)."""
    from tickwire.sinks.columns import book_changes_batch

    evs = [m.BookUpdate(venue="okx", market="SPOT", symbol=s, stream="", recv_ns=i, exch_ns=i,
                        bids=[("1", "2")] if i % 2 else [], asks=[], seq=i, prev_seq=i - 1)
           for i, s in enumerate(["A", "B", "A", "C"], 1)]
    rows = book_changes_batch(evs).to_pylist()
    assert [(r["symbol"], r["seq"], r["side"], r["price"]) for r in rows] == [
        ("A", 1, "bid", "1"), ("B", 2, None, None), ("A", 3, "bid", "1"), ("C", 4, None, None)]
