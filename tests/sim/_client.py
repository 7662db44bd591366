"""A tiny raw picows client for the simulator tests (no tickwire client code).

:class:`RawClient` keeps every TEXT frame's payload in :attr:`~RawClient.q`, records the close
code and reason, and counts PONG control frames. A venue's test module subclasses it only for
what that venue's wire needs: which frames to keep (:meth:`~RawClient.on_data`), how a kept
frame becomes a message (:meth:`~RawClient.parse`), a text heartbeat reply to skip
(:attr:`~RawClient.text_pong`) and the close reason's type (:meth:`~RawClient.reason`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Self

import picows

TEXT = picows.WSMsgType.TEXT


class RawClient(picows.WSListener):
    data_types: tuple[picows.WSMsgType, ...] = (TEXT,)
    text_pong: bytes | None = None  # a text heartbeat reply that recv() skips

    def __init__(self) -> None:
        self.q: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: Any = None
        self.close_reason: Any = self.reason(None)
        self.pongs = 0
        self.transport: picows.WSTransport | None = None

    @classmethod
    async def connect(cls, url: str, *, ip: str | None = None, headers: dict[str, str] | None = None,
                      ssl_context: Any = None) -> Self:
        """Connect to ``url``; ``ip`` is sent as ``X-Forwarded-For``; ``ssl_context`` for ``wss://``."""
        if ip:
            headers = {"X-Forwarded-For": ip}
        kw = {"ssl_context": ssl_context} if ssl_context is not None else {}
        _, client = await picows.ws_connect(cls, url, extra_headers=headers, **kw)
        return client  # type: ignore[return-value]

    def reason(self, message: bytes | None) -> Any:
        """The close reason as kept in :attr:`close_reason` (text; ``""`` when there is none)."""
        return message.decode() if message else ""

    def on_data(self, transport: picows.WSTransport, msg_type: picows.WSMsgType, payload: bytes) -> None:
        """A frame of one of :attr:`data_types`: queue its payload."""
        self.q.put_nowait(payload)

    def parse(self, item: Any) -> dict:
        """The JSON message of a queued item."""
        return json.loads(item)

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        mt = frame.msg_type
        if mt in self.data_types:
            self.on_data(transport, mt, frame.get_payload_as_bytes())
        elif mt == picows.WSMsgType.PONG:
            self.pongs += 1
        elif mt == picows.WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            self.close_reason = self.reason(frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.closed.set()

    def send(self, obj: Any) -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        assert self.transport is not None
        self.transport.send(TEXT, data)

    async def recv_raw(self, timeout: float = 2.0) -> Any:
        async with asyncio.timeout(timeout):
            return await self.q.get()

    async def recv(self, where: Callable[[dict], bool] | None = None, timeout: float = 2.0) -> dict:
        """Next JSON message (matching ``where`` if given; non-matching ones are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                item = await self.q.get()
                if self.text_pong is not None and item == self.text_pong:
                    continue
                msg = self.parse(item)
                if where is None or where(msg):
                    return msg

    async def collect(self, seconds: float) -> list[Any]:
        """Every queued item for ``seconds``."""
        out: list[Any] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    out.append(await self.q.get())
            except TimeoutError:
                break
        return out

    def drain(self) -> list[Any]:
        out = []
        while not self.q.empty():
            out.append(self.q.get_nowait())
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.disconnect()
