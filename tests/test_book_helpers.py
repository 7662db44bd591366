"""Book analysis helpers (floats for analysis, exact strings kept) and query engines."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

import tickwire
from tickwire.book import Book
from tickwire.model import Trade


def _book() -> Book:
    b = Book("okx", "BTC-USDT")
    b.apply_snapshot([("100.5", "2"), ("100", "1"), ("99.9", "4")], [("101", "1"), ("102", "0.5"), ("103", "3")], 7)
    return b


def test_top_of_book_floats():
    b = _book()
    assert b.mid() == 100.75
    assert b.spread() == 0.5
    # leans toward the ask: more size on the bid
    assert b.microprice() == pytest.approx((100.5 * 1 + 101 * 2) / 3)
    assert b.depth(2) == (3.0, 1.5)
    assert b.depth(10) == (7.0, 4.5)
    b.apply_delta([("100.5", "0")], [("100.8", "2")], 8)
    assert b.mid() == pytest.approx(100.4) and b.spread() == pytest.approx(0.8)


def test_empty_sides_give_none():
    b = Book("okx", "X")
    b.apply_snapshot([("1", "1")], [])
    assert b.mid() is None and b.spread() is None and b.microprice() is None
    assert b.depth(5) == (1.0, 0.0)


def test_exact_decimals():
    b = _book()
    bids, asks = b.as_decimal()
    assert bids[0] == (Decimal("100.5"), Decimal("2")) and len(bids) == 3 and len(asks) == 3
    bids, asks = b.as_decimal(1)
    assert asks == [(Decimal("101"), Decimal("1"))]


def test_to_numpy_stacks_with_nan_padding():
    b = _book()
    a = b.to_numpy(4)
    assert a.shape == (2, 4, 2) and a.dtype == np.float64
    assert a[0, 0].tolist() == [100.5, 2.0] and a[1, 2].tolist() == [103.0, 3.0]
    assert all(math.isnan(x) for x in a[:, 3].ravel())
    stacked = np.stack([b.to_numpy(2), b.to_numpy(2)])
    assert stacked.shape == (2, 2, 2, 2)


def test_to_arrow_keeps_exact_strings_beside_floats():
    b = Book("x", "y")
    b.apply_snapshot([("0.10000000", "1e-8")], [("0.2", "3")])
    t = b.to_arrow(5)
    assert t.column_names == ["side", "level", "price", "size", "price_f", "size_f"]
    rows = t.to_pylist()
    assert rows[0] == {"side": "bid", "level": 0, "price": "0.10000000", "size": "1e-8", "price_f": 0.1,
                       "size_f": 1e-8}
    assert rows[1]["side"] == "ask" and rows[1]["size_f"] == 3.0


def test_book_still_takes_depth_keyword():
    assert Book("v", "s", depth=50).max_depth == 50


async def test_query_engines(tmp_path):
    pl = pytest.importorskip("polars")
    from tickwire.sinks import Recorder

    rec = Recorder(str(tmp_path / "data"))
    ns = 1_780_000_000_000_000_000
    for i in range(5):
        rec.add(Trade(venue="okx", market="spot", symbol="BTC-USDT", stream="okx:trades:BTC-USDT", exch_ns=ns + i,
                      recv_ns=ns + i, price=f"100.{i}", size="0.5", side="buy", trade_id=str(i)))
    rec.close()
    sql = "SELECT price, size FROM trades ORDER BY recv_ns"
    df = tickwire.query(sql, data=str(tmp_path / "data"), engine="polars")
    assert isinstance(df, pl.DataFrame) and df["price"].to_list()[0] == "100.0" and df.height == 5
    t = tickwire.query(sql, data=str(tmp_path / "data"), engine="arrow")
    assert t.num_rows == 5 and t.column("price")[4].as_py() == "100.4"
    assert len(tickwire.query(sql, data=str(tmp_path / "data"))) == 5
    with pytest.raises(ValueError, match="engine"):
        tickwire.query(sql, data=str(tmp_path / "data"), engine="spark")
