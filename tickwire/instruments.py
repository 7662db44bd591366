"""Instrument metadata: each venue's REST instrument list, normalized, cached and refreshed; and
unified symbols.

``feed.instrument(spec)`` returns the :class:`Instrument` of a stream (or of an event, or a
``Subscription``): contract value and multiplier, tick size, lot size, minimum size, settle
currency, expiry, base/quote, type; ``None`` until its list is loaded (or when the venue has
none: OKX DEX tokens, private ``ANY`` streams). ``await feed.load_instruments()`` waits for
the first load.

When lists load (``FeedOptions.instruments``):

* ``True``: at the feed's start, for every venue it uses; ``False``: never;
* ``None`` (default): at the start for venues reached at their own hosts; for a venue whose
  endpoint is overridden (a simulator, a replay, a local relay) on first use only
  (``feed.instrument()``, ``feed.load_instruments()``), so a feed pointed at something that
  serves no REST makes no REST requests.

Loading never holds up the feed: it runs in its own task on the feed's event loop, one request at
a time, through the feed's proxy and TLS settings (:func:`tickwire.net.http.get_json`), and maps
each reply a slice at a time, handing the loop back in between (decoding one reply is not split:
a few milliseconds for a page of 1,000 instruments). Market data never waits for a request. A failure is a warning in the log (``tickwire.instruments``), never an event and never fatal;
the list is asked for again later (30 s, doubling up to the refresh interval). Lists are
refreshed every ``instruments_refresh_s`` (1 h), and a list fetched from the same URL by another
feed of the process within that time is reused.

Unified symbols (``event.usymbol``, ccxt's convention: ``BTC/USDT`` spot, ``BTC/USDT:USDT``
linear swap, ``BTC/USD:BTC`` inverse swap, ``BTC/USD:BTC-261225`` future,
``BTC/USD:BTC-261225-100000-C`` option) cost nothing on the hot path: a table keyed by (venue,
market, symbol) is filled from the venue's naming rules where they are unambiguous (OKX, BG
Exchange, most of Bybit) the first time a symbol is asked for (a feed asks for each of its
streams' at start), and from the instrument lists when they load (Bybit inverse futures, whose
delivery day is not in the name, and spot pairs with an unusual quote coin).

What each venue contributes lives in its package (``tickwire/venues/<venue>/instruments.py``):
``rest_root(ws_base, network)``, ``paths(subs)`` (the first page of each list the streams
need), ``unpack(body, path) -> (items, next page path | None, context)``,
``to_instrument(item, context)`` and ``derive_usymbol(market, symbol)``; all pure.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from typing import TYPE_CHECKING, Any, Iterable

import msgspec

if TYPE_CHECKING:
    from tickwire.net.feed import Feed
    from tickwire.subscription import Subscription

log = logging.getLogger("tickwire.instruments")

# venue -> module with its REST instrument knowledge (imported on first use)
VENUE_MODULES = {
    "bybit": "tickwire.venues.bybit.instruments",
    "okx": "tickwire.venues.okx.instruments",
    "bge": "tickwire.venues.bge.instruments",
}

RETRY_FIRST_S = 30.0        # a failed list is asked for again after this, doubling up to the refresh interval
TIMEOUT_S = 10.0            # one REST request
MAX_PAGES = 50              # a paged list stops here (Bybit linear: 1 page of 1000 today)
SLICE = 200                 # items mapped between two hand-backs to the event loop


class Instrument(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One instrument of a venue, normalized. Decimals are the venue's exact strings."""

    venue: str
    market: str             # the market events of this instrument carry (bybit: linear...; okx: swap...)
    symbol: str             # the venue's own name (BTCUSDT, BTC-USDT-SWAP, BTC_USDT)
    usymbol: str            # unified (ccxt-style): BTC/USDT, BTC/USDT:USDT, BTC/USD:BTC-261225
    type: str               # spot / swap / future / option
    base: str
    quote: str
    settle: str = ""        # settle currency ("" for spot)
    linear: bool | None = None   # True: margined and settled in the quote; False: inverse; None: spot
    contract_value: str | None = None     # what one contract is worth, in contract_currency
    contract_currency: str | None = None
    multiplier: str | None = None         # contract multiplier (OKX ctMult; 1 elsewhere)
    tick_size: str = ""     # price step
    lot_size: str = ""      # size step (contracts for derivatives, base units for spot)
    min_size: str | None = None
    expiry_ns: int | None = None          # delivery / expiry time, ns since the epoch (None: perpetual, spot)
    strike: str | None = None
    option_type: str | None = None        # call / put
    status: str = ""        # the venue's own word (Trading, live, on...)
    raw: dict | None = None  # the venue's item, as received


def _module(venue: str) -> Any:
    name = VENUE_MODULES.get(venue)
    return importlib.import_module(name) if name else None


def derive_usymbol(venue: str, market: str, symbol: str) -> str:
    """The unified symbol the venue's naming alone gives ("" when it is ambiguous or there is none)."""
    mod = _module(venue)
    if mod is None:
        return ""
    try:
        return mod.derive_usymbol(market, symbol)
    except Exception:  # a name the rules did not foresee: no unified symbol, never an error
        return ""


# URL -> (monotonic time, instruments): one fetch serves every feed of the process for a while.
_CACHE: dict[str, tuple[float, list[Instrument]]] = {}


class InstrumentLoader:
    """A feed's instrument lists: what its streams need, loaded in the background, indexed."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.by_key: dict[tuple[str, str, str], Instrument] = {}
        self.by_symbol: dict[tuple[str, str], Instrument] = {}
        self.wanted: dict[tuple[str, str], None] = {}       # (venue, first-page path), in order
        self.due: dict[tuple[str, str], float] = {}          # ... -> monotonic time of the next load
        self.done: set[tuple[str, str]] = set()              # loaded at least once (or failed once)
        self.failures: dict[tuple[str, str], int] = {}
        self.errors: dict[str, str] = {}                     # venue -> last failure (empty after a success)
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._first: asyncio.Event | None = None
        self._lazy: set[str] = set()                         # venues loaded on first use only
        self._stopped = False

    # -- what to load ---------------------------------------------------------------------------
    def _mode(self, venue: str) -> bool | None:
        """True: load at start; None: on first use; False: never."""
        opt = self.feed.options.instruments
        if opt is False or venue not in VENUE_MODULES:
            return False
        if opt is True:
            return True
        return None if self.feed.endpoint_base(venue) else True

    def want(self, subs: Iterable[Subscription]) -> None:
        """Streams the feed serves (at start, and each ``feed.subscribe``): their lists are due."""
        subs = list(subs)
        for s in subs:  # the unified symbol of each stream, once, off the hot path
            from tickwire.model import unified_symbol

            unified_symbol(s.venue, s.market, s.symbol)
        by_venue: dict[str, list[Subscription]] = {}
        for s in subs:
            by_venue.setdefault(s.venue, []).append(s)
        added = False
        for venue, vsubs in by_venue.items():
            mode = self._mode(venue)
            if mode is False:
                continue
            if mode is None:
                self._lazy.add(venue)
            for path in _module(venue).paths(vsubs):
                key = (venue, path)
                if key not in self.wanted:
                    self.wanted[key] = None
                    self.due[key] = 0.0
                    added = True
        if added and self._task is not None and self._wake is not None:
            if self._first is not None:
                self._first.clear()
            self._wake.set()

    def start(self) -> None:
        """At the feed's start (on its loop): begin loading the lists of non-lazy venues."""
        self.want(self.feed.subscriptions)
        if any(v not in self._lazy for v, _ in self.wanted):
            self._ensure_task(eager_only=True)

    def _ensure_task(self, eager_only: bool = False) -> None:
        if self._stopped:
            return
        if not eager_only and self._lazy:
            self._lazy.clear()  # first use: the lazy venues' lists are due now
            if self._first is not None and any(k not in self.done for k in self.wanted):
                self._first.clear()
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._wake = asyncio.Event()
            self._first = asyncio.Event()
            self._task = loop.create_task(self._run(), name="tickwire:instruments")
        elif self._wake is not None:
            self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # -- the read side -----------------------------------------------------------------------------
    def get(self, venue: str, market: str, symbol: str) -> Instrument | None:
        if venue in self._lazy:
            self._ensure_task()
        inst = self.by_key.get((venue, market, symbol))
        if inst is None:
            inst = self.by_symbol.get((venue, symbol))
            if inst is not None and market and inst.market != market:
                return None
        return inst

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Until every wanted list was loaded once (or failed once); False on timeout."""
        if not self.wanted:
            return True
        self._ensure_task()
        if self._first is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self._first.wait()
        except TimeoutError:
            return False
        return True

    # -- loading ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None and self._first is not None
        refresh = max(0.1, float(self.feed.options.instruments_refresh_s))
        while True:
            now = time.monotonic()
            for key in list(self.wanted):
                venue = key[0]
                if venue in self._lazy or self.due.get(key, 0.0) > now:
                    continue
                ok = await self._load(key, refresh)
                n = self.failures.get(key, 0)
                if ok:
                    self.failures[key] = 0
                    self.due[key] = time.monotonic() + refresh
                else:
                    self.failures[key] = n + 1
                    self.due[key] = time.monotonic() + min(refresh, RETRY_FIRST_S * 2 ** n)
                self.done.add(key)
            if all(k in self.done for k in self.wanted if k[0] not in self._lazy):
                self._first.set()
            pending = [t for k, t in self.due.items() if k[0] not in self._lazy]
            wait = max(0.0, min(pending) - time.monotonic()) if pending else None
            self._wake.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _load(self, key: tuple[str, str], refresh_s: float) -> bool:
        venue, first = key
        mod = _module(venue)
        feed = self.feed
        root = mod.rest_root(feed.endpoint_base(venue), feed.network_of(venue))
        url = root + first
        cached = _CACHE.get(url)
        if cached is not None and time.monotonic() - cached[0] < refresh_s:
            insts = cached[1]
        else:
            try:
                insts = await self._fetch(mod, root, first)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                msg = f"{type(e).__name__}: {e}" if type(e).__name__ not in str(e) else str(e)
                self.errors[venue] = f"GET {url.split('?')[0]}: {msg}"
                log.warning("instruments: %s list %s not loaded (%s); asking again later", venue, first, msg,
                            extra={"venue": venue, "event": "instruments-failed"})
                return False
            _CACHE[url] = (time.monotonic(), insts)
        self._index(insts)
        self.errors.pop(venue, None)
        log.info("instruments: %s list %s loaded (%d instruments)", venue, first, len(insts),
                 extra={"venue": venue, "event": "instruments-loaded"})
        return True

    async def _fetch(self, mod: Any, root: str, first: str) -> list[Instrument]:
        from tickwire.net.http import get_json

        feed = self.feed
        out: list[Instrument] = []
        path: str | None = first
        pages = 0
        while path is not None and pages < MAX_PAGES:
            url = root + path
            body = await get_json(url, timeout_s=TIMEOUT_S, proxy=feed.options.proxy, ssl_context=feed.ssl_context(url))
            items, path, ctx = mod.unpack(body, path)
            pages += 1
            for i in range(0, len(items), SLICE):
                for item in items[i:i + SLICE]:
                    inst = mod.to_instrument(item, ctx)
                    if inst is not None:
                        out.append(inst)
                await asyncio.sleep(0)  # hand the loop back: market data never waits for us
        return out

    def _index(self, insts: list[Instrument]) -> None:
        from tickwire.model import set_unified_symbol

        for inst in insts:
            self.by_key[(inst.venue, inst.market, inst.symbol)] = inst
            self.by_symbol[(inst.venue, inst.symbol)] = inst
            set_unified_symbol(inst.venue, inst.market, inst.symbol, inst.usymbol)


def key_of(what: Any) -> tuple[str, str, str]:
    """(venue, market, symbol) of a spec, a Subscription or an event."""
    if isinstance(what, str):
        from tickwire.venues import parse

        what = parse(what)
    return what.venue, what.market, what.symbol
