"""One OKX DEX connection: the v5 gateway's protocol (:mod:`tickwire.venues.okx_gateway`),
always logged in first, then the DEX channels' pushes."""

from __future__ import annotations

from tickwire.model import Event
from tickwire.venues.base import StreamState
from tickwire.venues.okx_gateway import GatewaySession, Msg
from tickwire.venues.okxdex import mappers
from tickwire.venues.okxdex.wire import decode_candles, decode_dicts, decode_prices


class DexSession(GatewaySession):
    """One DEX connection: every channel needs the login (okx.md §5.2)."""

    def needs_login(self) -> bool:
        return True

    def data(self, st: StreamState, m: Msg, recv_ns: int) -> list[Event]:
        kind = st.sub.kind
        if kind == "dex_price":
            return mappers.prices(st.sub, decode_prices(m.data), recv_ns)
        if kind == "dex_candles":
            return mappers.candles(st.sub, decode_candles(m.data), recv_ns)
        if kind == "dex_trades":
            return mappers.trades(st.sub, decode_dicts(m.data), recv_ns)
        return mappers.signals(st.sub, decode_dicts(m.data), recv_ns)
