"""Computed-stream specs: ``SPEC@VIEW``, one syntax for every venue.

``SPEC`` is any book or trade stream spec (``okx:books:BTC-USDT``, ``bybit.linear:orderbook.50:BTCUSDT``,
``bge:fills:BTC_USDT``); ``VIEW`` says what is computed from it:

=========================  ====================  ==================================================
view                       from                  events
=========================  ====================  ==================================================
``snapshot{N}_{interval}`` a book stream         :class:`~tickwire.model.BookSnapshot`: the best N
                                                 levels at every boundary of a time grid
                                                 (``snapshot10_1s``, ``snapshot25_100ms``)
``snapshot{N}``            a book stream         the best N levels whenever they change
``quotes``                 a book stream         :class:`~tickwire.model.Quote`: best bid/ask when
                                                 either changes
``bars{k}{ms|s|m|h|d}``    a trade stream        :class:`~tickwire.model.TradeBar` by time
                                                 (venue time of the trades): ``bars1m``
``bars{k}ticks``           a trade stream        a bar every k trades: ``bars100ticks``
``bars{x}vol``             a trade stream        a bar once the size traded reaches x: ``bars10vol``
``bars{x}value``           a trade stream        a bar once price × size reaches x:
                                                 ``bars1000000value``
=========================  ====================  ==================================================

Intervals are written ``{k}{unit}`` with unit ``ms``, ``s``, ``m``, ``h`` (``d`` for bars); the
canonical spelling uses the largest unit that divides exactly (``1000ms`` -> ``1s``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from tickwire.subscription import SpecError, Subscription

UNITS_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000}
MAX_DEPTH = 1000

_SNAPSHOT = re.compile(r"snapshot(\d+)(?:_(\d+)(ms|s|m|h))?")
_BARS = re.compile(r"bars(\d+)(ms|s|m|h|d)|bars(\d+)ticks|bars([0-9.eE+]+)(vol|value)")

BOOK_VIEWS = ("snapshot", "quotes")
TRADE_VIEWS = ("bars",)


class View(msgspec.Struct, frozen=True):
    """One computed view. ``kind``: ``snapshot``, ``quotes`` or ``bars``; ``text`` its canonical
    spelling. Snapshots: ``depth`` and ``interval_ns`` (0 = on every change). Bars: ``unit``
    (``time``, ``ticks``, ``vol``, ``value``) and ``size`` (ns, a count, or a decimal string)."""

    kind: str
    text: str
    depth: int = 0
    interval_ns: int = 0
    unit: str = ""
    size: str = ""

    @property
    def table(self) -> str:
        """The table ``tickwire derive`` writes this view to (``snapshot10_1s``, ``quotes``, ``bars1m``)."""
        return self.text


def fmt_interval(ns: int, units: tuple[str, ...] = ("d", "h", "m", "s", "ms")) -> str:
    """Nanoseconds in the largest unit that divides them exactly: 60_000_000_000 -> "1m"."""
    for unit in units:
        u = UNITS_NS[unit]
        if ns % u == 0:
            return f"{ns // u}{unit}"
    raise ValueError(ns)


def _fmt_decimal(d: Decimal) -> str:
    return format(d.normalize(), "f")


def parse_view(text: str) -> View:
    """``"snapshot10_1s"`` -> View; SpecError saying what is allowed otherwise."""
    t = text.strip()
    m = _SNAPSHOT.fullmatch(t)
    if m:
        depth = int(m.group(1))
        if not 1 <= depth <= MAX_DEPTH:
            raise SpecError(f"bad view {text!r}: depth {depth} must be 1..{MAX_DEPTH}")
        if m.group(2) is None:
            return View("snapshot", f"snapshot{depth}", depth=depth)
        ns = int(m.group(2)) * UNITS_NS[m.group(3)]
        if ns <= 0:
            raise SpecError(f"bad view {text!r}: the interval must be positive (snapshot{depth} without "
                            "an interval gives a snapshot on every change)")
        iv = fmt_interval(ns, ("h", "m", "s", "ms"))
        return View("snapshot", f"snapshot{depth}_{iv}", depth=depth, interval_ns=ns)
    if t == "quotes":
        return View("quotes", "quotes")
    m = _BARS.fullmatch(t)
    if m:
        if m.group(1) is not None:
            ns = int(m.group(1)) * UNITS_NS[m.group(2)]
            if ns <= 0:
                raise SpecError(f"bad view {text!r}: the bar interval must be positive")
            return View("bars", f"bars{fmt_interval(ns)}", unit="time", size=str(ns))
        if m.group(3) is not None:
            n = int(m.group(3))
            if n <= 0:
                raise SpecError(f"bad view {text!r}: the tick count must be positive")
            return View("bars", f"bars{n}ticks", unit="ticks", size=str(n))
        try:
            x = Decimal(m.group(4))
        except InvalidOperation:
            x = Decimal(0)
        if not x.is_finite() or x <= 0:
            raise SpecError(f"bad view {text!r}: the bar size must be a positive number")
        s = _fmt_decimal(x)
        return View("bars", f"bars{s}{m.group(5)}", unit=m.group(5), size=s)
    raise SpecError(f"bad view {text!r}: expected snapshot{{N}}_{{interval}} (snapshot10_1s, snapshot25_100ms), "
                    "snapshot{N} (on every change), quotes, or bars{k}{ms|s|m|h|d} / bars{k}ticks / "
                    "bars{x}vol / bars{x}value (bars1m, bars100ticks, bars10vol, bars1000000value)")


def split(spec: str) -> tuple[str, str | None]:
    """``"okx:books:BTC-USDT@quotes"`` -> ("okx:books:BTC-USDT", "quotes"); no ``@``: (spec, None).
    (A symbol never contains ``@``; a view never contains ``:``.)"""
    base, sep, view = spec.rpartition("@")
    if not sep or ":" in view:
        return spec, None
    return base, view


class DerivedSubscription(Subscription, frozen=True):
    """A computed stream: ``base`` (the venue stream it is computed from) and ``view``. ``spec``
    is ``base.spec + "@" + view.text``; ``kind`` is ``derived``; the wire fields are the base's."""

    base: Any = None
    view: Any = None


def derive_subscription(base: Subscription, view_text: str, spec: str) -> DerivedSubscription:
    """Check ``view_text`` against the base stream and build the computed stream's subscription."""
    view = parse_view(view_text)
    if view.kind in BOOK_VIEWS and base.kind != "book":
        raise SpecError(f"bad subscription {spec!r}: {view.text} is computed from a book stream; "
                        f"{base.spec} is a {base.kind} stream")
    if view.kind in TRADE_VIEWS and base.kind != "trades":
        raise SpecError(f"bad subscription {spec!r}: {view.text} is computed from a trade stream; "
                        f"{base.spec} is a {base.kind} stream")
    if base.needs_auth and base.kind not in ("book", "trades"):
        raise SpecError(f"bad subscription {spec!r}: views apply to public book and trade streams")
    return DerivedSubscription(spec=f"{base.spec}@{view.text}", venue=base.venue, market=base.market,
                               channel=base.channel, symbol=base.symbol, kind="derived", endpoint=base.endpoint,
                               topic=base.topic, needs_auth=base.needs_auth, params=base.params, base=base,
                               view=view)
