"""Local simulators that speak each venue's WebSocket protocol on loopback.

::

    from tickwire.sim import Simulator
    async with Simulator(venues=["bybit"], seed=1, options={"bybit": {"speed": 5}}) as sim:
        url = sim.endpoints["bybit"] + "/v5/public/linear"
        sim.venue("bybit").inject("drop")

Each venue simulator (``tickwire/sim/<venue>.py``, a :class:`VenueSim` subclass registered with
``@register_venue("<venue>")``) runs its own picows server on its own port; it is built on the
venue-independent :mod:`tickwire.sim.framework` and carries everything the rest of tickwire asks
of it: its replay dialect (``tickwire replay``) and its demo streams (:func:`demo_streams`). The
modules of this package are imported automatically (the framework package and ``replay`` aside),
so adding ``<venue>.py`` is enough to make ``Simulator(venues=["<venue>"])`` work.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Iterable, Mapping, Sequence

from .framework import (
    VENUE_SIMS,
    Fault,
    FaultSpec,
    ServerGroup,
    SimOptions,
    SimStats,
    VenueSim,
    known_faults,
    parse_duration,
    parse_fault,
)

__all__ = [
    "Fault",
    "FaultSpec",
    "SimOptions",
    "SimStats",
    "Simulator",
    "VENUE_SIMS",
    "VenueSim",
    "demo_streams",
    "known_faults",
    "parse_duration",
    "parse_fault",
]

_NOT_VENUES = {"replay"}


def _load_venues() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.ispkg or mod.name.startswith("_") or mod.name in _NOT_VENUES:
            continue
        importlib.import_module(f"{__name__}.{mod.name}")


_load_venues()


def demo_streams(venues: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The streams ``tickwire demo`` records, per venue simulator (every registered one by default)."""
    names = list(VENUE_SIMS) if venues is None else list(venues)
    unknown = [v for v in names if v not in VENUE_SIMS]
    if unknown:
        raise ValueError(f"unknown venue(s) {unknown}; known: {', '.join(sorted(VENUE_SIMS))}")
    return {v: list(VENUE_SIMS[v].demo_streams) for v in names}


class Simulator(ServerGroup):
    """Several venue simulators started and stopped together.

    ``faults`` apply to every venue that supports them; prefix one with ``"<venue>:"`` to target
    a single venue (``"bybit:skip-u-every=100"``). A one-shot fault that acts on live connections
    (``drop``, ``notice``, ``skip-u``…) waits for the first subscription; ``name@5s`` applies it
    5 s after start, ``name@sub`` at the first subscription (see :mod:`.framework.faults`).
    ``options`` maps a venue name to its options (``{"okx": {"latency_ms": 30, "jitter_ms": 10}}``).
    With ``port=N`` and several venues, venue ``i`` listens on ``N+i``; ``port=0`` picks free
    ports. ``tls=True`` serves ``wss://``/``https://`` with a certificate made at start; the CA
    bundle is :attr:`ca_file` (``tls_dir`` chooses where it is written). ``control_port=0``
    serves each venue's ground truth (``sim.venue(v).truth``) as JSON on a port of its own,
    :attr:`control_url` (see :mod:`tickwire.sim.framework.control`).
    """

    def __init__(
        self,
        venues: Sequence[str] = ("bybit",),
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        faults: Sequence[str] = (),
        options: Mapping[str, Mapping[str, Any]] | None = None,
        tls: bool = False,
        tls_dir: str | None = None,
        control_port: int | None = None,
    ):
        if isinstance(venues, str):
            venues = [venues]
        unknown = [v for v in venues if v not in VENUE_SIMS]
        if unknown:
            raise ValueError(f"unknown venue(s) {unknown}; known: {', '.join(sorted(VENUE_SIMS))}")
        options = dict(options or {})
        bad = [k for k in options if k not in venues]
        if bad:
            raise ValueError(f"options given for venue(s) not simulated: {bad}")
        per_venue: dict[str, list[str]] = {v: [] for v in venues}
        for spec in faults:
            spec = str(spec)
            venue, sep, rest = spec.partition(":")
            if sep and venue in VENUE_SIMS:
                if venue not in per_venue:
                    raise ValueError(f"fault {spec!r} targets venue {venue!r}, which is not simulated")
                VENUE_SIMS[venue].check_fault(rest)
                per_venue[venue].append(rest)
                continue
            f = parse_fault(spec)  # grammar check, ValueError on unknown names
            targets = [v for v in venues if f.name in VENUE_SIMS[v].FAULTS]
            if not targets:
                valid = sorted({n for v in venues for n in VENUE_SIMS[v].FAULTS})
                raise ValueError(f"fault {f.name!r} is not supported by {', '.join(venues)}; "
                                 f"their faults: {', '.join(valid)}")
            for v in targets:
                per_venue[v].append(spec)
        self.host = host
        self.port = port
        self.seed = seed
        self.tls = tls
        self.tls_dir = tls_dir
        self.control_port = control_port
        self.venues: dict[str, VenueSim] = {
            v: VENUE_SIMS[v](seed=seed, options=options.get(v), faults=per_venue[v]) for v in venues
        }
        self._started = False

    def venue(self, name: str) -> VenueSim:
        return self.venues[name]
