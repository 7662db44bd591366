"""Computed streams on a live feed, on the consumer side.

``tickwire.stream("okx:books:BTC-USDT@snapshot10_1s", "okx:trades:BTC-USDT@bars1m")`` subscribes
the base streams and returns a :class:`DerivedFeed`: iterating it pulls the feed's events and runs
them through the derivers (:mod:`tickwire.derive.engine`) as they are consumed. Nothing runs in
the venue sessions or the socket readers: a feed opened without any ``@`` spec is the plain
:class:`~tickwire.net.Feed`, at no cost.

What a DerivedFeed yields, in order: every event of the feed except the raw events of a base
stream that was asked for only through its views (``okx:books:BTC-USDT`` itself among the specs
keeps them), each followed by the computed events it produced. Status events (Gap, Resynced,
Disconnected...) always pass. Nothing is dropped between iterations (the computed events wait in
the wrapper; the feed's own guarantees hold for the rest).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from tickwire.derive.engine import BookDeriver, TradeDeriver, make_deriver
from tickwire.derive.spec import DerivedSubscription, split
from tickwire.model import BookUpdate, Event, Gap, Overflow, Resynced, Trade
from tickwire.net.feed import stream as _feed_stream
from tickwire.venues import parse


class DerivedFeed:
    """A :class:`~tickwire.net.Feed` with computed streams. Every Feed attribute and method is
    available (``books()``, ``stats()``, ``close()``...); ``subscribe``/``unsubscribe`` also take
    ``SPEC@VIEW`` specs."""

    def __init__(self, feed: Any, derived: list[DerivedSubscription], raw: set[str]) -> None:
        self.feed = feed
        self._derivers: dict[str, BookDeriver | TradeDeriver] = {}
        self._raw = set(raw)          # base specs whose own events were asked for
        self._out: deque[Event] = deque()
        self._unseeded: set[str] = set()  # base streams whose deriver waits for a book to copy
        for d in derived:
            self._add(d, running=False)

    # -- plumbing ----------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        return getattr(self.feed, name)

    def __aiter__(self) -> "DerivedFeed":
        return self

    def backlog(self) -> int:
        """Computed events waiting to be yielded."""
        return len(self._out)

    def _add(self, d: DerivedSubscription, running: bool) -> bool:
        """Add one view; True when its base stream is new to the feed."""
        base = d.base
        der = self._derivers.get(base.spec)
        new = der is None
        if new:
            der = self._derivers[base.spec] = make_deriver(base.kind, base.venue, base.market, base.symbol)
        if d.spec not in der.specs:
            if running and new and isinstance(der, BookDeriver) and base.spec in self._raw:
                # the stream is running: start from its maintained book at the next quiet moment
                der.valid = False
                self._unseeded.add(base.spec)
            der.add_view(d.spec, d.view)
        return new and base.spec not in self._raw

    async def __anext__(self) -> Event:
        out = self._out
        if out:
            return out.popleft()
        derivers = self._derivers
        while True:
            ev = await self.feed.__anext__()
            stream = ev.stream
            der = derivers.get(stream)
            if der is None:
                if ev.__class__ is Overflow:  # events were dropped: every book needs a new start
                    for s, d in derivers.items():
                        if isinstance(d, BookDeriver):
                            d.gap(ev.recv_ns, out)
                            self._unseeded.add(s)
                    if out:
                        out.appendleft(ev)
                        return out.popleft()
                return ev
            cls = ev.__class__
            if cls is BookUpdate:
                if not (stream in self._unseeded and self._seed(der, ev)):  # type: ignore[arg-type]
                    der.message(ev.recv_ns, ev.exch_ns, ev.seq, ev.snapshot, ev.bids, ev.asks, out)  # type: ignore[union-attr]
            elif cls is Trade:
                der.trade(ev.recv_ns, ev.exch_ns, ev.market, ev.symbol, ev.price, ev.size, ev.side,  # type: ignore[union-attr]
                          ev.trade_id, out)
            elif cls is Gap:
                der.gap(ev.recv_ns, out)
            elif cls is Resynced:
                der.resynced(ev.recv_ns, out)
            if ev.is_status or stream in self._raw:
                if not out:
                    return ev
                out.appendleft(ev)
            if out:
                return out.popleft()

    def _seed(self, der: BookDeriver, ev: BookUpdate) -> bool:
        """Copy the maintained book when it is exactly the book at ``ev``: nothing waits in the
        feed, so no later message of the stream has been applied yet. A snapshot message needs
        no copy."""
        if ev.snapshot:
            self._unseeded.discard(ev.stream)
            return False
        book = ev.book
        if book is None or not book.valid or self.feed.pending():
            return False
        out = self._out
        if der.grids:
            der.advance(ev.recv_ns, out)
        der.seed(book, ev.recv_ns, ev.exch_ns, ev.seq)
        self._unseeded.discard(ev.stream)
        return True

    # -- dynamic subscriptions -----------------------------------------------------------------
    async def subscribe(self, *specs: str) -> list:
        """Add streams, computed ones (``SPEC@VIEW``) included."""
        bases: list[str] = []
        for s in specs:
            sub = parse(s)
            if isinstance(sub, DerivedSubscription):
                if self._add(sub, running=True):
                    bases.append(sub.base.spec)
            else:
                if sub.spec in self._derivers and sub.spec not in self._raw:
                    self._raw.add(sub.spec)  # already subscribed for its views: just show its events
                    continue
                self._raw.add(sub.spec)
                bases.append(sub.spec)
        return await self.feed.subscribe(*bases) if bases else []

    async def unsubscribe(self, *specs: str) -> None:
        gone: list[str] = []
        for s in specs:
            sub = parse(s)
            if isinstance(sub, DerivedSubscription):
                der = self._derivers.get(sub.base.spec)
                if der is None:
                    continue
                for lst in (getattr(der, "grids", []), getattr(der, "on_change", []), getattr(der, "quotes", []),
                            getattr(der, "bars", [])):
                    lst[:] = [v for v in lst if v.spec != sub.spec]
                if not der.specs:
                    del self._derivers[sub.base.spec]
                    if sub.base.spec not in self._raw:
                        gone.append(sub.base.spec)
            else:
                self._raw.discard(sub.spec)
                if sub.spec not in self._derivers:
                    gone.append(sub.spec)
        if gone:
            await self.feed.unsubscribe(*gone)


def plan(specs: tuple[str, ...] | list[str]) -> tuple[list[str], list[DerivedSubscription], set[str]]:
    """Specs -> (the feed's specs, the computed streams, the specs whose own events are shown)."""
    feed_specs: list[str] = []
    derived: list[DerivedSubscription] = []
    raw: set[str] = set()
    for s in specs:
        if isinstance(s, str) and split(s)[1] is not None:
            d = parse(s)
            assert isinstance(d, DerivedSubscription)
            derived.append(d)
            feed_specs.append(d.base.spec)
        else:
            feed_specs.append(s)
            raw.add(s.spec if not isinstance(s, str) else parse(s).spec)
    return list(dict.fromkeys(feed_specs)), derived, raw


class stream(_feed_stream):
    """:func:`tickwire.net.stream` that also takes computed streams (``SPEC@VIEW``, see
    :mod:`tickwire.derive.spec`): ``async with tickwire.stream("okx:books:BTC-USDT@snapshot10_1s")
    as feed: async for snap in feed: ...``. Without any, it is exactly the plain feed, unless
    ``computed=True`` (a feed whose ``subscribe()`` will take ``SPEC@VIEW`` later)."""

    def __init__(self, *specs: str, sim: bool | dict = False, computed: bool = False, **options: Any) -> None:
        self.computed = computed or any(isinstance(s, str) and "@" in s for s in specs)
        feed_specs, self.derived, self.raw = plan(specs) if self.computed else (list(specs), [], set())
        super().__init__(*feed_specs, sim=sim, **options)
        self.derived_feed: DerivedFeed | None = None

    async def __aenter__(self) -> Any:
        feed = await super().__aenter__()
        if not self.computed:
            return feed
        self.derived_feed = DerivedFeed(feed, self.derived, self.raw)
        return self.derived_feed
