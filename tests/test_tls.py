"""wss:// end to end on loopback: TLS verified by default, and the full pipeline (bounded reads
included) keeps a book exact through TLS behind a sender faster than the consumer."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

import tickwire
from tickwire.model import BookUpdate, Disconnected

from .conftest import drain_books_after_a_stall

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import streams  # noqa: E402
from bench.server import StreamServer  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory) -> ssl.SSLContext:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


async def _tls_server(st: streams.Stream, ctx: ssl.SSLContext):
    srv = StreamServer(st)
    from picows import ws_create_server

    server = await ws_create_server(srv.listener_factory, "127.0.0.1", 0, ssl=ctx, websocket_handshake_timeout=10)
    return server, f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_wss_stream_keeps_the_book_exact_behind_a_fast_sender(server_tls):
    st = streams.bybit_orderbook(20_000, seed=4)
    server, base = await _tls_server(st, server_tls)
    try:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints={"bybit": base},
                                   verify_tls=False, read_ahead=500) as feed:
            book, pending = await drain_books_after_a_stall(feed, st.expected_msgs)
        assert book is not None and book.bids == st.expected_bids and book.asks == st.expected_asks
        # read_ahead + what the TLS transport reads per loop cycle (aiofastnet: 256 KiB) of ~200-byte
        # frames; without a bound this is the whole socket backlog (tens of thousands, see
        # test_slow_consumer.py)
        assert max(pending) < 500 + 262_144 // 150
    finally:
        server.close()


async def test_wss_certificate_is_verified_by_default(server_tls):
    st = streams.bybit_orderbook(100, seed=4)
    server, base = await _tls_server(st, server_tls)
    try:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints={"bybit": base},
                                   backoff_base_s=0.05, backoff_cap_s=0.1) as feed:
            async for ev in feed:
                assert not isinstance(ev, BookUpdate), "connected to a server with an untrusted certificate"
                if isinstance(ev, Disconnected):
                    assert "CERTIFICATE_VERIFY_FAILED" in ev.reason or "certificate verify failed" in ev.reason
                    break
    finally:
        server.close()
