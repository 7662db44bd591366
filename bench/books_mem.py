"""Memory of deep books: RSS per 1,000 Bybit 200-level and OKX 400-level books.

Runs in a fresh process (``bench/suite_runner.py``). For ``n`` instruments it generates one
snapshot frame each, exactly as the venue sends it (``bench/streams.py``: Bybit linear
``orderbook.200.D0000USDT``…, 200 levels a side; OKX ``books`` ``D0000-USDT``…, 400 levels a side,
``[px, sz, "0", orders]``), distinct prices and sizes per instrument. The frames are built first;
then the measured step feeds them through the venue's dialect session (``venue.decoder``: the
same ``on_frame`` the live feed runs), which keeps one ``tickwire.book.Book`` plus its stream
state per instrument; the events are dropped. Measured:

* **RSS delta** (``VmRSS`` before/after, after ``gc.collect()``): what the process really grew;
* **traced** (``tracemalloc``, a second session built from the same frames): Python allocations
  still alive, i.e. the books and their state without allocator slack.

The reference row (``floor``) holds the same levels in two plain ``dict[str, str]`` per book,
decoded with msgspec, the floor client's representation.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any, Callable

from bench import streams
from bench.common import rss_bytes


def _frames(venue: str, n: int) -> list[bytes]:
    if venue == "bybit":
        return [streams.bybit_orderbook(0, seed=50_000 + k, symbol=f"D{k:04d}USDT", depth=200).frames[0]
                for k in range(n)]
    return [streams.okx_books(0, seed=60_000 + k, inst=f"D{k:04d}-USDT", depth=400).frames[0] for k in range(n)]


def _tickwire_builder(venue: str) -> Callable[[list[bytes]], Any]:
    from tickwire.venues import get_venue

    def build(frames: list[bytes]) -> Any:
        v = get_venue(venue)
        s = v.decoder(v.decode_endpoint("linear" if venue == "bybit" else ""))
        ns = time.time_ns()
        for f in frames:
            s.on_frame(f, False, ns)
        return s

    return build


def _floor_builder(venue: str) -> Callable[[list[bytes]], Any]:
    import msgspec

    from bench.clients.floor import BybitBookMsg, OkxBookMsg

    def build(frames: list[bytes]) -> Any:
        books: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        if venue == "bybit":
            dec = msgspec.json.Decoder(BybitBookMsg)
            for f in frames:
                d = dec.decode(f).data
                books[d.s] = ({p: s for p, s in d.b}, {p: s for p, s in d.a})
        else:
            dec2 = msgspec.json.Decoder(OkxBookMsg)
            for f in frames:
                m = dec2.decode(f)
                d = m.data[0]
                books[m.arg.instId] = ({lv[0]: lv[1] for lv in d.bids}, {lv[0]: lv[1] for lv in d.asks})
        return books

    return build


def _count_levels(obj: Any, venue: str, who: str) -> tuple[int, int]:
    """(books, levels) held."""
    if who == "floor":
        return len(obj), sum(len(b) + len(a) for b, a in obj.values())
    books = [st.book for st in obj.streams.values() if st.book is not None]
    return len(books), sum(len(b) for b in books)


def run(venue: str, n: int, who: str = "tickwire") -> dict[str, Any]:
    t = time.perf_counter()
    frames = _frames(venue, n)
    gen_s = time.perf_counter() - t
    build = _tickwire_builder(venue) if who == "tickwire" else _floor_builder(venue)
    build(frames[:2])  # imports, decoder caches
    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    held = build(frames)
    build_s = time.perf_counter() - t
    gc.collect()
    rss1 = rss_bytes()
    nbooks, nlevels = _count_levels(held, venue, who)
    # second pass under tracemalloc: live Python allocations of a fresh set of books
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    held2 = build(frames)
    gc.collect()
    cur, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del held2
    return {
        "venue": venue, "who": who, "books": nbooks, "levels": nlevels, "frames_bytes": sum(map(len, frames)),
        "rss_delta_bytes": rss1 - rss0, "traced_bytes": cur - base, "rss_bytes": rss1,
        "gen_s": gen_s, "build_s": build_s,
    }
