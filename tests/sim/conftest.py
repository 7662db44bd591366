"""Fixtures shared by the simulator tests."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

import pytest

from tickwire.sim import Simulator, VenueSim

V = TypeVar("V", bound=VenueSim)


@pytest.fixture
async def sim_factory():
    """``sim_factory(VenueSimClass, path="", **defaults)`` -> ``make(**options)``.

    ``await make(**options)`` starts a one-venue :class:`Simulator` (``seed`` 1 unless given;
    ``faults`` from the options; the other options over ``defaults``) and returns
    ``(sim, venue_sim, endpoint + path)``. Every simulator started is stopped after the test and
    must have had no internal error.
    """
    sims: list[Simulator] = []

    def factory(cls: type[V], path: str = "", **defaults: Any) -> Callable[..., Awaitable[tuple[Simulator, V, str]]]:
        venue = cls.name

        async def make(**options: Any) -> tuple[Simulator, V, str]:
            faults = options.pop("faults", ())
            seed = options.pop("seed", 1)
            sim = Simulator(venues=[venue], seed=seed, faults=faults, options={venue: {**defaults, **options}})
            await sim.start()
            sims.append(sim)
            vs = sim.venue(venue)
            assert isinstance(vs, cls)
            return sim, vs, sim.endpoints[venue] + path

        return make

    yield factory
    for s in sims:
        venue_sims = list(s.venues.values())
        await s.stop()
        for vs in venue_sims:
            assert vs.stats.internal_errors == 0, vs.stats.last_internal_error
