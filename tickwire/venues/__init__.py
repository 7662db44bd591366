"""Venue dialects (sans-I/O). Each venue's protocol knowledge lives in one module here."""

from __future__ import annotations

import importlib
import importlib.util

from tickwire.venues.base import Venue

# venue name -> "module:Class"; modules are imported on first use.
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
    """Venues whose dialect module is present."""
    return sorted(n for n, t in _REGISTRY.items() if importlib.util.find_spec(t.partition(":")[0]) is not None)


def get_venue(name: str) -> Venue:
    """The dialect for ``name`` (KeyError if unknown)."""
    v = _INSTANCES.get(name)
    if v is None:
        mod, _, cls = _REGISTRY[name].partition(":")
        v = _INSTANCES[name] = getattr(importlib.import_module(mod), cls)()
    return v
