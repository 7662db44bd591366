"""Connections through an HTTP CONNECT proxy (a real one, on loopback, written here)."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.model import BookUpdate

from .conftest import collect

sim_mod = pytest.importorskip("tickwire.sim")


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        w.close()


async def test_feed_connects_through_an_http_connect_proxy():
    tunnels: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
        assert method == b"CONNECT"
        host, port = target.decode().rsplit(":", 1)
        tunnels.append(target.decode())
        ur, uw = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    pport = proxy.sockets[0].getsockname()[1]
    try:
        async with sim_mod.Simulator(venues=["bybit"], seed=1) as sim:
            async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints=sim.endpoints,
                                       proxy=f"http://127.0.0.1:{pport}") as feed:
                evs = await collect(feed, lambda es: sum(isinstance(e, BookUpdate) for e in es) >= 5)
    finally:
        proxy.close()
    assert tunnels and tunnels[0].startswith("127.0.0.1:")
    assert [e for e in evs if isinstance(e, BookUpdate)][-1].book.valid
