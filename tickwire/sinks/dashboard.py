"""Per-stream live statistics of a feed, as a ``rich`` table or a plain summary line.

::

    dash = Dashboard(feed)
    async for ev in feed:
        dash.add(ev)                   # cheap: a dict lookup and a few attribute updates
    ...
    live.update(dash.table())          # rich renderable, ~4 times a second
    print(dash.line())                 # one plain line (logs, CI, pipes)

Per stream: events/s (over the last ~second), events, last price (trade, ticker last, candle
close, DEX price...), best bid/ask (the maintained book, else the ticker), reconnects of the
connection serving it, gaps, and the median latency from exchange time to local receipt over
the last 256 timed events (trades, books, tickers, prices: candles carry their start time, not
an event time, and are left out).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from tickwire import model as m

_TIMED = (m.Trade, m.BookUpdate, m.Ticker, m.DexPrice, m.DexTrade, m.MarkPrice, m.IndexPrice, m.Liquidation)


class StreamStats:
    __slots__ = ("spec", "venue", "events", "last", "bid", "ask", "gaps", "lat", "hist", "rate")

    def __init__(self, spec: str, venue: str) -> None:
        self.spec = spec
        self.venue = venue
        self.events = 0
        self.last: str | None = None
        self.bid: str | None = None
        self.ask: str | None = None
        self.gaps = 0
        self.lat: deque[int] = deque(maxlen=256)          # recv_ns - exch_ns
        self.hist: deque[tuple[float, int]] = deque(maxlen=8)  # (monotonic, events) samples
        self.rate = 0.0

    def p50_ms(self) -> float | None:
        if not self.lat:
            return None
        s = sorted(self.lat)
        return s[len(s) // 2] / 1e6


class Dashboard:
    """Statistics of every stream of ``feed`` (specs known up front keep their order)."""

    def __init__(self, feed: Any = None, specs: list[str] | None = None, title: str = "tickwire") -> None:
        self.feed = feed
        self.title = title
        self.streams: dict[str, StreamStats] = {}
        self.events = 0
        self.status: dict[str, int] = {}
        self.started = time.monotonic()
        self._rate_total = 0.0
        self._hist: deque[tuple[float, int]] = deque(maxlen=8)
        for spec in specs or ([s.spec for s in feed.subscriptions] if feed is not None else []):
            venue = spec.split(":", 1)[0].split(".", 1)[0]
            self.streams[spec] = StreamStats(spec, venue)

    # ------------------------------------------------------------------ events
    def add(self, ev: m.Event) -> None:
        self.events += 1
        if ev.is_status:
            name = type(ev).__name__
            self.status[name] = self.status.get(name, 0) + 1
            if isinstance(ev, m.Gap) and ev.stream:
                self._stats(ev).gaps += 1
            return
        st = self._stats(ev)
        st.events += 1
        if ev.exch_ns and isinstance(ev, _TIMED):
            st.lat.append(ev.recv_ns - ev.exch_ns)
        cls = ev.__class__
        if cls is m.Trade or cls is m.DexTrade:
            if ev.price is not None:  # type: ignore[attr-defined]
                st.last = ev.price  # type: ignore[attr-defined]
        elif cls is m.Ticker:
            if ev.last is not None:  # type: ignore[attr-defined]
                st.last = ev.last  # type: ignore[attr-defined]
            if ev.bid is not None:  # type: ignore[attr-defined]
                st.bid = ev.bid  # type: ignore[attr-defined]
            if ev.ask is not None:  # type: ignore[attr-defined]
                st.ask = ev.ask  # type: ignore[attr-defined]
        elif cls is m.Candle or cls is m.DexCandle:
            st.last = ev.close  # type: ignore[attr-defined]
        elif cls in (m.DexPrice, m.MarkPrice, m.IndexPrice):
            st.last = ev.price  # type: ignore[attr-defined]
        elif cls is m.Funding:
            st.last = ev.rate  # type: ignore[attr-defined]

    def _stats(self, ev: m.Event) -> StreamStats:
        st = self.streams.get(ev.stream)
        if st is None:
            st = self.streams[ev.stream] = StreamStats(ev.stream, ev.venue)
        return st

    # ------------------------------------------------------------------ sampling
    def sample(self) -> None:
        """Update the events/s figures (call at each refresh)."""
        now = time.monotonic()
        for st in self.streams.values():
            st.rate = _rate(st.hist, now, st.events)
        self._rate_total = _rate(self._hist, now, self.events)

    def _books(self) -> dict[str, Any]:
        try:
            return self.feed.books() if self.feed is not None else {}
        except Exception:
            return {}

    def _stats_of_feed(self) -> list[dict[str, Any]]:
        return self.feed.stats() if self.feed is not None else []

    def _reconnects(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self._stats_of_feed():
            for spec in c["streams"]:
                out[spec] = out.get(spec, 0) + c["reconnects"]
        return out

    def rows(self) -> list[tuple]:
        """(spec, events/s, events, last, bid, ask, reconnects, gaps, p50 ms) per stream."""
        books = self._books()
        rec = self._reconnects()
        out = []
        for spec, st in self.streams.items():
            bid, ask = st.bid, st.ask
            book = books.get(spec)
            if book is not None and book.valid:
                b, a = book.best_bid(), book.best_ask()
                bid = b[0] if b else bid
                ask = a[0] if a else ask
            out.append((spec, st.rate, st.events, st.last, bid, ask, rec.get(spec, 0), st.gaps, st.p50_ms()))
        return out

    @property
    def reconnects(self) -> int:
        return sum(c["reconnects"] for c in self._stats_of_feed())

    @property
    def gaps(self) -> int:
        return self.status.get("Gap", 0)

    def lines_text(self) -> str:
        """The lines (hosts) of venues that have several: ``okx: ws.okx.com* 12/15 ms, wsaws.okx.com
        40/44 ms`` (heartbeat round trip p50/p90; * streams from it, (down) does not answer); ""
        when no venue has several."""
        try:
            rows = self.feed.line_stats() if self.feed is not None and hasattr(self.feed, "line_stats") else []
        except Exception:
            return ""
        per: dict[str, list[str]] = {}
        for r in rows:
            p50, p90 = r["rtt_p50_ms"], r["rtt_p90_ms"]
            rtt = "-" if p50 is None else f"{p50:.0f}/{p90:.0f} ms"
            mark = "*" if r.get("active") else ""
            per.setdefault(r["venue"], []).append(f"{r['host']}{mark} {rtt}" + ("" if r["up"] else " (down)"))
        return "; ".join(f"{v}: {', '.join(hosts)}" for v, hosts in per.items())

    def p50_ms(self) -> float | None:
        lat = [x for st in self.streams.values() for x in st.lat]
        if not lat:
            return None
        lat.sort()
        return lat[len(lat) // 2] / 1e6

    # ------------------------------------------------------------------ rendering
    def line(self, extra: str = "") -> str:
        """One plain summary line."""
        p50 = self.p50_ms()
        active = sum(1 for st in self.streams.values() if st.events)
        text = (f"{time.monotonic() - self.started:5.1f}s  {self.events:,} events ({self._rate_total:,.0f}/s) on "
                f"{active}/{len(self.streams)} streams; reconnects {self.reconnects}; gaps {self.gaps}; "
                f"p50 exch->recv {'-' if p50 is None else f'{p50:.1f} ms'}")
        lines = self.lines_text()
        if lines:
            text += f"; lines {lines}"
        return text + (f"; {extra}" if extra else "")

    LEGEND = ("events: normalized events (one book update is one event but many level rows in the dataset); "
              "last/bid/ask: the venue's own strings and units (contracts or coins); "
              "p50 ms: exchange time -> local receipt")

    def table(self, caption: str = "", width: int | None = None, height: int | None = None,
              legend: bool = True) -> Any:
        """A rich table. Below ~110 columns of ``width`` the events, reconnects and gaps columns
        are left out (the caption then gives the totals), so that it fits 80 columns; with
        ``height`` (the terminal's lines) the busiest streams that fit are shown and the rest
        counted in one row, so the title never scrolls off an 80x24 terminal."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        narrow = width is not None and width < 110
        spec_w = max(16, min(36, (width or 200) - 53)) if narrow else 36
        if narrow:
            caption = (f"reconnects {self.reconnects}, gaps {self.gaps}" + (f"  |  {caption}" if caption else ""))
        lines = self.lines_text()
        if lines:  # several hosts per venue: round trip p50/p90 per line, * = streaming from it
            caption = (caption + "\n" if caption else "") + f"lines (rtt p50/p90): {lines}"
        if legend:
            caption = (caption + "\n" if caption else "") + self.LEGEND
        t = Table(title=self.title, caption=caption or None, box=box.SIMPLE_HEAD, expand=False,
                  title_justify="left", caption_justify="left", header_style="bold", pad_edge=False)
        t.add_column("stream", no_wrap=True, overflow="ellipsis", min_width=16, max_width=spec_w)
        t.add_column("ev/s", justify="right", no_wrap=True, min_width=4)
        if not narrow:
            t.add_column("events", justify="right", no_wrap=True, min_width=6)
        for name, style in (("last", None), ("bid", "green"), ("ask", "red")):
            t.add_column(name, justify="right", style=style, no_wrap=True, overflow="ellipsis", min_width=8)
        if not narrow:
            t.add_column("reconn", justify="right", no_wrap=True, min_width=6)
            t.add_column("gaps", justify="right", no_wrap=True, min_width=4)
        t.add_column("p50 ms", justify="right", no_wrap=True, min_width=6)
        pw = 9 if narrow else 12
        rows = self.rows()
        hidden: list[tuple] = []
        if height is not None:
            # title, blank, header, rule, blank before the caption, a spare line; the caption wrapped
            w = max(20, width or 80)
            cap_lines = sum(max(1, -(-len(line) // w)) for line in (caption or "").splitlines())
            room = max(2, height - 6 - cap_lines)
            if len(rows) > room:
                order = sorted(range(len(rows)), key=lambda i: (-rows[i][1], -rows[i][2], i))
                keep = set(order[:room - 1])
                hidden = [r for i, r in enumerate(rows) if i not in keep]
                rows = [r for i, r in enumerate(rows) if i in keep]
        for spec, rate, n, last, bid, ask, rec, gaps, p50 in rows:
            cells: list[Any] = [Text(_spec(spec, spec_w)), f"{rate:,.0f}"]
            if not narrow:
                cells.append(f"{n:,}")
            cells += [_short(last, pw), _short(bid, pw), _short(ask, pw)]
            if not narrow:
                cells += [_bad(rec), _bad(gaps)]
            cells.append("-" if p50 is None else f"{p50:.1f}")
            t.add_row(*cells, style="dim" if not n else None)
        if hidden:
            cells = [Text(f"... {len(hidden)} more streams"), f"{sum(r[1] for r in hidden):,.0f}"]
            if not narrow:
                cells.append(f"{sum(r[2] for r in hidden):,}")
            cells += ["", "", ""] + (["", _bad(sum(r[7] for r in hidden))] if not narrow else []) + [""]
            t.add_row(*cells, style="italic")
        return t


class LiveView:
    """Shows a :class:`Dashboard` while a run goes, on ``console`` (stderr for commands whose
    stdout is data): a live table in a terminal, else one summary line every ``every_s``
    seconds (``every_s=0``: none). ``caption()`` is called at each refresh."""

    def __init__(self, board: Dashboard, console: Any, caption: Any, live: bool, every_s: float = 5.0,
                 print_line: Any = None) -> None:
        self.board = board
        self.console = console
        self.caption = caption
        self.live = live
        self.every_s = every_s
        self.print_line = print_line or (lambda text: print(text, flush=True))
        self._live: Any = None
        self._task: Any = None

    def _render(self) -> Any:
        con = self.console
        return self.board.table(self.caption(), con.width, con.height)

    async def _refresh(self) -> None:
        import asyncio

        next_line = time.monotonic() + self.every_s
        while True:
            await asyncio.sleep(0.25)
            self.board.sample()
            if self._live is not None:
                self._live.update(self._render(), refresh=True)
            elif self.every_s and time.monotonic() >= next_line:
                next_line += self.every_s
                self.print_line(self.board.line())

    async def __aenter__(self) -> "LiveView":
        import asyncio

        if self.live:
            from rich.live import Live

            self._live = Live(self._render(), console=self.console, auto_refresh=False, transient=False,
                              vertical_overflow="crop")
            self._live.__enter__()
        self._task = asyncio.get_running_loop().create_task(self._refresh())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._live is not None:
            self.board.sample()
            self._live.update(self._render(), refresh=True)
            self._live.__exit__(None, None, None)


def _rate(hist: deque, now: float, count: int) -> float:
    hist.append((now, count))
    while len(hist) > 2 and now - hist[1][0] >= 1.0:  # keep about one second of samples
        hist.popleft()
    t0, c0 = hist[0]
    return (count - c0) / (now - t0) if now > t0 else 0.0


def _spec(spec: str, width: int = 36) -> str:
    """A spec made to fit ``width``: the symbol is kept (long DEX addresses shortened in the
    middle), the venue/channel part is cut in the middle."""
    if len(spec) <= width:
        return spec
    head, _, sym = spec.rpartition(":")
    if len(sym) > 14 and len(head) + 1 + len(sym) > width:
        sym = f"{sym[:max(6, width - len(head) - 6)]}…{sym[-4:]}"
    if len(head) + 1 + len(sym) <= width:
        return f"{head}:{sym}"
    room = width - len(sym) - 2
    if room < 4:
        return spec[: width - 1] + "…"
    return f"{head[:room]}…:{sym}"


def _short(v: str | None, width: int = 12) -> str:
    if v is None:
        return "-"
    return v if len(v) <= width else v[: width - 1] + "…"


def _bad(n: int) -> str:
    return f"[bold yellow]{n}[/]" if n else "0"
