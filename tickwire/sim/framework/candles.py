"""Candles built from a feed of prints: the venue-neutral part of a candle channel."""

from __future__ import annotations

from typing import Any, Callable

from .market import SymbolSpec, Trade, now_ms

__all__ = ["Candle", "CandleBuilder", "fixed_period_bounds", "market_fold"]


class Candle:
    """An OHLCV candle fed by trades (prices and sizes in units, turnover as a float)."""

    __slots__ = ("start", "end", "open", "high", "low", "close", "volume", "turnover", "last_ts", "closed")

    def __init__(self, start: int, end: int, price: int):
        self.start = start
        self.end = end  # inclusive, ms
        self.open = self.high = self.low = self.close = price
        self.volume = 0
        self.turnover = 0.0
        self.last_ts = start
        self.closed = False

    def add(self, price: int, size: int, notional: float, ts: int) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.turnover += notional
        self.last_ts = ts


def fixed_period_bounds(t_ms: int, period_s: float) -> tuple[int, int]:
    """``[start, end]`` (ms, end inclusive) of the ``period_s`` long candle holding ``t_ms``.

    The candle-period override the venue simulators offer so tests see candles close quickly.
    """
    p = max(1, int(period_s * 1000))
    start = t_ms - t_ms % p
    return start, start + p - 1


def market_fold(spec: SymbolSpec) -> Callable[[Candle, Trade], None]:
    """A :class:`CandleBuilder` fold for a :class:`Market`'s prints: OHLCV in units, turnover
    as quantity x price."""

    def fold(c: Candle, t: Trade) -> None:
        c.add(t.price, t.size, spec.qty_float(t.size) * spec.price_float(t.price), t.ts_ms)

    return fold


def _trade_ts(t: Trade) -> int:
    return t.ts_ms


class CandleBuilder:
    """Candles of one period built from a feed of prints (the venue-neutral part of a candle
    channel; the venue keeps its period rules and its wire format).

    The venue gives ``bounds(t_ms) -> (start, end)`` (ms, end inclusive) of the candle holding a
    time, ``fold(candle, trade)`` to add one print to a candle, ``make(start, end, open)`` to
    create a candle (:class:`Candle` by default) and ``ts(trade)``, the time of a print in ms
    (``None``: the print does not count in candles).

    Between :meth:`start` and :meth:`stop` the builder listens to a trade source. It keeps the
    open candle in :attr:`current`; when a print or the clock (:meth:`due`) passes its end, the
    candle is closed (``closed = True``), queued, and the next one opens at its close price. A
    print older than the open candle is ignored: its candle was closed already.
    """

    def __init__(self, bounds: Callable[[int], tuple[int, int]], fold: Callable[[Any, Any], None], *,
                 make: Callable[[int, int, Any], Any] = Candle, ts: Callable[[Any], int | None] = _trade_ts):
        self.bounds = bounds
        self.fold = fold
        self.make = make
        self.ts = ts
        self.current: Any = None
        self.closed: list[Any] = []
        self._source: list[Callable[[Any], None]] | None = None

    def start(self, source: list[Callable[[Any], None]], price: Any) -> None:
        """Open the candle of now at ``price`` and listen to ``source`` (a list of trade listeners)."""
        s, e = self.bounds(now_ms())
        self.current = self.make(s, e, price)
        self.closed = []
        source.append(self.on_trade)
        self._source = source

    def stop(self) -> None:
        """Stop listening to the trade source."""
        if self._source is not None:
            try:
                self._source.remove(self.on_trade)
            except ValueError:
                pass

    def _roll(self, t_ms: int) -> None:
        c = self.current
        assert c is not None
        c.closed = True
        self.closed.append(c)
        s, e = self.bounds(t_ms)
        self.current = self.make(s, e, c.close)

    def on_trade(self, trade: Any) -> None:
        c = self.current
        ts = self.ts(trade)
        if c is None or ts is None or ts < c.start:
            return
        if ts > c.end:
            self._roll(ts)
            c = self.current
        self.fold(c, trade)

    def due(self, t_ms: int) -> list[Any]:
        """Close the open candle if ``t_ms`` is past its end; take the candles closed since the last call."""
        c = self.current
        if c is not None and t_ms > c.end:
            self._roll(t_ms)
        closed, self.closed = self.closed, []
        return closed
