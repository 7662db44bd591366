"""Venue dialects (sans-I/O): one package per venue, and the registry of them.

Each venue's protocol knowledge lives in its own package (``bybit``, ``okx``, ``okxdex``,
``bge``); what every venue shares is here: the session contract (:mod:`.base`), the
subscription lifecycle (:mod:`.ledger`) and the OKX v5 gateway both OKX venues speak
(:mod:`.okx_gateway`). :func:`parse` resolves a spec through the venue it names.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Sequence

from tickwire.subscription import SpecError, Subscription, split_spec
from tickwire.venues.base import Venue

# venue name -> "package:Class"; packages are imported on first use.
_REGISTRY: dict[str, str] = {
    "bybit": "tickwire.venues.bybit:Bybit",
    "okx": "tickwire.venues.okx:OKX",
    "okxdex": "tickwire.venues.okxdex:OKXDex",
    "bge": "tickwire.venues.bge:BGE",
}
_INSTANCES: dict[str, Venue] = {}


def register(name: str, target: str) -> None:
    _REGISTRY[name] = target


def venue_names() -> list[str]:
    """Venues whose dialect package is present."""
    return sorted(n for n, t in _REGISTRY.items() if importlib.util.find_spec(t.partition(":")[0]) is not None)


def get_venue(name: str) -> Venue:
    """The dialect for ``name`` (KeyError if unknown)."""
    v = _INSTANCES.get(name)
    if v is None:
        mod, _, cls = _REGISTRY[name].partition(":")
        v = _INSTANCES[name] = getattr(importlib.import_module(mod), cls)()
    return v


def parse(spec: str) -> Subscription:
    """Parse and validate one spec (``VENUE[.MARKET]:CHANNEL:SYMBOL``) against its venue's rules.

    ``SPEC@VIEW`` is a computed stream (``okx:books:BTC-USDT@snapshot10_1s``, see
    :mod:`tickwire.derive.spec`): a :class:`~tickwire.derive.spec.DerivedSubscription` of the base
    stream, computed on the consumer side by :func:`tickwire.stream`."""
    if "@" in spec:
        from tickwire.derive.spec import derive_subscription, split

        base, view = split(spec)
        if view is not None:
            return derive_subscription(parse(base), view, spec)
    venue, market, channel, symbol = split_spec(spec)
    try:
        dialect = get_venue(venue)
    except KeyError:
        raise SpecError(f"bad subscription {spec!r}: unknown venue {venue!r}; known venues: "
                        f"{', '.join(venue_names())}") from None
    return dialect.parse(market, channel, symbol, spec)


def parse_many(specs: Sequence[str | Subscription]) -> list[Subscription]:
    """Parse specs, dropping exact duplicates (same canonical spec) but keeping order."""
    seen: set[str] = set()
    out: list[Subscription] = []
    for s in specs:
        sub = s if isinstance(s, Subscription) else parse(s)
        if sub.kind == "derived":
            raise SpecError(f"{sub.spec} is a computed stream: open it with tickwire.stream() (or tickwire tail), "
                            "which computes it from its base stream on the consumer side, among the specs the "
                            "feed starts with; from a recording: tickwire derive")
        if sub.spec not in seen:
            seen.add(sub.spec)
            out.append(sub)
    return out
