"""OKX v5 dialect (sans-I/O): public, business and private endpoints.

Everything tickwire knows about OKX's WebSocket protocol lives here (the DEX gateway in
``okxdex.py`` reuses the login/heartbeat/ack machinery of :class:`OkxSession`).
Reference: shared/protocols/okx.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import zlib
from typing import Any, Iterable, Sequence

import msgspec

from tickwire.model import (
    Balance, BookUpdate, Candle, ConnCount, Event, Fill, Funding, IndexPrice, Liquidation, MarkPrice, Notice,
    OpenInterest, Order, Position, Ticker, Trade,
)
from tickwire.subscription import Subscription
from tickwire.venues.base import FailOver, FetchSnapshot, Limits, Session, SessionOptions, StreamState, Timers, Venue

# Port 8443 was retired for WebSocket on 2026-10-31 (okx.md §1.1, UNVERIFIED date): the
# default is the plain host (443); ``venue_options={"okx": {"port": 8443}}`` selects 8443.
NETWORKS = {
    "mainnet": "wss://ws.okx.com",
    "demo": "wss://wspap.okx.com",
    "aws": "wss://wsaws.okx.com",
    "eea": "wss://wseea.okx.com",
    "eea-demo": "wss://wseeapap.okx.com",
    "us": "wss://wsus.okx.com",
    "us-demo": "wss://wsuspap.okx.com",
}
REST = {"mainnet": "https://www.okx.com", "demo": "https://www.okx.com", "aws": "https://aws.okx.com",
        "eea": "https://eea.okx.com", "us": "https://us.okx.com"}

BARS = ("1s", "1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H", "6H", "12H", "1D", "2D", "3D", "5D", "1W",
        "1M", "3M", "6Hutc", "12Hutc", "1Dutc", "2Dutc", "3Dutc", "5Dutc", "1Wutc", "1Mutc", "3Mutc")
_BAR_ALIASES = {"1h": "1H", "2h": "2H", "4h": "4H", "6h": "6H", "12h": "12H", "1d": "1D", "1w": "1W"}

# channel -> (endpoint, kind, arg key for the symbol, needs login)
CHANNELS: dict[str, tuple[str, str, str, bool]] = {
    "tickers": ("public", "ticker", "instId", False),
    "trades": ("public", "trades", "instId", False),
    "trades-all": ("business", "trades", "instId", False),
    "books": ("public", "book", "instId", False),
    "books5": ("public", "book", "instId", False),
    "bbo-tbt": ("public", "book", "instId", False),
    "books-l2-tbt": ("public", "book", "instId", True),
    "books50-l2-tbt": ("public", "book", "instId", True),
    "books-elp": ("public", "book", "instId", False),
    "funding-rate": ("public", "funding", "instId", False),
    "mark-price": ("public", "mark", "instId", False),
    "open-interest": ("public", "open_interest", "instId", False),
    "index-tickers": ("public", "index", "instId", False),
    "liquidation-orders": ("public", "liquidations", "instType", False),
    "orders": ("private", "orders", "instType", True),
    "account": ("private", "account", "ccy", True),
    "positions": ("private", "positions", "instType", True),
    "balance_and_position": ("private", "balance_and_position", "", True),
}
ALIASES = {"book": "books", "orderbook": "books", "trade": "trades", "ticker": "tickers", "funding": "funding-rate",
           "mark": "mark-price", "oi": "open-interest", "open_interest": "open-interest", "index": "index-tickers",
           "liquidations": "liquidation-orders"}
SNAPSHOT_ONLY = ("books5", "bbo-tbt")     # every push is a full book
MAX_ARGS_PER_REQUEST = 100                # our chunking; every request stays far below 64 KB
MAX_BOOKS_PER_CONN = 30                   # OKX advice for many 50/400-level books: < 30 per connection
MAX_ARGS_PER_CONN = 240
# 480 subscribe/unsubscribe/login requests per hour per connection (okx.md §1.3); we keep a margin.
REQUESTS_PER_HOUR = 450


def sign(secret: str, timestamp: str) -> str:
    """OKX login signature: Base64(HMAC-SHA256(secret, ts + "GET" + "/users/self/verify"))."""
    mac = hmac.new(secret.encode(), f"{timestamp}GET/users/self/verify".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """Legacy CRC32 over the top 25 levels, interleaved bid/ask, raw strings, signed 32-bit."""
    parts = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    c = zlib.crc32(":".join(parts).encode())
    return c - (1 << 32) if c >= (1 << 31) else c


def market_of(inst_id: str) -> str:
    """spot / swap / futures / option / index, from the shape of an OKX instId."""
    parts = inst_id.split("-")
    if len(parts) == 2:
        return "spot"
    if parts[-1] == "SWAP":
        return "swap"
    if len(parts) == 5 and parts[-1] in ("C", "P"):
        return "option"
    if len(parts) == 3 and parts[-1].isdigit():
        return "futures"
    return ""


# --------------------------------------------------------------------------- wire types

class _Arg(msgspec.Struct, gc=False):
    channel: str = ""
    instId: str = ""
    instType: str = ""
    ccy: str = ""
    chainIndex: str = ""
    tokenContractAddress: str = ""
    walletAddress: str = ""


class _Msg(msgspec.Struct, gc=False):
    arg: _Arg | None = None
    action: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    event: str = ""
    code: str | int = ""
    msg: str = ""
    id: str = ""
    connId: str = ""
    channel: str = ""
    connCount: str | int = ""


class _BookData(msgspec.Struct, gc=False):
    # Levels as tuples: the cyclic GC stops tracking tuples of strings, lists it tracks for
    # ever (measured: 6.5 -> 4.3 us/msg when thousands of events wait for the consumer).
    asks: list[tuple[str, ...]] = []
    bids: list[tuple[str, ...]] = []
    ts: str = "0"
    checksum: int = 0
    seqId: int | None = None
    prevSeqId: int | None = None


class _BookDataFast(_BookData):
    """The hot path's view: ``ts`` parsed to int by the decoder (lax mode), ~0.1 us less per
    message than ``int()`` afterwards. A frame it cannot take (e.g. an empty ts) goes the
    generic way, where ts stays a string and a bad one means exch_ns 0 (tolerant)."""

    ts: int = 0  # type: ignore[assignment]


class _BookMsg(msgspec.Struct, gc=False):
    arg: _Arg
    data: list[_BookDataFast]
    action: str = ""


class _Trade(msgspec.Struct, gc=False):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str
    seqId: int = 0


_msg_decoder = msgspec.json.Decoder(_Msg)
_book_decoder = msgspec.json.Decoder(_BookMsg, strict=False)
_trades_decoder = msgspec.json.Decoder(list[_Trade])
_dicts_decoder = msgspec.json.Decoder(list[dict])
_lists_decoder = msgspec.json.Decoder(list[list[str]])
_encode = msgspec.json.encode

_BOOK_PREFIX = b'{"arg":{"channel":"books'
_PING = b"ping"
_PONG = b"pong"

# Close codes (okx.md §1.3) after which reconnecting cannot help.
FATAL_CLOSE = {4001: "login failed", 4003: "more than 100 API keys logged in on one connection",
               4007: "API key updated or deleted",
               4008: "the account's total subscribed channels are over the venue's limit"}
# 4009: this connection's channels are over the limit: split them over two connections.
# 4004 (no data in 30 s), 4005 (write buffer full), 4006 (abnormal), 1009 (frame too big):
# reconnect with backoff (1009 cannot happen by our doing: requests stay far under 64 KB).
SPLIT_CLOSE = {4009}
# Subscribe error codes that end the stream for good (no retry): it will never be served.
FATAL_SUB_CODES = {"60008", "60011", "60013", "60018", "64000", "64001", "64002", "64003", "64004", "60012"}
LOGIN_CODES = {"60004", "60005", "60006", "60007", "60009", "60024", "60026", "60031", "60032", "63999"}


def _ms(ts: Any) -> int:
    try:
        return int(ts) * 1_000_000
    except (TypeError, ValueError):
        return 0


def _side_of_liquidated(order_side: str, pos_side: str) -> str:
    # The liquidation *order* sells to close a long; report the liquidated position's side.
    if pos_side in ("long", "short"):
        return "buy" if pos_side == "long" else "sell"
    return "buy" if order_side == "sell" else "sell"


class OKX(Venue):
    name = "okx"
    markets = ("", "spot", "swap", "futures", "option", "margin")
    default_market = ""
    networks = NETWORKS
    limits = Limits(connect_rates=((3, 1.0),), max_requests=REQUESTS_PER_HOUR, requests_window_s=3600.0)
    channels = CHANNELS
    aliases = ALIASES
    ws_version = "v5"

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        if market not in self.markets:
            raise self.bad(spec, f"unknown market {market!r}; OKX specs need none: okx:books:BTC-USDT")
        native = self.aliases.get(channel, channel)
        if native.startswith("candles.") or native.startswith("candle"):
            bar = native.split(".", 1)[1] if native.startswith("candles.") else native[6:]
            bar = _BAR_ALIASES.get(bar, bar)
            if bar not in BARS:
                raise self.bad(spec, f"candle bar {bar!r} not served; bars: {' '.join(BARS)}")
            native = f"candle{bar}"
            endpoint, kind, key, auth = "business", "candles", "instId", False
        elif native in self.channels:
            endpoint, kind, key, auth = self.channels[native]
        else:
            raise self.bad(spec, "unknown channel; native: " + ", ".join(self.channels) +
                           ", candle1m...; aliases: " + ", ".join(sorted(self.aliases)) + ", candles.1m")
        if key == "instId" and (not symbol or symbol != symbol.upper() or " " in symbol):
            raise self.bad(spec, f"instId {symbol!r} must be an upper-case OKX instrument like BTC-USDT")
        arg: dict[str, str] = {"channel": native}
        if key == "instType":
            itype = symbol.upper()
            if itype in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION", "ANY", "EVENTS"):
                arg["instType"] = itype
            else:  # an instrument filter on an instType channel
                arg["instType"] = "ANY" if native != "liquidation-orders" else (market_of(symbol).upper() or "SWAP")
                arg["instId"] = symbol
        elif key == "ccy":
            if symbol not in ("*", "ALL", "all"):
                arg["ccy"] = symbol
        elif key:
            arg[key] = symbol
        mk = market or market_of(symbol)
        return Subscription(spec=f"okx:{native}:{symbol}", venue="okx", market=mk, channel=native,
                            symbol=symbol, kind=kind, endpoint=endpoint, topic=arg_key(arg),
                            needs_auth=auth, params=arg)

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        root = (base or NETWORKS.get(network) or NETWORKS["mainnet"]).rstrip("/")
        return f"{root}/ws/{self.ws_version}/{endpoint}"

    def url_with_port(self, url: str, port: int | None) -> str:
        if not port:
            return url
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        return f"{scheme}://{host.split(':')[0]}:{port}/{path}"

    def connect_url(self, endpoint: str, base: str | None, network: str, options: dict) -> str:
        # {"port": 8443} selects OKX's old port; {"path": "v5"} the DEX gateway's older /ws/v5/dex.
        url = self.url(endpoint, base, network)
        if options.get("path"):
            url = url.replace(f"/ws/{self.ws_version}/", f"/ws/{options['path']}/")
        return self.url_with_port(url, options.get("port"))

    def rest_base(self, ws_base: str | None, network: str) -> str:
        """REST host for snapshots: the override's host (ws->http), else the venue's."""
        if ws_base:
            return ws_base.replace("wss://", "https://").replace("ws://", "http://").rstrip("/")
        return REST.get(network, REST["mainnet"])

    def timers(self) -> Timers:
        # okx.md §1.2: after each received frame arm a timer under 30 s; on expiry send text
        # "ping" and expect "pong" within N s, else reconnect. 20 s + 8 s stays inside 30 s.
        return Timers(ping_interval_s=20.0, ping_when_idle=True, pong_timeout_s=8.0, notice_lead_s=30.0,
                      stream_silence_s=120.0)

    def decode_endpoint(self, market: str) -> str:
        return "public"

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """Spread books over connections (< 30 each), others up to 240 args per connection."""
        return self.pack(subs, lambda s: (1, s.kind == "book" and s.channel not in ("bbo-tbt", "books5")),
                         (MAX_ARGS_PER_CONN, MAX_BOOKS_PER_CONN))

    def close_is_fatal(self, code: int | None) -> str | None:
        return FATAL_CLOSE.get(code or 0)

    def close_means_split(self, code: int | None) -> bool:
        return code in SPLIT_CLOSE

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> "OkxSession":
        return OkxSession(self, endpoint, conn, options)


def arg_key(arg: dict[str, str] | _Arg) -> str:
    """A stream's identity on the wire: channel plus its instrument/type/currency keys."""
    if type(arg) is _Arg and arg.instId and not arg.instType and not arg.ccy:
        return f"{arg.channel}:{arg.instId}"  # the common case, on the hot path
    g = arg.get if isinstance(arg, dict) else (lambda k, d="": getattr(arg, k, d))
    parts = [g("channel", "")]
    for k in ("instId", "instType", "ccy", "chainIndex", "tokenContractAddress", "walletAddress"):
        v = g(k, "")
        if v:
            parts.append(v)
    return ":".join(parts)


class OkxSession(Session):
    """One OKX connection: login, text ping/pong, per-arg acks, notices, books with seqId."""

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        super().__init__(venue, endpoint, conn, options)
        self._ids = itertools.count(1)
        self.pending: dict[str, tuple[str, list[str]]] = {}   # request id -> (op, topics)
        self.logged_in = False
        self.login_sent = False
        self.verify_checksum = bool(options.extra.get("verify_checksum", True))
        self.snapshot_wait_s = float(options.extra.get("snapshot_wait_s", 2.0))
        self.conn_id = ""
        self.backoff_s = 0.0

    # -- login ----------------------------------------------------------------------------
    def needs_login(self) -> bool:
        return self.endpoint == "private" or any(st.sub.needs_auth for st in self.streams.values())

    def start(self, now_ns: int) -> None:
        self.started_ns = now_ns
        if self.needs_login():
            self._login(now_ns)
        else:
            self._subscribe_all()

    def _login(self, now_ns: int) -> None:
        cred = self.options.credentials
        if cred is None:
            name = self.venue.name.upper()
            err = self.error("credentials", f"{self.venue.name}: login needed for "
                             f"{', '.join(sorted(st.sub.spec for st in self.streams.values() if st.sub.needs_auth) or [self.endpoint])}"
                             f" but no credentials: set TICKWIRE_{name}_API_KEY, TICKWIRE_{name}_SECRET and "
                             f"TICKWIRE_{name}_PASSPHRASE (or pass credentials=...)", request="login", fatal=True,
                             recv_ns=now_ns)
            self.emit([err])
            self.fail(err)
            return
        ts = str(now_ns // 1_000_000_000)
        frame = _encode({"op": "login", "args": [{"apiKey": cred.api_key, "passphrase": cred.passphrase,
                                                   "timestamp": ts, "sign": sign(cred.secret, ts)}]})
        self.login_sent = True
        self.send(frame, "login")

    def _subscribe_all(self) -> None:
        topics = list(self.streams)
        if topics:
            self._request("subscribe", topics)

    def pushes_regularly(self, sub: Subscription) -> bool:
        # Book channels push at least a keepalive (or the same snapshot) about every 60 s
        # without change (okx.md §2.2).
        return sub.kind == "book"

    def add(self, subs: Iterable[Subscription]) -> None:
        new = [st.sub.topic for st in self.track(subs)]
        if new and self.started_ns and (self.logged_in or not self.needs_login()):
            self._request("subscribe", new)

    def remove(self, subs: Iterable[Subscription]) -> None:
        gone = [s for s in subs if s.topic in self.streams]
        if gone and self.started_ns:
            self._request("unsubscribe", [s.topic for s in gone])
        for s in gone:
            self.streams.pop(s.topic, None)

    def _request(self, op: str, topics: list[str]) -> None:
        for i in range(0, len(topics), MAX_ARGS_PER_REQUEST):
            chunk = topics[i:i + MAX_ARGS_PER_REQUEST]
            rid = str(next(self._ids))
            self.pending[rid] = (op, chunk)
            args = [self.streams[t].sub.params for t in chunk if t in self.streams]
            self.send(_encode({"id": rid, "op": op, "args": args}), f"{op} {' '.join(chunk)}")

    def resync(self, subs: list[Subscription]) -> None:
        topics = [s.topic for s in subs if s.topic in self.streams]
        if topics:
            self._request("unsubscribe", topics)
            self._request("subscribe", topics)

    def ping_payload(self) -> bytes:
        return _PING

    def on_timer(self, now_ns: int) -> None:
        super().on_timer(now_ns)
        if self.login_sent and not self.logged_in and self.failed is None and \
                now_ns - self.started_ns > self.timers.login_timeout_s * 1e9:
            self.close(f"no login reply within {self.timers.login_timeout_s:g}s")
        # books whose WS snapshot never came (OKX may stop sending it): ask for REST
        wait = self.snapshot_wait_s * 1e9
        for st in self.streams.values():
            if st.book is not None and not st.synced and st.extra is not None and st.extra.get("buffer") \
                    and not st.extra.get("rest_pending") and now_ns - st.extra["since"] > wait:
                st.extra["rest_pending"] = True
                self.outbox.append(FetchSnapshot(st.sub.topic, self.rest_snapshot_path(st)))

    # -- frames -------------------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        if binary:
            # The older OKEx format: raw DEFLATE (no zlib header) binary frames (seed 002).
            try:
                payload = zlib.decompress(bytes(payload), -zlib.MAX_WBITS)
            except zlib.error as e:
                return [self.error("inflate", f"binary frame is not raw deflate: {e}", recv_ns=recv_ns)]
        if payload[:24] == _BOOK_PREFIX:
            try:
                bm = _book_decoder.decode(payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
            else:
                a = bm.arg
                st = self.streams.get(f"{a.channel}:{a.instId}" if a.instId and not a.instType else arg_key(a))
                if st is not None:
                    st.last_rx_ns = recv_ns
                    data = bm.data
                    if len(data) == 1:
                        d = data[0]
                        prev = d.prevSeqId
                        seq = d.seqId
                        if prev == st.last_seq and st.synced and bm.action == "update" and seq is not None \
                                and seq != prev and not d.checksum:
                            # The hot path: the next update of an intact book (no legacy checksum).
                            book = st.book
                            book.apply_delta(d.bids, d.asks, seq)  # type: ignore[union-attr]
                            exch_ns = d.ts * 1_000_000
                            book.exch_ns = exch_ns  # type: ignore[union-attr]
                            st.last_seq = seq
                            sub = st.sub
                            # BookUpdate's own fields positionally (bids, asks, snapshot, seq, prev_seq,
                            # book): ~30 ns less per event than all by keyword.
                            return [BookUpdate(d.bids, d.asks, False, seq, prev, book, venue="okx",
                                               market=sub.market, symbol=sub.symbol, stream=sub.spec,
                                               exch_ns=exch_ns, recv_ns=recv_ns)]
                    out: list[Event] = []
                    for d in data:
                        self._book(st, bm.action, d, recv_ns, out)
                    return out
        if payload == _PONG:
            self.pong_received(recv_ns)
            return []
        try:
            m = _msg_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            if bytes(payload) == _PING:  # a server-side ping: answer like nautilus does
                self.send_control(_PONG, "pong")
                return []
            return [self.error("decode", f"undecodable frame ({e}): {bytes(payload[:200])!r}", recv_ns=recv_ns)]
        if m.event:
            return self._event(m, recv_ns)
        if m.arg is None:
            return []
        key = arg_key(m.arg)
        st = self.streams.get(key)
        if st is None:
            if not self.accept_any:
                return []
            st = self._adopt(m.arg)
            if st is None:
                return []
        st.last_rx_ns = recv_ns
        try:
            return self._data(st, m, recv_ns)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError, IndexError) as e:
            return [self.error("decode", f"bad {key} frame ({e})", recv_ns=recv_ns, sub=st.sub)]

    def _adopt(self, arg: _Arg) -> StreamState | None:
        if arg.tokenContractAddress:
            symbol = f"{arg.chainIndex}/{arg.tokenContractAddress}"
        else:
            symbol = arg.instId or arg.instType or arg.ccy or arg.walletAddress or arg.chainIndex or "ALL"
        try:
            sub = self.venue.parse("", arg.channel, symbol, "")
        except ValueError:
            return None
        # keep the wire identity of the frame we saw
        sub = msgspec.structs.replace(sub, topic=arg_key(arg))
        st = self.streams[sub.topic] = StreamState(sub)
        return st

    def _event(self, m: _Msg, recv_ns: int) -> list[Event]:
        ev = m.event
        code = str(m.code)
        if m.connId:
            self.conn_id = m.connId
        if ev in ("subscribe", "unsubscribe"):
            if m.id:
                self.pending.pop(m.id, None)
            return []
        if ev == "login":
            if code in ("0", ""):
                self.logged_in = True
                self._subscribe_all()
                return []
            return [self._login_failed(code, m.msg, recv_ns)]
        if ev == "error":
            return self._error(m, code, recv_ns)
        if ev == "notice":
            n = Notice(venue=self.venue.name, recv_ns=recv_ns, conn=self.conn, code=code, msg=m.msg)
            if code == "64008":
                self.outbox.append(FailOver(recv_ns))
            return [n]
        if ev == "channel-conn-count":
            return [ConnCount(venue=self.venue.name, recv_ns=recv_ns, conn=self.conn, channel=m.channel,
                              count=int(m.connCount or 0))]
        if ev == "channel-conn-count-error":
            # The venue ended our subscription to this channel on this connection: report it
            # once per stream, fatal for those streams only, no retry (okx.md §1.8).
            out: list[Event] = []
            for topic, st in list(self.streams.items()):
                if _same_channel(st.sub.channel, m.channel):
                    self.streams.pop(topic)
                    self.refused.add(topic)
                    out.append(self.error("channel-conn-count-error",
                                          f"{self.venue.name} ended {st.sub.spec}: {m.connCount} connections "
                                          f"already serve channel {m.channel!r} (limit 30 per key)",
                                          request=f"subscribe {topic}", recv_ns=recv_ns, fatal=True, sub=st.sub))
            return out or [self.error("channel-conn-count-error", f"channel {m.channel} over its connection "
                                      f"limit ({m.connCount})", recv_ns=recv_ns)]
        return []

    def _login_failed(self, code: str, msg: str, recv_ns: int) -> Event:
        err = self.error(code, f"{self.venue.name} login refused: {code} {msg}".strip(),
                         request="login (apiKey, passphrase and sign redacted)", recv_ns=recv_ns, fatal=True)
        self.fail(err)
        return err

    def _error(self, m: _Msg, code: str, recv_ns: int) -> list[Event]:
        if code in LOGIN_CODES and self.login_sent and not self.logged_in:
            return [self._login_failed(code, m.msg, recv_ns)]
        req = self.pending.pop(m.id, None) if m.id else None
        if code == "60014":
            # Too frequent: slow down instead of hammering. Retry this request later with a
            # doubling delay (the engine also paces requests under 480/h).
            self.backoff_s = min(60.0, max(1.0, self.backoff_s * 2))
            if req is not None:
                op, topics = req
                for st in (self.streams.get(t) for t in topics):
                    if st is not None and not st.resync_due_ns:
                        st.resync_due_ns = recv_ns + int(self.backoff_s * 1e9)
            return [self.error(code, f"{self.venue.name}: requests too frequent, retrying in "
                                     f"{self.backoff_s:g}s: {m.msg}", recv_ns=recv_ns)]
        if req is None:
            return [self.error(code, m.msg, recv_ns=recv_ns)]
        op, topics = req
        request = f"{op} " + " ".join(topics)
        fatal = code in FATAL_SUB_CODES and op == "subscribe"
        if fatal and len(topics) > 1:
            # OKX's error names no arg; find the culprit by subscribing each arg on its own.
            for t in topics:
                self._request(op, [t])
            return [self.error(code, f"{m.msg} (retrying each of {len(topics)} args alone to find the bad one)",
                               request=request, recv_ns=recv_ns)]
        out = []
        for t in topics:
            st = self.streams.get(t)
            if fatal and st is not None:
                self.streams.pop(t)
                self.refused.add(t)
            out.append(self.error(code, f"{op} {t} refused: {code} {m.msg}", request=request, recv_ns=recv_ns,
                                  fatal=fatal, sub=st.sub if st else None))
        return out

    # -- market data ---------------------------------------------------------------------------
    def _data(self, st: StreamState, m: _Msg, recv_ns: int) -> list[Event]:
        kind = st.sub.kind
        sub = st.sub
        if kind == "book":
            return self._books(st, m.action, msgspec.json.decode(m.data, type=list[_BookData]), recv_ns)
        if kind == "trades":
            # A loop, not a comprehension: cheaper for the few trades of a message (3.11).
            out: list[Event] = []
            market, spec = sub.market, sub.spec
            for t in _trades_decoder.decode(m.data):
                out.append(Trade(t.px, t.sz, t.side, t.tradeId, t.seqId, venue="okx", market=market,
                                 symbol=t.instId, stream=spec, exch_ns=_ms(t.ts), recv_ns=recv_ns))
            return out
        if kind == "candles":
            bar = sub.channel[6:]
            return [Candle(venue="okx", market=sub.market, symbol=sub.symbol, stream=sub.spec, exch_ns=_ms(c[0]),
                           recv_ns=recv_ns, interval=bar, start_ns=_ms(c[0]), open=c[1], high=c[2], low=c[3],
                           close=c[4], volume=c[5], turnover=c[7] if len(c) > 7 else None,
                           closed=len(c) > 8 and c[8] == "1")
                    for c in _lists_decoder.decode(m.data)]
        items = _dicts_decoder.decode(m.data)
        out: list[Event] = []
        for d in items:
            g = d.get
            base = dict(venue="okx", market=sub.market, symbol=g("instId", sub.symbol), stream=sub.spec,
                        exch_ns=_ms(g("ts") or g("uTime")), recv_ns=recv_ns)
            if kind == "ticker":
                out.append(Ticker(**base, last=g("last"), bid=g("bidPx"), bid_size=g("bidSz"), ask=g("askPx"),
                                  ask_size=g("askSz"), open_24h=g("open24h"), high_24h=g("high24h"),
                                  low_24h=g("low24h"), volume_24h=g("vol24h"), turnover_24h=g("volCcy24h"), raw=d))
            elif kind == "funding":
                out.append(Funding(**base, rate=g("fundingRate", ""), next_rate=g("nextFundingRate") or None,
                                   funding_time_ns=_ms(g("fundingTime")) or None,
                                   next_funding_ns=_ms(g("nextFundingTime")) or None))
            elif kind == "mark":
                out.append(MarkPrice(**base, price=g("markPx", "")))
            elif kind == "index":
                out.append(IndexPrice(**base, price=g("idxPx", "")))
            elif kind == "open_interest":
                out.append(OpenInterest(**base, open_interest=g("oi", ""), open_interest_ccy=g("oiCcy"),
                                        open_interest_usd=g("oiUsd")))
            elif kind == "liquidations":
                for x in g("details") or []:
                    out.append(Liquidation(venue="okx", market=market_of(g("instId", "")), symbol=g("instId", ""),
                                           stream=sub.spec, exch_ns=_ms(x.get("ts")), recv_ns=recv_ns,
                                           side=_side_of_liquidated(x.get("side", ""), x.get("posSide", "")),
                                           price=x.get("bkPx", ""), size=x.get("sz", "")))
            else:
                out.extend(self._private(kind, d, base))
        return out

    def _private(self, kind: str, d: dict, base: dict) -> list[Event]:
        g = d.get
        if kind == "orders":
            out: list[Event] = [Order(**base, order_id=g("ordId", ""), client_order_id=g("clOrdId", ""),
                                      side=g("side", ""), order_type=g("ordType", ""), status=g("state", ""),
                                      price=g("px") or None, size=g("sz") or None, filled_size=g("accFillSz"),
                                      avg_price=g("avgPx") or None, raw=d)]
            if g("tradeId") and g("fillSz") not in (None, "", "0"):
                out.append(Fill(**{**base, "exch_ns": _ms(g("fillTime")) or base["exch_ns"]},
                                order_id=g("ordId", ""), trade_id=g("tradeId"), side=g("side", ""),
                                price=g("fillPx", ""), size=g("fillSz", ""), fee=g("fillFee"),
                                fee_ccy=g("fillFeeCcy"), liquidity={"M": "maker", "T": "taker"}.get(g("execType"), "")))
            return out
        if kind == "account":
            return [Balance(**{**base, "symbol": x.get("ccy", "")}, currency=x.get("ccy", ""), total=x.get("eq"),
                            available=x.get("availBal") or x.get("availEq"), frozen=x.get("frozenBal"))
                    for x in g("details") or []]
        if kind == "positions":
            return [Position(**{**base, "symbol": g("instId", "")}, side=g("posSide", ""), size=g("pos", ""),
                             avg_price=g("avgPx") or None, unrealized_pnl=g("upl") or None, raw=d)]
        if kind == "balance_and_position":
            out = [Balance(**{**base, "symbol": b.get("ccy", "")}, currency=b.get("ccy", ""), total=b.get("cashBal"))
                   for b in g("balData") or []]
            out += [Position(**{**base, "symbol": p.get("instId", "")}, side=p.get("posSide", ""), size=p.get("pos", ""),
                             avg_price=p.get("avgPx") or None, raw=p) for p in g("posData") or []]
            return out
        return []

    # -- books -----------------------------------------------------------------------------------
    def _books(self, st: StreamState, action: str, items: list[_BookData], recv_ns: int) -> list[Event]:
        out: list[Event] = []
        st.last_rx_ns = recv_ns
        for d in items:
            self._book(st, action, d, recv_ns, out)
        return out

    def _book(self, st: StreamState, action: str, d: _BookData, recv_ns: int, out: list[Event]) -> None:
        book = st.book
        seq = d.seqId
        prev = d.prevSeqId
        assert book is not None
        exch_ns = _ms(d.ts)
        if st.sub.channel in SNAPSHOT_ONLY or action == "snapshot" or prev == -1:
            book.apply_snapshot(d.bids, d.asks, seq or 0)
            book.exch_ns = exch_ns
            last = st.last_seq
            st.last_seq = seq or 0
            was_broken = st.gap_reported
            st.synced = True
            st.resync_due_ns = 0
            st.extra = None
            if d.checksum and self.verify_checksum and not self._checksum_ok(st, d, recv_ns, out):
                return
            out.append(self.book_event(st, d.bids, d.asks, True, seq or 0, last if prev is None else prev,
                                       exch_ns, recv_ns))
            if was_broken:
                out.append(self.resynced(st, recv_ns))
            return
        if not st.synced:
            self._buffer(st, action, d, recv_ns, out)
            return
        if seq is not None and prev is not None:
            if prev != st.last_seq:
                ex = st.extra
                rest_seq = ex.get("rest_seq") if ex is not None else None
                if rest_seq is None or prev > rest_seq or st.last_seq != rest_seq:
                    self.break_book(st, recv_ns, f"prevSeqId {prev} != last seqId {st.last_seq}", st.last_seq,
                                    prev, out)
                    return
                # Right after a REST snapshot (taken at rest_seq, possibly between two pushes): a
                # delta up to it is already in it; the first one past it spans it, and since levels
                # carry absolute sizes, applying it gives the book at its seqId. The documents are
                # silent on aligning REST with WS seqIds: this is the tolerant reading (the usual
                # "prev <= snapshot < seq" rule); the simulator's REST book plays it.
                if seq <= rest_seq:
                    return
                st.extra = None
                prev = st.last_seq  # the user's chain: it continues from the snapshot
            if seq == prev and not d.bids and not d.asks:
                return  # keepalive: no change for a while (not a gap)
            # seqId < prevSeqId is a reset after maintenance: accepted, chain continues from seqId.
        book.apply_delta(d.bids, d.asks, seq or 0)
        book.exch_ns = exch_ns
        last = st.last_seq
        st.last_seq = seq if seq is not None else last
        if d.checksum and self.verify_checksum and not self._checksum_ok(st, d, recv_ns, out):
            return
        out.append(self.book_event(st, d.bids, d.asks, False, st.last_seq, last if prev is None else prev,
                                   exch_ns, recv_ns))

    def _checksum_ok(self, st: StreamState, d: _BookData, recv_ns: int, out: list[Event]) -> bool:
        # The legacy CRC32 is checked only when the venue sends a non-zero value; since
        # 2026-06-23 OKX sends 0 and the check is skipped, never failed (okx.md §2.3).
        bids, asks = st.book.top(25)  # type: ignore[union-attr]
        got = checksum(bids, asks)
        if got == d.checksum:
            return True
        self.break_book(st, recv_ns, f"checksum mismatch: computed {got}, venue sent {d.checksum}", d.checksum, got, out)
        return False

    def _buffer(self, st: StreamState, action: str, d: _BookData, recv_ns: int, out: list[Event]) -> None:
        """Deltas before any snapshot: buffer them; if no WS snapshot comes, the engine fetches REST."""
        if st.gap_reported or st.resync_due_ns:
            return  # broken and resyncing: the new subscription's snapshot will follow
        if st.extra is None:
            st.extra = {"buffer": [], "since": recv_ns}
        buf = st.extra["buffer"]
        if len(buf) < 10_000:
            buf.append(d)

    def rest_snapshot_path(self, st: StreamState) -> str:
        return f"/api/v5/market/books?instId={st.sub.symbol}&sz=400&source=0"

    def on_rest_snapshot(self, topic: str, body: Any, recv_ns: int, error: str = "") -> list[Event]:
        """Align a REST snapshot (``source=0``, with seqId) with the buffered deltas (okx.md §2.2).

        ``body`` is the decoded JSON reply (None if the request failed with ``error``)."""
        st = self.streams.get(topic)
        if st is None or st.book is None:
            return []  # unsubscribed while the request was out
        snap: _BookData | None = None
        if isinstance(body, dict):
            data = (body.get("data") or [None])[0]
            if data is None:
                error = f"code {body.get('code')} {body.get('msg')}"
            else:
                try:
                    snap = msgspec.convert(data, type=_BookData)
                except (msgspec.ValidationError, TypeError) as e:
                    error = f"bad snapshot: {e}"
        elif body is not None:
            error = "bad body"
        out: list[Event] = []
        ex = st.extra or {}
        ex["rest_pending"] = False
        if snap is None or snap.seqId is None:
            ex["since"] = recv_ns  # try again after snapshot_wait_s
            out.append(self.error("rest", f"REST snapshot for {st.sub.symbol} failed: {error}", recv_ns=recv_ns,
                                  sub=st.sub))
            return out
        buf: list[_BookData] = ex.get("buffer", [])
        if buf and buf[0].prevSeqId is not None and snap.seqId < buf[0].prevSeqId:
            ex["since"] = recv_ns  # snapshot older than our first delta: fetch again
            return out
        book = st.book
        assert book is not None
        book.apply_snapshot(snap.bids, snap.asks, snap.seqId)
        st.last_seq = snap.seqId
        st.synced = True
        st.extra = {"rest_seq": snap.seqId}  # updates up to this one may still be in flight: skip them
        out.append(self.book_event(st, snap.bids, snap.asks, True, snap.seqId, -1, _ms(snap.ts), recv_ns))
        for d in buf:
            if d.seqId is not None and d.seqId <= snap.seqId:
                continue  # already in the snapshot
            self._book(st, "update", d, recv_ns, out)
        return out


def _same_channel(ours: str, theirs: str) -> bool:
    """channel-conn-count events may name the channel family ("prices" for "price" in the DEX
    docs; candles perhaps without the dex-token- prefix): match tolerantly."""
    def norm(c: str) -> str:
        c = c.removeprefix("dex-token-")
        return c[:-1] if c.endswith("s") else c
    return ours == theirs or norm(ours) == norm(theirs) or (theirs.startswith("candle") and norm(ours).startswith(theirs))
