"""One level shape on every venue: ``for price, size in ev.bids`` works everywhere; OKX's extra
level fields (liquidated orders, order count) are in ``BookUpdate.venue_levels``."""

from __future__ import annotations

import msgspec

import tickwire
from tickwire.decode import decode_lines, decoder_session
from tickwire.model import BookUpdate, to_dict

from .conftest import RECORDED, collect
from .test_golden import CAPTURES, segments


def _check_levels(ev: BookUpdate) -> None:
    for side in (ev.bids, ev.asks):
        for price, size in side:  # the point of it all
            assert type(price) is str and type(size) is str
    if ev.venue == "okx":
        vb, va = ev.venue_levels
        assert [(x.price, x.size) for x in vb] == [tuple(x) for x in ev.bids]
        assert [(x.price, x.size) for x in va] == [tuple(x) for x in ev.asks]
        nb, na = ev.order_counts()
        assert len(nb) == len(ev.bids) and len(na) == len(ev.asks)
        assert all(type(n) is int and n >= 0 for n in nb + na)
    else:
        assert ev.venue_levels is None and ev.order_counts() is None


async def test_every_simulated_venue_gives_price_size_pairs():
    specs = ["okx:books:BTC-USDT", "okx:books5:BTC-USDT-SWAP", "bybit.linear:orderbook.50:BTCUSDT",
             "bybit.spot:orderbook.1:BTCUSDT", "bge:orderbook.0:BTC_USDT"]
    async with tickwire.stream(*specs, sim=True) as feed:
        seen: dict[str, int] = {}

        def enough(evs):
            for ev in evs[-1:]:
                if isinstance(ev, BookUpdate):
                    seen[ev.stream] = seen.get(ev.stream, 0) + 1
            return len(seen) == len(specs) and min(seen.values()) >= 3

        events = await collect(feed, enough, timeout=20)
    books = [e for e in events if isinstance(e, BookUpdate)]
    for ev in books:
        _check_levels(ev)
    okx = next(e for e in books if e.venue == "okx" and e.snapshot)
    # JSON: pairs in bids/asks, the venue's arrays in venue_levels
    d = to_dict(msgspec.structs.replace(okx, book=None))
    assert all(len(x) == 2 for x in d["bids"]) and all(len(x) == 4 for x in d["venue_levels"][0])


def test_every_recorded_capture_gives_price_size_pairs():
    n = 0
    for name, _ in CAPTURES.items():
        p = RECORDED / name
        if not p.exists():
            continue
        lines = p.read_bytes().splitlines()
        for first, last, spec in segments(name, len(lines)):
            session = decoder_session(spec)
            for ev in decode_lines(spec, lines[first - 1:last], session=session):
                if isinstance(ev, BookUpdate):
                    _check_levels(ev)
                    n += 1
    if RECORDED.is_dir():
        assert n > 100


def test_order_counts_from_decoded_lists():
    # venue_levels that crossed a bus or JSON are lists: order_counts reads them too
    ev = BookUpdate(venue="okx", bids=[("1", "2")], asks=[], venue_levels=([["1", "2", "0", "7"]], []))
    assert ev.order_counts() == ([7], [])
