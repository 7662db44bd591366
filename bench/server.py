"""Loopback WebSocket server that replays one pre-generated :class:`~bench.streams.Stream`.

One server process per stream, on its own 127.0.0.1 port, serving the venue's public paths
(Bybit ``/v5/public/linear`` and ``/v5/public/spot``; OKX ``/ws/v5/public``; any query string is
ignored; other paths get 404). Per connection:

1. the client sends any subscribe frame; the server answers with the venue's ack (Bybit: one per
   request, ``req_id`` echoed; OKX: one per arg, ``arg`` echoed) after ``ack_delay`` seconds,
   standing in for network latency (some clients register their callbacks right *after*
   sending the subscribe);
2. ``start_delay`` seconds after the first subscribe, the data frames are written as fast as the
   client drains them: the frames are pre-encoded as WebSocket frames and grouped into ~64 KiB
   chunks of whole frames, written straight to the TCP transport, and writing stops on
   ``pause_writing`` until ``resume_writing`` (so memory stays bounded by the write buffer);
3. the socket then stays open, answering Bybit ``{"op":"ping"}`` and OKX text ``ping`` (and
   protocol pings), until the client closes.

The process is pinned to one core when asked, so its CPU is never charged to the client.
Standalone: ``python -m bench.server --stream bybit --n 10000 --port 8765``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import struct
import uuid
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from .streams import GENERATORS, Stream

CHUNK = 64 * 1024
WRITE_HIGH_WATER = 1024 * 1024


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked server-to-client FIN text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def encode_chunks(frames: list[bytes], chunk: int = CHUNK) -> list[bytes]:
    """WebSocket-encode `frames` and join them into chunks of whole frames."""
    out: list[bytes] = []
    buf: list[bytes] = []
    size = 0
    for f in frames:
        w = ws_text_frame(f)
        buf.append(w)
        size += len(w)
        if size >= chunk:
            out.append(b"".join(buf))
            buf, size = [], 0
    if buf:
        out.append(b"".join(buf))
    return out


class _Conn(WSListener):
    def __init__(self, server: "StreamServer", path: str) -> None:
        self.server = server
        self.path = path
        self.conn_id = str(uuid.uuid4())
        self.transport: WSTransport | None = None
        self.started = False
        self.closed = False
        self.resume = asyncio.Event()
        self.resume.set()
        self.task: asyncio.Task[None] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        tr: Any = transport.underlying_transport
        try:
            tr.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        except (AttributeError, NotImplementedError, TypeError):
            pass

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            replies, is_sub = self.server.stream.control_replies(
                frame.get_payload_as_bytes(), self.path, self.conn_id)
            if is_sub:
                loop = asyncio.get_running_loop()
                loop.call_later(self.server.ack_delay, self._send, replies)
                if not self.started:
                    self.started = True
                    loop.call_later(self.server.start_delay, self._start)
            else:
                self._send(replies)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def _send(self, replies: list[bytes]) -> None:
        if self.closed or self.transport is None:
            return
        for r in replies:
            self.transport.send(WSMsgType.TEXT, r)

    def _start(self) -> None:
        if not self.closed:
            self.task = asyncio.get_running_loop().create_task(self._stream())

    async def _stream(self) -> None:
        assert self.transport is not None
        write = self.transport.underlying_transport.write
        for i, chunk in enumerate(self.server.chunks):
            if self.closed:
                return
            if not self.resume.is_set():
                await self.resume.wait()
                if self.closed:
                    return
            write(chunk)
            if i % 64 == 63:
                await asyncio.sleep(0)  # let control frames in even if never paused
        self.server.completed += 1

    def pause_writing(self) -> None:
        self.resume.clear()

    def resume_writing(self) -> None:
        self.resume.set()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self.resume.set()


class StreamServer:
    def __init__(self, stream: Stream, ack_delay: float = 0.02, start_delay: float = 0.05) -> None:
        self.stream = stream
        self.ack_delay = ack_delay
        self.start_delay = max(start_delay, ack_delay)
        self.chunks = encode_chunks(stream.frames)
        self.completed = 0

    def listener_factory(self, request: WSUpgradeRequest) -> WSListener | None:
        path = request.path.decode("latin-1").split("?", 1)[0]
        if path.rstrip("/") not in self.stream.paths:
            return None  # 404
        return _Conn(self, path.rstrip("/"))

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        return await ws_create_server(self.listener_factory, host, port,
                                      websocket_handshake_timeout=10)


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _serve_main(stream: Stream, conn: Any, cpu: int | None, port: int) -> None:
    _pin(cpu)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    srv = StreamServer(stream)
    server = loop.run_until_complete(srv.start(port=port))
    conn.send(server.sockets[0].getsockname()[1])
    conn.close()
    loop.run_forever()


class ChildProcess:
    """A helper process (``self.proc``) that ends with its ``with`` block, killed if it lingers."""

    proc: Any = None

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServerProcess(ChildProcess):
    """Run a :class:`StreamServer` in a child process (fork: the frames are inherited)."""

    def __init__(self, stream: Stream, cpu: int | None = None, port: int = 0) -> None:
        self.stream = stream
        self.cpu = cpu
        self.port = port
        self.proc: Any = None

    def __enter__(self) -> "ServerProcess":
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_serve_main, args=(self.stream, child, self.cpu, self.port),
                                daemon=True, name=f"bench-server-{self.stream.key}")
        self.proc.start()
        child.close()
        if not parent.poll(60):
            self.close()
            raise RuntimeError("bench server did not start")
        self.port = parent.recv()
        parent.close()
        return self

    def url(self, path: str | None = None) -> str:
        return f"ws://127.0.0.1:{self.port}{path or self.stream.paths[0]}"



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stream", choices=sorted(GENERATORS), default="bybit")
    ap.add_argument("--n", type=int, default=10_000, help="deltas (trade messages)")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--cpu", type=int, default=None)
    a = ap.parse_args()
    stream = GENERATORS[a.stream](a.n)
    _pin(a.cpu)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    srv = StreamServer(stream)
    server = loop.run_until_complete(srv.start(port=a.port))
    port = server.sockets[0].getsockname()[1]
    for p in stream.paths:
        print(f"serving {stream.title}: ws://127.0.0.1:{port}{p}", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
