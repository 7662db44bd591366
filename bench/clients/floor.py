"""The floor: raw picows + msgspec typed Structs + plain dict book, under uvloop.

No events, no integrity checks (``u`` / ``seqId`` are decoded but not checked), no exactness
beyond keeping the venue's strings as dict keys and values. Anything that does more work per
message can only be slower; this row is the reference the ratios are computed against.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import msgspec
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from . import NotSupported
from ._meter import Meter


# ---- Bybit orderbook --------------------------------------------------------------------------
class BybitBookData(msgspec.Struct):
    s: str
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    u: int
    seq: int = 0


class BybitBookMsg(msgspec.Struct):
    topic: str = ""
    type: str = ""
    ts: int = 0
    data: BybitBookData | None = None


# ---- Bybit publicTrade ------------------------------------------------------------------------
class BybitTrade(msgspec.Struct):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str
    L: str = ""
    BT: bool = False
    seq: int = 0


class BybitTradeMsg(msgspec.Struct):
    topic: str = ""
    type: str = ""
    ts: int = 0
    data: list[BybitTrade] | None = None


# ---- OKX books --------------------------------------------------------------------------------
class OkxBookData(msgspec.Struct):
    asks: list[tuple[str, str, str, str]]
    bids: list[tuple[str, str, str, str]]
    ts: str
    checksum: int = 0
    prevSeqId: int = -1
    seqId: int = 0


class OkxArg(msgspec.Struct):
    channel: str
    instId: str = ""


class OkxBookMsg(msgspec.Struct):
    arg: OkxArg | None = None
    action: str = ""
    data: list[OkxBookData] | None = None
    event: str = ""


SUBSCRIBE = {
    "bybit": b'{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}',
    "bybit-trades": b'{"op":"subscribe","args":["publicTrade.BTCUSDT"]}',
    "okx": b'{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}',
}


class _State:
    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.trades = 0
        self.last_trade_id = ""


# The handlers below inline their dict updates on purpose (no shared helper): the floor is the
# fastest plain code for the job, and a function call per side would make it slower.
def _bybit_book_handler(st: _State) -> Callable[[Any], bool]:
    dec = msgspec.json.Decoder(BybitBookMsg)
    bids, asks = st.bids, st.asks

    def handle(buf: Any) -> bool:
        m = dec.decode(buf)
        d = m.data
        if d is None:
            return False
        if m.type == "snapshot":
            bids.clear()
            asks.clear()
        for p, s in d.b:
            if s == "0":
                bids.pop(p, None)
            else:
                bids[p] = s
        for p, s in d.a:
            if s == "0":
                asks.pop(p, None)
            else:
                asks[p] = s
        return True

    return handle


def _okx_book_handler(st: _State) -> Callable[[Any], bool]:
    dec = msgspec.json.Decoder(OkxBookMsg)
    bids, asks = st.bids, st.asks

    def handle(buf: Any) -> bool:
        if len(buf) == 4:  # text "pong", the only non-JSON frame OKX sends
            return False
        m = dec.decode(buf)
        if m.data is None:
            return False
        if m.action == "snapshot":
            bids.clear()
            asks.clear()
        for d in m.data:
            for p, s, _, _ in d.bids:
                if s == "0":
                    bids.pop(p, None)
                else:
                    bids[p] = s
            for p, s, _, _ in d.asks:
                if s == "0":
                    asks.pop(p, None)
                else:
                    asks[p] = s
        return True

    return handle


def _bybit_trades_handler(st: _State) -> Callable[[Any], bool]:
    dec = msgspec.json.Decoder(BybitTradeMsg)

    def handle(buf: Any) -> bool:
        m = dec.decode(buf)
        d = m.data
        if d is None:
            return False
        st.trades += len(d)
        st.last_trade_id = d[-1].i
        return True

    return handle


HANDLERS = {"bybit": _bybit_book_handler, "okx": _okx_book_handler, "bybit-trades": _bybit_trades_handler}


class _Listener(WSListener):
    def __init__(self, venue: str, handle: Callable[[Any], bool], meter: Meter,
                 done: asyncio.Future[None]) -> None:
        self.venue = venue
        self.handle = handle
        self.meter = meter
        self.done = done

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, SUBSCRIBE[self.venue])

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            if self.handle(frame.get_payload_as_memoryview()) and self.meter.tick():
                if not self.done.done():
                    self.done.set_result(None)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("server closed before the end of the stream"))


async def _main(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    st = _State()
    meter = Meter(expected_msgs)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handle = HANDLERS[venue](st)
    transport, _ = await ws_connect(lambda: _Listener(venue, handle, meter, done), url)
    try:
        await asyncio.wait_for(done, timeout=max(60.0, expected_msgs * 1e-3))
    finally:
        transport.send_close()
        transport.disconnect()
        await transport.wait_disconnected()
    extra: dict[str, Any] = {"loop": type(asyncio.get_running_loop()).__module__.split(".")[0]}
    if venue == "bybit-trades":
        extra.update(trades=st.trades, last_trade_id=st.last_trade_id)
    res = meter.result(**extra)
    res["final_bids"], res["final_asks"] = st.bids, st.asks
    return res


def run(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    if venue not in HANDLERS:
        raise NotSupported(venue)
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a project dependency on Linux
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_main(url, venue, expected_msgs))
    finally:
        loop.close()
