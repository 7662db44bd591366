"""Several venue servers started and stopped together (:class:`ServerGroup`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Self

from .venue import VenueSim

__all__ = ["ServerGroup"]


class ServerGroup:
    """Several :class:`VenueSim` servers, one per venue, each on its own port, started and
    stopped together; an async context manager.

    A subclass fills :attr:`venues` and sets :attr:`host` and :attr:`port` (with ``port=N``,
    server ``i`` listens on ``N+i``; ``port=0`` picks free ports).
    """

    venues: dict[str, VenueSim]
    host: str
    port: int
    _started: bool = False

    async def start(self) -> Self:
        if self._started:
            return self
        started: list[VenueSim] = []
        try:
            for i, sim in enumerate(self.venues.values()):
                await sim.start(self.host, self.port + i if self.port else 0)
                started.append(sim)
        except BaseException:
            for sim in started:
                await sim.stop()
            raise
        self._started = True
        return self

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for sim in self.venues.values():
            await sim.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Start (if needed) and run until cancelled, then stop."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    @property
    def endpoints(self) -> dict[str, str]:
        """Base URL per venue, e.g. ``{"bybit": "ws://127.0.0.1:PORT"}``, as ``tickwire.stream(endpoints=...)``
        and ``--endpoint`` take them."""
        return {name: sim.url for name, sim in self.venues.items()}

    def ready_extra(self) -> dict[str, Any]:
        """More to announce on the ready line, after the endpoints (none by default)."""
        return {}

    def ready_line(self) -> str:
        """One JSON line announcing the endpoints (printed by ``tickwire sim`` and ``tickwire replay``)."""
        return json.dumps(
            {
                "event": "ready",
                "venues": {name: {"url": sim.url, "paths": list(sim.paths)} for name, sim in self.venues.items()},
                **self.ready_extra(),
            },
            separators=(",", ":"),
        )
