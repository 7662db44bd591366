"""Several venue servers started and stopped together (:class:`ServerGroup`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Self

from .control import ControlServer
from .tls import SimCertificates
from .venue import VenueSim

__all__ = ["ServerGroup"]


class ServerGroup:
    """Several :class:`VenueSim` servers, one per venue, each on its own port, started and
    stopped together; an async context manager.

    A subclass fills :attr:`venues` and sets :attr:`host` and :attr:`port` (with ``port=N``,
    server ``i`` listens on ``N+i``; ``port=0`` picks free ports). With :attr:`tls` set, every
    server speaks TLS with a certificate made at start (:class:`SimCertificates`); the CA bundle
    is :attr:`ca_file` and is announced on the ready line.
    """

    venues: dict[str, VenueSim]
    host: str
    port: int
    tls: bool = False
    tls_dir: str | None = None
    certificates: SimCertificates | None = None
    control_port: int | None = None
    """Serve the ground truth as JSON on this port (0: a free one; None: no control endpoint)."""
    control: ControlServer | None = None
    _started: bool = False

    async def start(self) -> Self:
        if self._started:
            return self
        ctx = None
        if self.tls:
            if self.certificates is None:
                self.certificates = SimCertificates(("127.0.0.1", "::1", "localhost", self.host), self.tls_dir)
            ctx = self.certificates.server_context()
        started: list[VenueSim] = []
        try:
            for i, sim in enumerate(self.venues.values()):
                await sim.start(self.host, self.port + i if self.port else 0, ssl_context=ctx)
                started.append(sim)
            if self.control_port is not None:
                self.control = ControlServer(self.venues, self.host, self.control_port)
                await self.control.start()
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
        if self.control is not None:
            await self.control.stop()
            self.control = None
        for sim in self.venues.values():
            await sim.stop()
        if self.certificates is not None:
            self.certificates.cleanup()
            self.certificates = None

    @property
    def control_url(self) -> str | None:
        """``http://HOST:PORT`` of the control endpoint (:mod:`.control`), or None."""
        return self.control.url if self.control is not None else None

    @property
    def ca_file(self) -> str | None:
        """Path of the CA bundle (PEM) clients must trust, with TLS (``SSL_CERT_FILE=...``)."""
        return self.certificates.ca_file if self.certificates is not None else None

    def client_ssl_context(self) -> Any:
        """An ``ssl.SSLContext`` trusting this run's CA (``None`` without TLS)."""
        return self.certificates.client_context() if self.certificates is not None else None

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
                "venues": {name: {"url": sim.url, "rest": sim.rest_url, "paths": list(sim.paths)}
                           for name, sim in self.venues.items()},
                **({"tls": {"ca_file": self.ca_file}} if self.ca_file else {}),
                **({"control": self.control_url} if self.control_url else {}),
                **self.ready_extra(),
            },
            separators=(",", ":"),
        )
