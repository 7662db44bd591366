"""REST GETs (book snapshots) honour the feed's proxy and TLS settings: all on loopback, with a
real JSON server, a real HTTP proxy (CONNECT and forwarding) and a real SOCKS5 proxy written here."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import struct
import time
from urllib.parse import urlsplit

import pytest

import tickwire
from tickwire.model import BookUpdate
from tickwire.net.http import get_json

from .conftest import collect

FAST = {"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05}

# -- a tiny JSON server -------------------------------------------------------------------------


class JsonServer:
    """HTTP/1.1 on 127.0.0.1 (TLS with ``ssl``): ``/ok`` JSON, ``/missing`` 404, ``/boom`` 500,
    ``/hang`` never answers. ``requests`` holds each request line received."""

    def __init__(self, ssl_ctx: ssl.SSLContext | None = None) -> None:
        self.ssl_ctx = ssl_ctx
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None
        self.base = ""  # http(s)://127.0.0.1:PORT once started

    async def __aenter__(self) -> "JsonServer":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_ctx)
        port = self.server.sockets[0].getsockname()[1]
        self.base = f"{'https' if self.ssl_ctx else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append(line)
            path = line.split(" ")[1].split("?")[0]
            if path == "/hang":
                await asyncio.sleep(3600)
            status, body = {"/ok": (200, b'{"code":"0","data":[{"n":1}]}'),
                            "/boom": (500, b'{"msg":"internal"}')}.get(path, (404, b'{"msg":"not found"}'))
            writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (status, len(body), body))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


# -- proxies ------------------------------------------------------------------------------------


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        w.close()


class HttpProxy:
    """An HTTP proxy on 127.0.0.1: ``CONNECT host:port`` tunnels, and absolute-form requests
    (``GET http://host:port/path``) forwarded. ``seen`` holds each ``METHOD target``."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "HttpProxy":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            first, rest = head.split(b"\r\n", 1)
            method, target, version = first.decode().split(" ", 2)
            self.seen.append(f"{method} {target}")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                ur, uw = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                u = urlsplit(target)
                ur, uw = await asyncio.open_connection(u.hostname, u.port or 80)
                origin = (u.path or "/") + (f"?{u.query}" if u.query else "")
                uw.write(f"{method} {origin} {version}\r\n".encode() + rest)
            await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            writer.close()


class Socks5Proxy:
    """A SOCKS5 proxy on 127.0.0.1 (no authentication, CONNECT only). ``seen``: ``host:port``."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "Socks5Proxy":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ver, n = await reader.readexactly(2)
            methods = await reader.readexactly(n)
            if ver != 5 or 0 not in methods:
                writer.write(b"\x05\xff")
                return
            writer.write(b"\x05\x00")
            ver, cmd, _, atyp = await reader.readexactly(4)
            if atyp == 1:
                host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
            elif atyp == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            else:
                host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
            (port,) = struct.unpack("!H", await reader.readexactly(2))
            if cmd != 1:
                writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
                return
            self.seen.append(f"{host}:{port}")
            ur, uw = await asyncio.open_connection(host, port)
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            await asyncio.gather(_pipe(reader, uw), _pipe(ur, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


# -- TLS material ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


def _unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# -- tests ----------------------------------------------------------------------------------------


async def test_plain_get_decodes_json():
    async with JsonServer() as srv:
        body = await get_json(srv.base + "/ok?x=1", timeout_s=5)
    assert body == {"code": "0", "data": [{"n": 1}]}
    assert srv.requests == ["GET /ok?x=1 HTTP/1.1"]


async def test_http_url_goes_through_an_http_proxy():
    async with JsonServer() as srv, HttpProxy() as proxy:
        body = await get_json(srv.base + "/ok?instId=BTC-USDT", timeout_s=5, proxy=proxy.url)
    assert body["data"] == [{"n": 1}]
    assert proxy.seen == [f"GET {srv.base}/ok?instId=BTC-USDT"]
    assert srv.requests == ["GET /ok?instId=BTC-USDT HTTP/1.1"]


async def test_https_url_goes_through_an_http_connect_proxy(ca, server_tls):
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with JsonServer(server_tls) as srv, HttpProxy() as proxy:
        body = await get_json(srv.base + "/ok", timeout_s=5, proxy=proxy.url, ssl_context=trusting)
    assert body["code"] == "0"
    port = srv.base.rsplit(":", 1)[1]
    assert proxy.seen == [f"CONNECT 127.0.0.1:{port}"]
    assert srv.requests == ["GET /ok HTTP/1.1"]


async def test_get_goes_through_a_socks5_proxy():
    async with JsonServer() as srv, Socks5Proxy() as proxy:
        body = await get_json(srv.base + "/ok", timeout_s=5, proxy=proxy.url)
    assert body["code"] == "0"
    assert proxy.seen == [srv.base.removeprefix("http://")]
    assert srv.requests == ["GET /ok HTTP/1.1"]


async def test_a_dead_proxy_is_a_connection_error_not_a_direct_request():
    async with JsonServer() as srv:
        probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(ConnectionError):
            await get_json(srv.base + "/ok", timeout_s=5, proxy=f"http://127.0.0.1:{port}")
    assert srv.requests == []


async def test_self_signed_https_is_refused_by_default(server_tls):
    async with JsonServer(server_tls) as srv:
        with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED") as e:
            await get_json(srv.base + "/ok", timeout_s=5)
    assert "127.0.0.1" in str(e.value)


async def test_self_signed_https_is_accepted_unverified(server_tls):
    async with JsonServer(server_tls) as srv:
        body = await get_json(srv.base + "/ok", timeout_s=5, ssl_context=_unverified())
    assert body["code"] == "0"


async def test_https_is_accepted_with_a_context_trusting_the_ca(ca, server_tls):
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with JsonServer(server_tls) as srv:
        body = await get_json(srv.base + "/ok", timeout_s=5, ssl_context=trusting)
    assert body["code"] == "0"


@pytest.mark.parametrize("path,status", [("/missing", 404), ("/boom", 500)])
async def test_http_error_status_is_a_connection_error_without_the_query(path, status):
    async with JsonServer() as srv:
        with pytest.raises(ConnectionError) as e:
            await get_json(f"{srv.base}{path}?apiKey=TOPSECRET", timeout_s=5)
    msg = str(e.value)
    assert str(status) in msg and path in msg and "127.0.0.1" in msg
    assert "TOPSECRET" not in msg


async def test_no_reply_times_out_within_timeout_s():
    async with JsonServer() as srv:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await get_json(srv.base + "/hang", timeout_s=0.5)
        elapsed = time.monotonic() - t0
    assert 0.4 < elapsed < 2.0


@pytest.mark.parametrize("proxy", ["ftp://user:SECRETPW@host:21", "socks4://user:SECRETPW@host:1080",
                                   "user:SECRETPW@host:8080"])
async def test_unusable_proxy_scheme_is_a_clear_value_error_without_the_password(proxy):
    with pytest.raises(ValueError) as e:
        await get_json("http://127.0.0.1:1/ok", timeout_s=1, proxy=proxy)
    msg = str(e.value)
    assert "SECRETPW" not in msg
    assert "http" in msg and "https" in msg and "socks5" in msg
    scheme = proxy.split(":", 1)[0]
    if "//" in proxy:
        assert repr(scheme) in msg


async def test_proxy_password_is_not_in_connection_errors():
    probe = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(ConnectionError) as e:
        await get_json("http://127.0.0.1:1/ok", timeout_s=5, proxy=f"http://user:SECRETPW@127.0.0.1:{port}")
    assert "SECRETPW" not in str(e.value) and "user:" not in str(e.value)


async def test_okx_rest_snapshot_goes_through_the_feeds_proxy():
    """No WebSocket snapshot: the book's first state comes from REST, through the feed's proxy."""
    sim_mod = pytest.importorskip("tickwire.sim")
    async with HttpProxy() as proxy:
        async with sim_mod.Simulator(venues=["okx"], seed=5, options={"okx": {"no_initial_snapshot": True}}) as sim:
            async with tickwire.stream("okx:books:BTC-USDT", endpoints=sim.endpoints, proxy=proxy.url,
                                       timers={"okx": FAST}, venue_options={"okx": {"snapshot_wait_s": 0.3}}) as feed:
                evs = await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es))
    first = next(e for e in evs if isinstance(e, BookUpdate))
    assert first.snapshot and first.book.valid
    rest = [s for s in proxy.seen if s.startswith("GET ") and "/api/v5/market/books?" in s]
    assert rest and rest[0].startswith(f"GET {sim.endpoints['okx'].replace('ws://', 'http://')}/"), proxy.seen
    assert any(s.startswith("CONNECT ") for s in proxy.seen)  # the WebSocket went through it too
