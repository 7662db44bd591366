"""The make-before-break merger, deterministically: every interleaving of the two connections."""

from __future__ import annotations

import random

from tickwire.book import Book
from tickwire.model import BookUpdate, Order, Ticker, Trade
from tickwire.net.failover import Merger

S_BOOK, S_TRADES, S_ORDERS, S_TICK = "okx:books:X", "okx:trades:X", "okx:orders:ANY", "okx:tickers:X"


def book_ev(seq, prev, snapshot=False, book=None):
    return BookUpdate(venue="okx", stream=S_BOOK, seq=seq, prev_seq=prev, snapshot=snapshot, book=book)


def trade(i):
    return Trade(venue="okx", stream=S_TRADES, price="1", size="1", side="buy", trade_id=str(i))


def order(i):
    return Order(venue="okx", stream=S_ORDERS, order_id="o1", status="partially_filled", filled_size=str(i),
                 exch_ns=i)


def run(seed: int) -> list:
    """Old connection delivers seqs 1..60 / trades 1..60 / orders 1..60; the new one starts late with a
    snapshot at seq 20 and continues to 100; both interleave randomly."""
    rng = random.Random(seed)
    out: list = []
    m = Merger(out.extend, {S_BOOK: 10}, {S_BOOK, S_TRADES, S_ORDERS, S_TICK})
    old = [[book_ev(s, s - 1)] for s in range(11, 61)]
    old = [x + [trade(s), order(s)] for x, s in zip(old, range(11, 61))]
    new_book = Book()
    new_book.apply_snapshot([("1", "1")], [("2", "1")], 20)
    new = [[book_ev(20, -1, True, new_book)]] + [[book_ev(s, s - 1, book=new_book), trade(s), order(s)]
                                                  for s in range(21, 101)]
    while old or new:
        if old and (not new or rng.random() < 0.5):
            m.from_old(old.pop(0))
        else:
            m.from_new(new.pop(0))
    m.finish({S_BOOK: new_book})
    return out


def test_any_interleaving_gives_an_unbroken_chain_and_each_trade_and_order_once():
    for seed in range(200):
        out = run(seed)
        seqs = [(e.prev_seq, e.seq) for e in out if isinstance(e, BookUpdate)]
        assert seqs == [(s - 1, s) for s in range(11, 101)], seed
        assert [int(e.trade_id) for e in out if isinstance(e, Trade)] == list(range(11, 101)), seed
        assert [int(e.filled_size) for e in out if isinstance(e, Order)] == list(range(11, 101)), seed


def test_state_streams_switch_without_repeating_the_last_value():
    out: list = []
    m = Merger(out.extend, {}, {S_TICK})
    t1 = Ticker(venue="okx", stream=S_TICK, last="1", exch_ns=1)
    t2 = Ticker(venue="okx", stream=S_TICK, last="2", exch_ns=2)
    m.from_old([t1])
    m.from_new([t1])          # the same venue message on the new connection
    m.from_old([t2])
    m.from_new([t2])
    m.finish({})
    m.from_new([Ticker(venue="okx", stream=S_TICK, last="3", exch_ns=3)])
    assert [e.last for e in out] == ["1", "2", "3"]
