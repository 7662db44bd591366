"""Bybit v5 public market data dialect (sans-I/O).

Everything tickwire knows about Bybit's WebSocket protocol lives here: endpoints, topic
names and validation, request batching within the venue's limits, the ack/pong shapes
of every category, and the decoding of each topic into normalized events.
Reference: shared/protocols/bybit.md.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

import msgspec

from tickwire.model import BookUpdate, Candle, Event, Liquidation, Ticker, Trade
from tickwire.subscription import Subscription
from tickwire.venues.base import Limits, Session, SessionOptions, StreamState, Timers, Venue

MARKETS = ("linear", "spot", "inverse", "option")

# Current depth sets (2026): 500 was retired on 2025-09-30; a user who really needs it
# (a venue that still serves it, e.g. an archive replay) can pass the native name with
# ``allow_any_depth``. Level 1 is snapshot-only on linear/inverse/spot.
DEPTHS = {
    "linear": (1, 50, 200, 1000),
    "inverse": (1, 50, 200, 1000),
    "spot": (1, 50, 200, 1000),
    "option": (25, 100),
}
KLINE_INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
CANDLE_ALIASES = {"1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
                  "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1D": "D", "1w": "W", "1W": "W",
                  "1M": "M"}
INTERVAL_NAMES = {v: k for k, v in CANDLE_ALIASES.items() if k[-1] in "mh" or k in ("1d", "1w", "1M")}

SPOT_MAX_ARGS_PER_REQUEST = 10     # "args size >10" beyond this
MAX_ARGS_CHARS_PER_CONN = 21_000   # total length of args on one public connection
OPTION_MAX_ARGS_PER_CONN = 2_000
ARGS_PER_REQUEST = 100             # our own chunking for linear/inverse/option (no venue limit)

NETWORKS = {
    "mainnet": "wss://stream.bybit.com",
    "testnet": "wss://stream-testnet.bybit.com",
    # Demo trading serves private streams only; its public data is mainnet's (bybit.md §1.4).
    "demo": "wss://stream.bybit.com",
}


# --------------------------------------------------------------------------- wire types

class _Envelope(msgspec.Struct, gc=False):
    topic: str = ""
    type: str = ""
    ts: int = 0
    data: msgspec.Raw = msgspec.Raw(b"null")
    cts: int = 0
    # control frames
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    req_id: str = ""
    conn_id: str = ""
    args: list | None = None


class _BookData(msgspec.Struct, gc=False):
    s: str = ""
    b: list[tuple[str, str]] = []
    a: list[tuple[str, str]] = []
    u: int = 0
    seq: int = 0


class _BookMsg(msgspec.Struct, gc=False):
    topic: str
    type: str
    ts: int
    data: _BookData
    cts: int = 0


class _Trade(msgspec.Struct, gc=False):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str = ""
    seq: int = 0


class _TradesMsg(msgspec.Struct, gc=False):
    topic: str
    data: list[_Trade]
    type: str = ""
    ts: int = 0


class _Kline(msgspec.Struct, gc=False):
    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str = ""
    confirm: bool = False
    timestamp: int = 0


class _Liq(msgspec.Struct, gc=False):
    T: int
    s: str
    S: str
    v: str
    p: str


class _OptionResp(msgspec.Struct, gc=False):
    failTopics: list[str] = []
    successTopics: list[str] = []


_env_decoder = msgspec.json.Decoder(_Envelope)
_book_decoder = msgspec.json.Decoder(_BookMsg)
_trades_decoder = msgspec.json.Decoder(list[_Trade])
_trades_msg_decoder = msgspec.json.Decoder(_TradesMsg)
_klines_decoder = msgspec.json.Decoder(list[_Kline])
_liqs_decoder = msgspec.json.Decoder(list[_Liq] | _Liq)
_dict_decoder = msgspec.json.Decoder(dict)
_option_resp_decoder = msgspec.json.Decoder(_OptionResp)
_encode = msgspec.json.encode

_BOOK_PREFIX = b'{"topic":"orderbook.'
_TRADES_PREFIX = b'{"topic":"publicTrade.'
_SIDES = {"Buy": "buy", "Sell": "sell"}


class Bybit(Venue):
    name = "bybit"
    markets = MARKETS
    default_market = "linear"
    networks = NETWORKS
    # bybit.md §5: under 500 new connections per 5 minutes per host; we stay a little below.
    limits = Limits(connect_rates=((450, 300.0),))

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        market = market or self.default_market
        if market not in MARKETS:
            raise self.bad(spec, f"unknown market {market!r}; use one of {', '.join(MARKETS)} "
                                 "(e.g. bybit.spot:publicTrade:BTCUSDT)")
        native, kind = self._channel(market, channel, spec)
        if not symbol or any(c.isspace() for c in symbol):
            raise self.bad(spec, "empty or malformed symbol")
        if market != "option" and symbol != symbol.upper():
            # Bybit topics are case-sensitive and symbols are upper case (bybit.md §3).
            raise self.bad(spec, f"symbol {symbol!r} must be upper case, e.g. {symbol.upper()}")
        canon = f"bybit.{market}:{native}:{symbol}"
        return Subscription(spec=canon, venue="bybit", market=market, channel=native, symbol=symbol,
                            kind=kind, endpoint=f"public/{market}", topic=f"{native}.{symbol}")

    def _channel(self, market: str, channel: str, spec: str) -> tuple[str, str]:
        c = channel
        if c in ("book", "orderbook"):
            return ("orderbook.25" if market == "option" else "orderbook.50"), "book"
        if c.startswith("book.") and c[5:].isdigit():
            c = "orderbook." + c[5:]
        if c.startswith("orderbook."):
            depth = c.split(".", 1)[1]
            allowed = DEPTHS[market]
            if not depth.isdigit() or int(depth) not in allowed:
                raise self.bad(spec, f"depth {depth!r} not served on {market}; depths: "
                                     f"{', '.join(map(str, allowed))}")
            return c, "book"
        if c in ("publicTrade", "trades", "trade"):
            return "publicTrade", "trades"
        if c in ("tickers", "ticker"):
            return "tickers", "ticker"
        if c.startswith("candles.") or c.startswith("kline."):
            iv = c.split(".", 1)[1]
            iv = CANDLE_ALIASES.get(iv, iv) if c.startswith("candles.") else iv
            if iv not in KLINE_INTERVALS:
                raise self.bad(spec, f"candle interval {iv!r} not served; use kline.N with N in "
                                     f"{' '.join(KLINE_INTERVALS)} or candles.1m/5m/1h/1d...")
            return f"kline.{iv}", "candles"
        if c in ("allLiquidation", "liquidations", "liquidation"):
            if market not in ("linear", "inverse"):
                raise self.bad(spec, "liquidations are served on linear and inverse only")
            return "allLiquidation", "liquidations"
        raise self.bad(spec, "unknown channel; native: orderbook.N, publicTrade, tickers, kline.N, "
                             "allLiquidation; aliases: book, trades, ticker, candles.1m, liquidations")

    def decode_endpoint(self, market: str) -> str:
        return f"public/{market or self.default_market}"

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        root = (base or NETWORKS[network]).rstrip("/")
        return f"{root}/v5/{endpoint}"

    def timers(self) -> Timers:
        # bybit.md §2: JSON ping every 20 s. A book connection that is silent for 60 s while
        # pongs still arrive is alive but quiet; the pong deadline catches dead sockets.
        return Timers(ping_interval_s=20.0, ping_when_idle=False, pong_timeout_s=10.0)

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """Pack subscriptions onto connections: <= 21,000 chars of args; option <= 2,000 args."""
        return self.pack(subs, lambda s: (len(s.topic), s.market == "option"),
                         (MAX_ARGS_CHARS_PER_CONN, OPTION_MAX_ARGS_PER_CONN))

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> "BybitSession":
        return BybitSession(self, endpoint, conn, options)


class BybitSession(Session):
    """One Bybit public connection: batching, acks, pongs, books with the `u` chain."""

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        super().__init__(venue, endpoint, conn, options)
        self.market = endpoint.split("/", 1)[1] if "/" in endpoint else endpoint
        self._req_ids = itertools.count(1)
        self.pending: dict[str, tuple[str, list[str]]] = {}  # req_id -> (op, topics)
        self.subscribed: set[str] = set()

    # -- requests -------------------------------------------------------------------
    def start(self, now_ns: int) -> None:
        self.started_ns = now_ns
        topics = list(self.streams)
        if topics:
            self._request("subscribe", topics)

    def add(self, subs: Iterable[Subscription]) -> None:
        new = [st.sub.topic for st in self.track(subs)]
        if new and self.started_ns:
            self._request("subscribe", new)

    def pushes_regularly(self, sub: Subscription) -> bool:
        # Level 1 re-sends its snapshot every 3 s when nothing changes (bybit.md §7.1).
        return sub.channel == "orderbook.1"

    def remove(self, subs: Iterable[Subscription]) -> None:
        gone = [s.topic for s in subs if self.streams.pop(s.topic, None) is not None]
        if gone and self.started_ns:
            self._request("unsubscribe", gone)

    def _request(self, op: str, topics: list[str]) -> None:
        per = SPOT_MAX_ARGS_PER_REQUEST if self.market == "spot" else ARGS_PER_REQUEST
        for i in range(0, len(topics), per):
            chunk = topics[i:i + per]
            req_id = str(next(self._req_ids))
            self.pending[req_id] = (op, chunk)
            frame = _encode({"req_id": req_id, "op": op, "args": chunk})
            self.send(frame, f"{op} {','.join(chunk)}")

    def resync(self, subs: list[Subscription]) -> None:
        # Fresh snapshot for these topics only: unsubscribe + subscribe on this connection.
        topics = [s.topic for s in subs if s.topic in self.streams]
        if topics:
            self._request("unsubscribe", topics)
            self._request("subscribe", topics)

    def ping_payload(self) -> bytes:
        return _encode({"req_id": f"p{next(self._req_ids)}", "op": "ping"})

    # -- frames -----------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        if payload[:20] == _BOOK_PREFIX:
            try:
                msg = _book_decoder.decode(payload)
            except msgspec.DecodeError:
                pass
            else:
                st = self.streams.get(msg.topic)
                if st is not None:
                    d = msg.data
                    u = d.u
                    prev = st.last_seq
                    if u == prev + 1 and st.synced and u != 1 and msg.type == "delta":
                        # The hot path, inline: the next delta of an intact book.
                        book = st.book
                        book.apply_delta(d.b, d.a, u)  # type: ignore[union-attr]
                        exch_ns = msg.ts * 1_000_000
                        book.exch_ns = exch_ns  # type: ignore[union-attr]
                        st.last_seq = u
                        sub = st.sub
                        # BookUpdate's own fields positionally (bids, asks, snapshot, seq, prev_seq,
                        # book): ~30 ns less per event than all by keyword.
                        return [BookUpdate(d.b, d.a, False, u, prev, book, venue="bybit", market=sub.market,
                                           symbol=sub.symbol, stream=sub.spec, exch_ns=exch_ns, recv_ns=recv_ns)]
                    return self._book(st, msg.type, d, msg.ts, recv_ns)
        elif payload[:22] == _TRADES_PREFIX:
            try:
                tm = _trades_msg_decoder.decode(payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
            else:
                st = self.streams.get(tm.topic)
                if st is not None:
                    st.last_rx_ns = recv_ns
                    return self._trades(st, tm.data, recv_ns)
        try:
            env = _env_decoder.decode(payload)
        except msgspec.DecodeError as e:
            return [self.error("decode", f"undecodable frame ({e}): {bytes(payload[:200])!r}",
                               recv_ns=recv_ns)]
        topic = env.topic
        if topic:
            st = self.streams.get(topic)
            if st is None:
                if not self.accept_any:
                    return []  # late data of an unsubscribed topic
                st = self._adopt(topic)
                if st is None:
                    return []
            st.last_rx_ns = recv_ns
            try:
                return self._data(st, env, recv_ns)
            except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError) as e:
                return [self.error("decode", f"bad {topic} frame ({e})", stream=st.sub.spec,
                                   recv_ns=recv_ns, sub=st.sub)]
        return self._control(env, payload, recv_ns)

    def _adopt(self, topic: str) -> StreamState | None:
        """Decode mode: create stream state for a topic seen in a recorded file."""
        channel, _, symbol = topic.rpartition(".")
        try:
            sub = self.venue.parse(self.market, channel, symbol, f"bybit.{self.market}:{channel}:{symbol}")
        except ValueError:
            if channel.startswith("orderbook."):  # e.g. retired orderbook.500 in old recordings
                sub = Subscription(spec=f"bybit.{self.market}:{channel}:{symbol}", venue="bybit",
                                   market=self.market, channel=channel, symbol=symbol, kind="book",
                                   endpoint=self.endpoint, topic=topic)
            else:
                return None
        st = self.streams[topic] = StreamState(sub)
        return st

    def _control(self, env: _Envelope, payload: Any, recv_ns: int) -> list[Event]:
        op = env.op
        if env.ret_msg == "pong" or op == "pong":
            self.pong_received(recv_ns)
            return []
        if op in ("subscribe", "unsubscribe") or env.type == "COMMAND_RESP":
            return self._ack(env, payload, recv_ns)
        if env.success is False:
            return [self.error(op or "error", env.ret_msg, recv_ns=recv_ns)]
        return []

    def _ack(self, env: _Envelope, payload: Any, recv_ns: int) -> list[Event]:
        req = self.pending.pop(env.req_id, None) if env.req_id else None
        if env.type == "COMMAND_RESP":  # option: per-topic success/fail lists, no req_id
            resp = _option_resp_decoder.decode(env.data)
            if req is None:
                for rid, (op, topics) in list(self.pending.items()):
                    if set(topics) & set(resp.successTopics + resp.failTopics):
                        req = self.pending.pop(rid)
                        break
            return [self._refuse(t, "subscribe", env.ret_msg or "subscription failed", recv_ns)
                    for t in resp.failTopics]
        if env.success is not False:
            return []
        # The whole batch failed because of one topic (bybit.md §3.1). Report that topic
        # as a fatal VenueError for its stream and subscribe the rest of the batch again.
        msg = env.ret_msg
        if req is None:
            for rid, (op, topics) in list(self.pending.items()):
                if any(t in msg for t in topics):
                    req = self.pending.pop(rid)
                    break
        op, topics = req if req is not None else (env.op, [])
        bad = [t for t in topics if t in msg]
        if "already subscribed" in msg:
            return []  # harmless: the first subscription keeps delivering
        out: list[Event] = []
        if not bad and topics:
            # e.g. "args size >10": nothing in the message names a topic; all of them failed.
            for t in topics:
                out.append(self._refuse(t, op, msg, recv_ns, request=_encode({"op": op, "args": topics}).decode()))
            return out
        for t in bad:
            out.append(self._refuse(t, op, msg, recv_ns, request=_encode({"op": op, "args": topics}).decode()))
        rest = [t for t in topics if t not in bad and t in self.streams]
        if rest and op == "subscribe":
            self._request("subscribe", rest)
        if not topics:
            out.append(self.error(op, msg, recv_ns=recv_ns))
        return out

    def _refuse(self, topic: str, op: str, msg: str, recv_ns: int, request: str = "") -> Event:
        st = self.streams.pop(topic, None) if op == "subscribe" else self.streams.get(topic)
        if op == "subscribe":
            self.refused.add(topic)
        sub = st.sub if st else None
        return self.error("ret_msg", f"{op} {topic} refused: {msg}", request=request or f"{op} {topic}",
                          recv_ns=recv_ns, fatal=op == "subscribe", sub=sub)

    def _trades(self, st: StreamState, trades: list[_Trade], recv_ns: int) -> list[Event]:
        sub = st.sub
        market, spec, sides = sub.market, sub.spec, _SIDES
        # Trade's own fields positionally (price, size, side, trade_id, seq): once per trade. A
        # loop, not a comprehension: for the 1-4 trades of a message it is ~80 ns cheaper (3.11).
        out: list[Event] = []
        for t in trades:
            out.append(Trade(t.p, t.v, sides.get(t.S) or t.S.lower(), t.i, t.seq, venue="bybit", market=market,
                             symbol=t.s, stream=spec, exch_ns=t.T * 1_000_000, recv_ns=recv_ns))
        return out

    def _data(self, st: StreamState, env: _Envelope, recv_ns: int) -> list[Event]:
        kind = st.sub.kind
        if kind == "book":
            return self._book(st, env.type, msgspec.json.decode(env.data, type=_BookData), env.ts, recv_ns)
        sub = st.sub
        if kind == "trades":
            return self._trades(st, _trades_decoder.decode(env.data), recv_ns)
        if kind == "ticker":
            return [self._ticker(st, env, recv_ns)]
        if kind == "candles":
            return [Candle(venue="bybit", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                           exch_ns=env.ts * 1_000_000, recv_ns=recv_ns,
                           interval=INTERVAL_NAMES.get(k.interval, k.interval), start_ns=k.start * 1_000_000,
                           open=k.open, high=k.high, low=k.low, close=k.close, volume=k.volume,
                           turnover=k.turnover or None, closed=k.confirm)
                    for k in _klines_decoder.decode(env.data)]
        if kind == "liquidations":
            liqs = _liqs_decoder.decode(env.data)
            if not isinstance(liqs, list):  # documented as an object, sent as an array
                liqs = [liqs]
            return [Liquidation(venue="bybit", market=sub.market, symbol=q.s, stream=sub.spec,
                                exch_ns=q.T * 1_000_000, recv_ns=recv_ns, side=_SIDES.get(q.S, q.S.lower()),
                                price=q.p, size=q.v)
                    for q in liqs]
        return []

    def _ticker(self, st: StreamState, env: _Envelope, recv_ns: int) -> Ticker:
        data = _dict_decoder.decode(env.data)
        # Linear/inverse send a snapshot then deltas of changed fields: merge (missing = unchanged;
        # "" is treated as unchanged too, the tolerant reading of an undocumented case).
        if env.type == "delta" and st.extra is not None:
            merged = st.extra
            for k, v in data.items():
                if v != "":
                    merged[k] = v
        else:
            merged = st.extra = data
        g = merged.get
        sub = st.sub
        nft = g("nextFundingTime")
        return Ticker(venue="bybit", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                      exch_ns=env.ts * 1_000_000, recv_ns=recv_ns, last=g("lastPrice"),
                      bid=g("bid1Price") or g("bidPrice"), bid_size=g("bid1Size") or g("bidSize"),
                      ask=g("ask1Price") or g("askPrice"), ask_size=g("ask1Size") or g("askSize"),
                      open_24h=g("prevPrice24h"), high_24h=g("highPrice24h"), low_24h=g("lowPrice24h"),
                      volume_24h=g("volume24h"), turnover_24h=g("turnover24h"), mark_price=g("markPrice"),
                      index_price=g("indexPrice") or g("usdIndexPrice"), open_interest=g("openInterest"),
                      funding_rate=g("fundingRate"),
                      next_funding_ns=int(nft) * 1_000_000 if nft not in (None, "", "0") else None,
                      raw=dict(merged))

    def _book(self, st: StreamState, typ: str, d: _BookData, ts: int, recv_ns: int) -> list[Event]:
        """Everything but the next delta of an intact book (on_frame handles that inline)."""
        book = st.book
        assert book is not None
        st.last_rx_ns = recv_ns
        u = d.u
        out: list[Event] = []
        if typ == "snapshot" or u == 1:
            # A snapshot, or u == 1 (service restart, bybit.md §7.1 rule 4), resets the book.
            # Level 1 repeats its snapshot with the same u when nothing changed: not a gap.
            book.apply_snapshot(d.b, d.a, u)
            book.exch_ns = ts * 1_000_000
            was_broken = st.gap_reported
            prev = st.last_seq
            st.last_seq = u
            st.synced = True
            st.resync_due_ns = 0
            out.append(self.book_event(st, d.b, d.a, True, u, prev, ts * 1_000_000, recv_ns))
            if was_broken:
                out.append(self.resynced(st, recv_ns))
            return out
        if not st.synced:
            # Delta before any snapshot (or after a gap, before the resync snapshot).
            if not st.gap_reported and not st.resync_due_ns:
                self.break_book(st, recv_ns, "delta before snapshot", None, u, out)
            return out
        if u != st.last_seq + 1:
            if u == st.last_seq:
                return out  # the same update again: already applied
            self.break_book(st, recv_ns, f"u jumped from {st.last_seq} to {u}", st.last_seq + 1, u, out)
            return out
        prev = st.last_seq
        book.apply_delta(d.b, d.a, u)
        book.exch_ns = ts * 1_000_000
        st.last_seq = u
        out.append(self.book_event(st, d.b, d.a, False, u, prev, ts * 1_000_000, recv_ns))
        return out

