"""BG Exchange (bg.exchange) WebSocket V2 dialect (sans-I/O): public market data and private
orders/assets.

Everything tickwire knows about BGE's V2 protocol lives here: the endpoint, the flat
``sub``/``unsub``/``req`` requests, the server-initiated ``{"ping": ts}`` heartbeat, gzip
(``zip``) frames, the ``{event, code, msg}`` error replies, API-key login, and the decoding
of every channel into normalized events. Reference: shared/protocols/bge.md (cited as §N).

Spec grammar (``bge[.spot]:CHANNEL:SYMBOL``; BGE has one spot market, canonical specs omit it)::

    native                          aliases                         kind
    orderbook.G  (gear G = 0..11)   book (= orderbook.0),           book
                                    orderbook, book.150 (= .0),
                                    book.20 (= orderbook.6)
    percent10                                                       book
    fills                           trades, trade                   trades
    ticker                          tickers                         ticker
    candles.I (I = 1min 5min 15min  candles.1m/5m/15m/30m/1h/4h/    candles
      30min 60min 4hour 1day          1d/1w/1M
      1week 1mon)
    orders   (private; SYMBOL may   order                           orders
      be ``all``)
    assets   (private)              balances, balance               balances

Symbols are BGE pairs, ``BASE_QUOTE`` in upper case (``BTC_USDT``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Sequence

import msgspec

from tickwire.credentials import redact
from tickwire.model import Balance, Candle, Event, Order, Ticker, Trade
from tickwire.subscription import SpecError, Subscription
from tickwire.venues.base import Limits, Session, SessionOptions, StreamState, Timers, Venue

NETWORKS = {"mainnet": "wss://ws.bg.exchange"}  # no testnet is documented (§1)
PATH = "/v2/ws"                                  # public and private V2 channels share it (§1)
PUBLIC, PRIVATE = "public", "private"

GEARS = tuple(str(g) for g in range(12))          # orderbook "interval" (§4.3)
CANDLE_INTERVALS = ("1min", "5min", "15min", "30min", "60min", "4hour", "1day", "1week", "1mon")
CANDLE_ALIASES = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "60min", "60m": "60min",
                  "1hour": "60min", "4h": "4hour", "1d": "1day", "1D": "1day", "1w": "1week", "1W": "1week",
                  "1M": "1mon"}
# Candle.interval carries the normalized name (as the Bybit dialect does).
INTERVAL_NAMES = {"1min": "1m", "5min": "5m", "15min": "15m", "30min": "30m", "60min": "1h", "4hour": "4h",
                  "1day": "1d", "1week": "1w", "1mon": "1M"}
_INTERVAL_S = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "60min": 3600, "4hour": 14400,
               "1day": 86400, "1week": 604800}  # 1mon varies: not listed

ORDER_STATUS = {"0": "received", "1": "submitted", "2": "partially_filled", "3": "filled",
                "4": "cancelling", "5": "canceled", "6": "failed", "7": "reduced"}  # §5.4
WSERR = {200: "success", 400: "invalid request", 401: "not logged in", 500: "system error, retry later"}
# Failures worth retrying (with backoff); any other refusal of a subscribe is final for that stream
# (e.g. 400 for an unknown pair, 401 not logged in). 1049/1097/1098: too frequent/timeout/busy (§7.4).
TRANSIENT = {500, 1049, 1097, 1098}

# Our own cap (the venue documents none besides 50 msgs/s): 400 subscribe requests go out in 10 s
# at the engine's 40 requests/s (it keeps 20% of the 50/s for pongs), well inside the venue's 30 s
# subscribe window, and a full resubscribe after a reconnect stays as quick.
MAX_STREAMS_PER_CONN = 400

_SYMBOL_HINT_QUOTES = ("USDT", "USDC", "BTC", "ETH", "HKD")
_NATIVE_HELP = ("native: orderbook.G (gear G=0..11), percent10, fills, ticker, candles.INTERVAL "
                f"({' '.join(CANDLE_INTERVALS)}), orders, assets; aliases: book, book.150, book.20, "
                "trades, tickers, candles.1m/5m/15m/30m/1h/4h/1d/1w/1M, balances")


# --------------------------------------------------------------------------- wire types

_NO_RAW = msgspec.Raw(b"")


class _Envelope(msgspec.Struct, gc=False):
    """Every V2 server frame: pushes (no ``event``), acks/errors/req replies (``event``), ping."""

    ping: msgspec.Raw = _NO_RAW
    pong: msgspec.Raw = _NO_RAW
    event: str = ""
    biz: str = ""
    type: str = ""
    product: str = ""
    interval: str | int | None = None   # orderbook acks echo the gear as a number (§2.4)
    code: int | str | None = None       # documented int, sent as a string in one example (§7.1)
    msg: str = ""
    status: str = ""
    ts: int = 0
    id: str | int | None = None
    seq_id: int | None = None
    data: msgspec.Raw = _NO_RAW
    # deprecated V1 shapes (§9), met in old recordings
    channel: str = ""
    pairCode: str = ""
    seqId: int | None = None
    bids: msgspec.Raw = _NO_RAW
    asks: msgspec.Raw = _NO_RAW


class _Ping(msgspec.Struct, gc=False):
    ping: msgspec.Raw


class _BookData(msgspec.Struct, gc=False):
    bids: list[tuple[str, str]] | None = None
    asks: list[tuple[str, str]] | None = None
    seq_id: int | None = None


class _LenientBookData(msgspec.Struct, gc=False):
    bids: list[list[msgspec.Raw]] | None = None
    asks: list[list[msgspec.Raw]] | None = None
    seq_id: int | None = None


class _Fill(msgspec.Struct, gc=False):
    id: int | str
    ts: int
    price: str
    vol: str
    direction: str = ""


class _Candle(msgspec.Struct, gc=False):
    id: int
    open: str
    close: str
    high: str
    low: str
    vol: str = ""
    filled_size: str = ""
    count: int = 0
    seq_id: int | None = None


class _Asset(msgspec.Struct, gc=False):
    currency: str
    available: str | None = None
    hold: str | None = None


_env_decoder = msgspec.json.Decoder(_Envelope)
_ping_decoder = msgspec.json.Decoder(_Ping)
_book_decoder = msgspec.json.Decoder(_BookData)
_lenient_book_decoder = msgspec.json.Decoder(_LenientBookData)
_raw_levels_decoder = msgspec.json.Decoder(list[list[msgspec.Raw]])
_fills_decoder = msgspec.json.Decoder(list[_Fill])
_candle_decoder = msgspec.json.Decoder(_Candle | list[_Candle])  # push: object; req reply: array
_assets_decoder = msgspec.json.Decoder(list[_Asset] | _Asset)
_dicts_decoder = msgspec.json.Decoder(list[dict] | dict)         # ticker push: [obj]; req reply: obj
_any_decoder = msgspec.json.Decoder()
_encode = msgspec.json.encode

_PING_PREFIX = b'{"ping":'
_GZIP_B64 = b"H4sI"  # base64 of a gzip header: tolerated on text frames (§6, framing UNVERIFIED)
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError)


def sign(secret: str, timestamp: int | str) -> str:
    """``access_sign``: Base64(HMAC-SHA256(secret, str(timestamp))) (§5.2: method, path, query
    and body are empty for the WebSocket login, so the signed text is exactly the timestamp)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def inflate(payload: bytes | memoryview) -> bytes:
    """A ``zip:true`` frame -> JSON bytes: gzip (documented intent), else zlib or raw deflate."""
    data = bytes(payload)
    if data[:1] in (b"{", b"["):
        return data  # a binary frame that is plain JSON
    if data[:2] == b"\x1f\x8b" or data[:1] == b"\x78":
        return zlib.decompress(data, 47)  # 32+15: gzip or zlib header, auto-detected
    return zlib.decompress(data, -15)


def _topic(typ: str, interval: Any, product: str) -> str:
    """The stream key of a frame: ``orderbook.0:BTC_USDT``, ``fills:BTC_USDT``, ``orders:all``."""
    if typ == "orderBook":  # V1 spelling (§9)
        typ = "orderbook"
    if typ in ("orderbook", "candles") and interval is not None and interval != "":
        return f"{typ}.{interval}:{product}"
    return f"{typ}:{product}"


def _wire(channel: str) -> tuple[str, str, str]:
    """Native channel -> (biz, type, interval) of the request."""
    typ, _, interval = channel.partition(".")
    return ("exchange" if typ in ("orders", "assets") else "market"), typ, interval


def _epoch_s_to_ns(v: Any) -> int:
    """Push ``id`` fields look like unix seconds (§2.5, UNVERIFIED): use them only when they do."""
    try:
        n = int(v)
    except (TypeError, ValueError):
        return 0
    return n * 1_000_000_000 if 1_000_000_000 <= n < 10_000_000_000 else 0


def _code_int(code: Any) -> int | None:
    if code is None or code == "":
        return None
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


def _raw_text(r: msgspec.Raw) -> str:
    """A JSON scalar's exact text: numbers keep their digits ("3781.85"), strings lose quotes."""
    b = bytes(r)
    return _any_decoder.decode(b) if b[:1] == b'"' else b.decode()


def _levels_exact(rows: list[list[msgspec.Raw]] | None) -> list[tuple[str, str]]:
    return [(_raw_text(r[0]), _raw_text(r[1])) for r in rows or () if len(r) >= 2]


def _total(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    try:
        return str(Decimal(a) + Decimal(b))
    except InvalidOperation:
        return None


# --------------------------------------------------------------------------- venue


class BGE(Venue):
    name = "bge"
    markets = ("spot",)
    default_market = "spot"
    networks = NETWORKS
    # §3: at most 50 messages per second per connection, or the venue closes it; pongs are
    # messages too (unclear in the docs, so we count them: the engine keeps 20% for them).
    # New-connection rates are not documented: the generic default applies.
    limits = Limits(max_msgs_per_s=50)

    def close_means_slow_down(self, code: int | None, reason: str) -> bool:
        # bge.md §3: more than 50 messages a second is a forced close. The close frame's code
        # and text are not documented: 1008 (policy violation) or a reason naming the rate is
        # read as that (tolerant reading; the simulator sends 1008 "too many messages").
        r = reason.lower()
        return code == 1008 or "too many" in r or "rate" in r or "frequen" in r

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        if market not in ("", "spot"):
            raise self.bad(spec, f"unknown market {market!r}; BG Exchange has one spot market: "
                                 "write bge:CHANNEL:SYMBOL (e.g. bge:fills:BTC_USDT)")
        native, kind = self._channel(channel, spec)
        private = kind in ("orders", "balances")
        symbol = self._symbol(symbol, native, spec)
        return Subscription(spec=f"bge:{native}:{symbol}", venue="bge", market="spot", channel=native,
                            symbol=symbol, kind=kind, endpoint=PRIVATE if private else PUBLIC,
                            topic=f"{native}:{symbol}", needs_auth=private)

    def _channel(self, channel: str, spec: str) -> tuple[str, str]:
        c = channel
        if c in ("book", "orderbook", "book.150"):
            return "orderbook.0", "book"
        if c == "book.20":
            return "orderbook.6", "book"
        if c.startswith("orderbook."):
            gear = c.split(".", 1)[1]
            if gear not in GEARS:
                raise self.bad(spec, f"orderbook gear {gear!r} not served; gears 0..11 (0-5: up to 150 "
                                     "levels, 6-11: up to 20; 0 and 6 full precision, then 0.00001 .. 0.1), "
                                     "e.g. orderbook.0")
            return c, "book"
        if c.startswith("book."):
            raise self.bad(spec, "book.N takes a depth of 150 or 20 (orderbook gears 0 and 6); "
                                 "other precisions: orderbook.G with G=0..11")
        if c == "percent10":
            return c, "book"
        if c in ("fills", "trades", "trade"):
            return "fills", "trades"
        if c in ("ticker", "tickers"):
            return "ticker", "ticker"
        if c.startswith("candles.") or c == "candles":
            iv = c.partition(".")[2]
            iv = CANDLE_ALIASES.get(iv, iv)
            if iv not in CANDLE_INTERVALS:
                raise self.bad(spec, f"candle interval {iv or '(none)'!r} not served; use candles.I with I in "
                                     f"{' '.join(CANDLE_INTERVALS)} or candles.1m/5m/15m/30m/1h/4h/1d/1w/1M")
            return f"candles.{iv}", "candles"
        if c in ("orders", "order"):
            return "orders", "orders"
        if c in ("assets", "balances", "balance"):
            return "assets", "balances"
        raise self.bad(spec, f"unknown channel {c!r}; {_NATIVE_HELP}")

    def _symbol(self, symbol: str, native: str, spec: str) -> str:
        if not symbol or any(ch.isspace() for ch in symbol):
            raise self.bad(spec, "empty or malformed symbol; BG Exchange pairs look like BTC_USDT")
        if symbol.lower() == "all":
            if native != "orders":
                raise self.bad(spec, "product 'all' is allowed only for orders (assets and market "
                                     "channels take one pair, e.g. BTC_USDT)")
            return "all"  # case-insensitive on the venue (§2.3); we send it lower case
        if symbol != symbol.upper():
            raise self.bad(spec, f"symbol {symbol!r} must be upper case, e.g. {symbol.upper()}")
        base, sep, quote = symbol.partition("_")
        if not sep or not base or not quote or "_" in quote:
            hint = next((f"{symbol[:-len(q)]}_{q}" for q in _SYMBOL_HINT_QUOTES
                         if symbol.endswith(q) and len(symbol) > len(q)), "BTC_USDT")
            raise self.bad(spec, f"symbol {symbol!r} is not a BG Exchange pair; pairs are BASE_QUOTE, e.g. {hint}")
        return symbol

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        if base is None:
            if network not in NETWORKS:
                raise ValueError(f"bge: unknown network {network!r}; BG Exchange documents only: "
                                 f"{', '.join(NETWORKS)}")
            base = NETWORKS[network]
        root = base.rstrip("/")
        if root.endswith(PATH):  # a full URL was given
            return root
        return root + PATH

    def timers(self) -> Timers:
        # The server pings us (§3); we never ping. It drops a client that leaves its ping
        # unanswered for 30 s, so it must ping more often than that, and a subscribed connection
        # otherwise gets data at least every 30 s (§3). Silence for 40 s (30 s + 10 s of margin for
        # jitter and a slow server tick) therefore means a dead link.
        return Timers(stale_s=40.0, login_timeout_s=10.0, subscribe_timeout_s=10.0)

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """One request per stream (``product`` is one string, §2.1), paced by the engine at
        40 requests/s: cap a connection at MAX_STREAMS_PER_CONN streams (10 s of subscribing)."""
        return self.pack(subs, lambda s: (1,), (MAX_STREAMS_PER_CONN,))

    def decode_endpoint(self, market: str) -> str:
        return PUBLIC  # one wire format: the decoder handles private frames too

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> "BGESession":
        return BGESession(self, endpoint, conn, options)


# --------------------------------------------------------------------------- session


class BGESession(Session):
    """One BGE V2 connection: login (private), one request per stream, pongs, seq_id checks."""

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        super().__init__(venue, endpoint, conn, options)
        self.client_pings = False  # the server pings; we answer (§3)
        self.private = endpoint == PRIVATE
        # zip=false by default: bge.md §6 recommends it, and how zipped frames are framed
        # (binary gzip? acks and pings too?) is undocumented. Both text and binary gzip
        # frames are decoded either way. SessionOptions.extra["zip"]=True asks for gzip.
        z = options.extra.get("zip", False)
        self.zip = z.strip().lower() in ("1", "true", "yes", "on") if isinstance(z, str) else bool(z)
        self.logged_in = False
        self.login_sent_ns = 0
        self.subscribed: set[str] = set()              # topics the venue acked
        self.pending: dict[tuple[str, str], str] = {}  # (event, topic) -> request sent, oldest first
        self.pings = 0
        self.last_ping_ns = 0
        self.last_kind = ""                            # what the last frame was (ping/ack/login/data/...)
        self._login_request = "login"                  # redacted text of our login request
        self._scrub_words: list[str] = []              # key and signature: never echoed in events
        self._unknown_seen: set[tuple] = set()

    def __repr__(self) -> str:
        return (f"BGESession(conn={self.conn!r}, endpoint={self.endpoint!r}, streams={len(self.streams)}, "
                f"logged_in={self.logged_in}, zip={self.zip})")

    # -- requests -------------------------------------------------------------------
    def start(self, now_ns: int) -> None:
        self.started_ns = now_ns
        if self.private:
            self._login(now_ns)
        else:
            self._subscribe(list(self.streams.values()))

    def pushes_regularly(self, sub: Subscription) -> bool:
        # Full books are pushed every 500 ms (bge.md), changed or not.
        return sub.kind == "book"

    def add(self, subs: Iterable[Subscription]) -> None:
        new = self.track(subs)
        if new and self.started_ns and (self.logged_in or not self.private):
            self._subscribe(new)

    def remove(self, subs: Iterable[Subscription]) -> None:
        for s in subs:
            st = self.streams.pop(s.topic, None)
            if st is not None and self.started_ns and (s.topic in self.subscribed or ("sub", s.topic) in self.pending):
                self._request("unsub", st.sub)

    def _subscribe(self, states: list[StreamState]) -> None:
        # One request per stream: a V2 request names one `product` (§2.1); the engine paces
        # them under 50 msgs/s (300 streams: 7.5 s at 40/s, inside the 30 s window of §3).
        for st in states:
            self._request("sub", st.sub)

    def _request(self, event: str, sub: Subscription) -> None:
        biz, typ, interval = _wire(sub.channel)
        req: dict[str, Any] = {"event": event, "biz": biz, "type": typ, "product": sub.symbol}
        if interval:
            req["interval"] = interval
        req["zip"] = self.zip
        frame = _encode(req)
        key = (event, sub.topic)
        self.pending.pop(key, None)  # re-insert: the dict keeps the order requests were sent in
        self.pending[key] = frame.decode()
        self.send(frame, f"{event} {sub.topic}")

    def _login(self, now_ns: int) -> None:
        cred = self.options.credentials
        key = getattr(cred, "api_key", "") if cred is not None else ""
        secret = getattr(cred, "secret", "") if cred is not None else ""
        if not key or not secret:
            err = self.error("credentials", "BG Exchange private channels (orders, assets) need an API key "
                             "and secret: set TICKWIRE_BGE_API_KEY and TICKWIRE_BGE_SECRET or use a "
                             "credentials file", request="login", recv_ns=now_ns or 1, fatal=True)
            self.emit([err])
            self.fail(err)
            return
        ts = now_ns // 1_000_000  # §5.1: access_timestamp in ms, signed as its decimal string
        signature = sign(secret, ts)
        frame = _encode({"event": "login", "params": {"type": "api", "access_key": key,
                                                      "access_sign": signature, "access_timestamp": ts}})
        self._login_request = _encode({"event": "login", "params": {
            "type": "api", "access_key": redact(key), "access_sign": "***", "access_timestamp": ts}}).decode()
        self._scrub_words = [w for w in (secret, signature, key) if w]
        self.pending[("login", "")] = self._login_request
        self.login_sent_ns = now_ns or 1
        self.send(frame, "login")

    def resync(self, subs: list[Subscription]) -> None:
        # Fresh data for these streams only: unsubscribe (if subscribed) and subscribe again.
        # The seq_id baseline is dropped: the next push starts the stream afresh (every book
        # push is a full book, so it is a snapshot by itself).
        for s in subs:
            st = self.streams.get(s.topic)
            if st is None:
                continue
            if s.topic in self.subscribed or ("sub", s.topic) in self.pending:
                self._request("unsub", s)
            self._request("sub", s)
            st.last_seq = 0
            st.synced = False

    def _retry_later(self, st: StreamState, now_ns: int) -> None:
        """Subscribe again after a transient refusal, with the per-stream backoff of resyncs."""
        if st.resync_due_ns:
            return
        if now_ns - st.last_resync_ns > 60e9:
            st.resync_backoff_s = 0.0
        delay = max(self.timers.resync_min_interval_s, st.resync_backoff_s)
        st.resync_due_ns = max(1, now_ns + int(delay * 1e9), st.last_resync_ns + int(st.resync_backoff_s * 1e9))
        st.resync_backoff_s = min(30.0, delay * 2)

    def on_timer(self, now_ns: int) -> None:
        if (self.private and self.login_sent_ns and not self.logged_in and not self.closing
                and now_ns - self.login_sent_ns > self.timers.login_timeout_s * 1e9):
            self.close(f"no login reply within {self.timers.login_timeout_s:g}s")
        super().on_timer(now_ns)

    # -- frames -----------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        if binary or payload[:4] == _GZIP_B64:
            try:
                payload = inflate(payload if binary else base64.b64decode(bytes(payload)))
            except (zlib.error, binascii.Error, ValueError) as e:
                self.last_kind = "error"
                return [self.error("decode", f"undecodable compressed frame ({e}): {bytes(payload[:60])!r}",
                                   recv_ns=recv_ns)]
        if payload[:8] == _PING_PREFIX:
            try:
                ping = _ping_decoder.decode(payload).ping
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
            else:
                self._pong(ping, recv_ns)
                return []
        try:
            env = _env_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            self.last_kind = "error"
            return [self.error("decode", self._scrub(f"undecodable frame ({e}): {bytes(payload[:200])!r}"),
                               recv_ns=recv_ns)]
        if len(env.ping):
            self._pong(env.ping, recv_ns)
            return []
        if len(env.pong):  # not documented from the server; harmless
            self.last_kind = "pong"
            return []
        if env.event or env.channel:
            return self._control(env, recv_ns)
        if env.type and (len(env.data) or len(env.bids) or len(env.asks)):
            code = _code_int(env.code)
            if code is None or code == 200:  # (V1 ticker pushes carry "code":200)
                self.last_kind = "data"
                return self._push(env, env.type, recv_ns)
        if env.code is not None:
            return self._control(env, recv_ns)
        return self._unknown(env, bytes(payload[:200]).decode("utf-8", "replace"), recv_ns)

    def _pong(self, ping: msgspec.Raw, recv_ns: int) -> None:
        # §3: answer at once with the very value received; CONTROL goes ahead of any backlog.
        self.pings += 1
        self.last_ping_ns = recv_ns
        self.last_kind = "ping"
        self.send_control(b'{"pong":' + bytes(ping) + b"}", "pong")

    def _unknown(self, env: _Envelope, what: str, recv_ns: int) -> list[Event]:
        # Nothing is swallowed, but a new frame kind is reported once per shape, not per frame.
        self.last_kind = "unknown"
        shape = (env.event, env.type, env.biz)
        if shape in self._unknown_seen:
            return []
        self._unknown_seen.add(shape)
        return [self.error("unrecognized", f"unrecognized frame: {self._scrub(what)}", recv_ns=recv_ns)]

    # -- acks, errors, replies --------------------------------------------------------
    def _control(self, env: _Envelope, recv_ns: int) -> list[Event]:
        event = env.event or {"subscribe": "sub", "unsubscribe": "unsub"}.get(env.channel, env.channel)
        code = _code_int(env.code)
        failed = (code is not None and code != 200) or env.status.upper() in ("FAIL", "FAILED", "ERROR")
        if event == "login" or (failed and event in ("error", "") and not env.type
                                and ("login", "") in self.pending):
            return self._login_reply(env, code, failed, recv_ns)
        topic = _topic(env.type, env.interval, env.product or env.pairCode) if env.type else ""
        if failed:
            return self._failure(event, env, code, topic, recv_ns)
        if event == "req":
            self.pending.pop(("req", topic), None)
            self.last_kind = "data"
            return self._push(env, env.type, recv_ns, reply=True) if env.type and len(env.data) else []
        self.last_kind = "ack"
        if topic:
            self.pending.pop((event, topic), None)
            if event == "sub":
                self.subscribed.add(topic)
            elif event == "unsub":
                self.subscribed.discard(topic)
        return []

    def _login_reply(self, env: _Envelope, code: int | None, failed: bool, recv_ns: int) -> list[Event]:
        self.pending.pop(("login", ""), None)
        self.last_kind = "login"
        if not failed:
            self.logged_in = True
            self._subscribe([st for st in self.streams.values()
                             if st.sub.topic not in self.subscribed and ("sub", st.sub.topic) not in self.pending])
            return []
        self.last_kind = "error"
        msg = self._scrub(env.msg) or self._fail_text(env, code)
        # A refused login (400xx auth codes, 400, 401) will be refused again: stop for good
        # instead of a reconnect loop. A system error (500) may pass on a later attempt.
        fatal = code not in TRANSIENT
        err = self.error(env.code, msg, request=self._login_request, recv_ns=recv_ns, fatal=fatal)
        if fatal:
            self.fail(err)
        else:
            self.close(f"login failed: {err.code} {msg}; reconnecting")
        return [err]

    def _failure(self, event: str, env: _Envelope, code: int | None, topic: str, recv_ns: int) -> list[Event]:
        self.last_kind = "error"
        request, topic = self._match_pending(event, topic, env.msg)
        st = self.streams.get(topic) if topic else None
        msg = self._scrub(env.msg) or self._fail_text(env, code)
        if event == "sub" and "already" in env.msg.lower():
            return []  # harmless: the first subscription keeps delivering
        if event == "sub" and st is not None:
            if code in TRANSIENT:
                self._retry_later(st, recv_ns)
                return [self.error(env.code, msg, request=request, recv_ns=recv_ns, sub=st.sub)]
            # Refused for good (e.g. an unknown pair or gear): fatal for this stream only.
            self.streams.pop(topic, None)
            self.refused.add(topic)
            return [self.error(env.code, msg, request=request, recv_ns=recv_ns, fatal=True, sub=st.sub)]
        if st is not None:
            return [self.error(env.code, msg, request=request, recv_ns=recv_ns, sub=st.sub)]
        return [self.error(env.code, msg, request=request, recv_ns=recv_ns,
                           stream=f"bge:{topic}" if topic else "")]

    def _match_pending(self, event: str, topic: str, msg: str) -> tuple[str, str]:
        """Which request a failure answers: the frame's own echo of type/product when present,
        else the request echoed inside ``msg`` ("Invalid request: {...}", §7.1), else the oldest
        unanswered request of that event (the venue answers one connection's requests in order)."""
        if not topic:
            topic = self._topic_in_msg(msg)
        if topic:
            req = self.pending.pop((event, topic), None)
            if req is None and event in ("error", ""):
                for k in list(self.pending):
                    if k[1] == topic:
                        req = self.pending.pop(k)
                        break
            return (req or ""), topic
        for k in list(self.pending):
            if k[0] == event or (event in ("error", "") and k[0] != "login"):
                return self.pending.pop(k), k[1]
        return "", ""

    @staticmethod
    def _topic_in_msg(msg: str) -> str:
        i = msg.find("{")
        if i < 0:
            return ""
        try:
            obj = _any_decoder.decode(msg[i:].encode())
        except msgspec.DecodeError:
            return ""
        if not isinstance(obj, dict):
            return ""
        for inner in (obj, obj.get("para"), obj.get("params")):
            if isinstance(inner, dict) and inner.get("type"):
                product = inner.get("product") or inner.get("pairCode") or ""
                if product:
                    return _topic(str(inner["type"]), inner.get("interval"), str(product))
        return ""

    @staticmethod
    def _fail_text(env: _Envelope, code: int | None) -> str:
        meaning = WSERR.get(code, "") if code is not None else ""
        return f"{env.status or 'FAIL'} ({env.code}{': ' + meaning if meaning else ''})"

    def _scrub(self, text: str) -> str:
        for w in self._scrub_words:
            if w in text:
                text = text.replace(w, "***")
        return text

    # -- data -------------------------------------------------------------------------
    def _push(self, env: _Envelope, typ: str, recv_ns: int, reply: bool = False) -> list[Event]:
        product = env.product or env.pairCode
        topic = _topic(typ, env.interval, product)
        st = self.streams.get(topic)
        if st is None and typ == "orders":
            st = self.streams.get("orders:all")  # subscribed with `all`, pushed with its pair
        if st is None:
            if not self.accept_any:
                return []  # late data of a stream we left
            st = self._adopt(typ, env.interval, product, topic)
            if st is None:
                return self._unknown(env, f"{typ} push for {product!r}", recv_ns)
        st.last_rx_ns = recv_ns
        if self.pending and ("sub", topic) in self.pending and not reply:
            # Data proves the subscription, even if its ack went missing: the request must not
            # stay pending, or a later error could be matched to it.
            del self.pending[("sub", topic)]
            self.subscribed.add(topic)
        try:
            if typ in ("orderbook", "orderBook", "percent10"):
                return self._book(st, env, recv_ns)
            if typ == "fills":
                return self._fills(st, env, recv_ns)
            if typ == "ticker":
                return self._ticker(st, env, recv_ns, reply)
            if typ == "candles":
                return self._candles(st, env, recv_ns, reply)
            if typ == "assets":
                return self._assets(st, env, recv_ns)
            if typ == "orders":
                return self._orders(st, env, recv_ns)
        except _DECODE_ERRORS as e:
            return [self.error("decode", f"bad {typ} frame for {product} ({e})", recv_ns=recv_ns, sub=st.sub)]
        return []

    def _adopt(self, typ: str, interval: Any, product: str, topic: str) -> StreamState | None:
        """Decode mode: create stream state for a stream seen in a recorded file."""
        channel = topic.rpartition(":")[0]
        base_type = channel.partition(".")[0]
        if base_type not in ("orderbook", "percent10", "fills", "ticker", "candles", "orders", "assets"):
            return None
        try:
            sub = self.venue.parse("", channel, product, f"bge:{channel}:{product}")
        except SpecError:
            # e.g. a V1 gear or an odd symbol in an old recording: keep it under its own name
            kind = {"orderbook": "book", "percent10": "book", "fills": "trades", "ticker": "ticker",
                    "candles": "candles", "orders": "orders", "assets": "balances"}[base_type]
            sub = Subscription(spec=f"bge:{channel}:{product}", venue="bge", market="spot", channel=channel,
                               symbol=product, kind=kind, endpoint=self.endpoint, topic=topic,
                               needs_auth=kind in ("orders", "balances"))
        if sub.topic != topic:
            return None
        st = self.streams[topic] = StreamState(sub)
        return st

    def _accept_seq(self, st: StreamState, seq: int | None, recv_ns: int, out: list[Event]) -> bool:
        """The seq_id rule. Should this push be used?

        bge.md §4: seq_id is ONE exchange-wide market counter, monotonically increasing, the
        same on every connection, "for dedup and loss/ordering detection"; no gap rule is given
        and channels share values. So consecutive pushes of one stream are NOT n, n+1: a jump
        forward is normal and is not a gap. The tolerant rule, per stream:
          * seq > last  -> use it (any jump);
          * seq == last -> a duplicate (the same push again, or an unchanged resend): drop it;
          * seq < last  -> the counter went back: a stale frame or a venue-side reset, we cannot
                           tell which, so integrity is lost: Gap, book invalid, rate-limited
                           resync (unsub + sub), and the next push after it starts afresh.
        While a resync is due, pushes are ignored. No seq_id (fills, V1): always used.
        """
        if st.resync_due_ns:
            return False
        if seq is None:
            return True
        if st.synced:
            last = st.last_seq
            if seq == last:
                return False
            if seq < last:
                self.break_book(st, recv_ns, f"seq_id went back from {last} to {seq}", last + 1, seq, out)
                return False
        return True

    def _book(self, st: StreamState, env: _Envelope, recv_ns: int) -> list[Event]:
        if len(env.data):
            try:
                d = _book_decoder.decode(env.data)
                bids, asks, seq = d.bids or [], d.asks or [], d.seq_id
            except msgspec.ValidationError:  # numeric levels: keep their exact digits
                ld = _lenient_book_decoder.decode(env.data)
                bids, asks, seq = _levels_exact(ld.bids), _levels_exact(ld.asks), ld.seq_id
            if seq is None:
                seq = env.seq_id  # percent10 also has it at top level (§4.4)
        else:  # V1 orderBook: levels at top level as numbers (§9)
            bids = _levels_exact(_raw_levels_decoder.decode(env.bids)) if len(env.bids) else []
            asks = _levels_exact(_raw_levels_decoder.decode(env.asks)) if len(env.asks) else []
            seq = env.seq_id if env.seq_id is not None else (env.seqId or None)
        out: list[Event] = []
        if not self._accept_seq(st, seq, recv_ns, out):
            return out
        # Every push is taken as the full book of its gear (§4.3: pushed every 500 ms even when
        # unchanged, sides may be empty, no delete rule): a snapshot that resets the book.
        book = st.book
        assert book is not None
        exch_ns = _epoch_s_to_ns(env.id) or env.ts * 1_000_000
        prev = st.last_seq
        s = seq if seq is not None else 0
        book.apply_snapshot(bids, asks, s)
        book.exch_ns = exch_ns
        st.last_seq = s
        st.synced = True
        out.append(self.book_event(st, bids, asks, True, s, prev, exch_ns, recv_ns))
        if st.gap_reported:
            out.append(self.resynced(st, recv_ns))
        return out

    def _after(self, st: StreamState, seq: int | None, recv_ns: int, out: list[Event]) -> None:
        if seq is not None:
            st.last_seq = seq
        st.synced = True
        if st.gap_reported:
            out.append(self.resynced(st, recv_ns))

    def _fills(self, st: StreamState, env: _Envelope, recv_ns: int) -> list[Event]:
        sub = st.sub
        return [Trade(venue="bge", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                      exch_ns=t.ts * 1_000_000, recv_ns=recv_ns, price=t.price, size=t.vol,
                      side=t.direction.lower(), trade_id=str(t.id))
                for t in _fills_decoder.decode(env.data)]

    def _ticker(self, st: StreamState, env: _Envelope, recv_ns: int, reply: bool) -> list[Event]:
        data = _dicts_decoder.decode(env.data)
        items = data if isinstance(data, list) else [data]
        sub = st.sub
        out: list[Event] = []
        for t in items:
            seq = t.get("seq_id")
            seq = seq if isinstance(seq, int) else None
            if not reply and not self._accept_seq(st, seq, recv_ns, out):
                continue
            g = t.get
            out.append(Ticker(venue="bge", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                              exch_ns=_epoch_s_to_ns(g("id")) or _epoch_s_to_ns(env.id) or env.ts * 1_000_000,
                              recv_ns=recv_ns, last=g("close"), open_24h=g("open"), high_24h=g("high"),
                              low_24h=g("low"), volume_24h=g("vol"), turnover_24h=g("filled_size"), raw=t))
            if not reply:
                self._after(st, seq, recv_ns, out)
        return out

    def _candles(self, st: StreamState, env: _Envelope, recv_ns: int, reply: bool) -> list[Event]:
        data = _candle_decoder.decode(env.data)
        items = data if isinstance(data, list) else [data]
        sub = st.sub
        native = sub.channel.partition(".")[2] or str(env.interval or "")
        interval = INTERVAL_NAMES.get(native, native)
        dur_ns = _INTERVAL_S.get(native, 0) * 1_000_000_000
        exch_ns = env.ts * 1_000_000  # pushes carry no time (§2.5); req replies carry ts (ms)
        out: list[Event] = []
        for k in items:
            if not reply and not self._accept_seq(st, k.seq_id, recv_ns, out):
                continue
            start_ns = k.id * 1_000_000_000
            # BGE marks no candle as final. A pushed candle is the live one; a history reply's
            # candle is closed when its interval ended before the reply's timestamp.
            closed = bool(reply and dur_ns and exch_ns and start_ns + dur_ns <= exch_ns)
            out.append(Candle(venue="bge", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                              exch_ns=exch_ns, recv_ns=recv_ns, interval=interval, start_ns=start_ns,
                              open=k.open, high=k.high, low=k.low, close=k.close, volume=k.vol,
                              turnover=k.filled_size or None, closed=closed))
            if not reply:
                self._after(st, k.seq_id, recv_ns, out)
        return out

    def _assets(self, st: StreamState, env: _Envelope, recv_ns: int) -> list[Event]:
        data = _assets_decoder.decode(env.data)
        items = data if isinstance(data, list) else [data]
        sub = st.sub
        exch_ns = env.ts * 1_000_000
        return [Balance(venue="bge", market=sub.market, symbol=env.product or sub.symbol, stream=sub.spec,
                        exch_ns=exch_ns, recv_ns=recv_ns, currency=a.currency, available=a.available,
                        frozen=a.hold, total=_total(a.available, a.hold))
                for a in items]

    def _orders(self, st: StreamState, env: _Envelope, recv_ns: int) -> list[Event]:
        data = _dicts_decoder.decode(env.data)
        items = data if isinstance(data, list) else [data]
        sub = st.sub
        exch_ns = env.ts * 1_000_000
        out: list[Event] = []
        for o in items:
            g = o.get
            status = str(g("status", ""))
            # §5.4 (Chinese table authoritative): filled_amount = filled base quantity,
            # filled_size = filled quote value; `funds` = quote amount. The field table
            # misspells order_id as orders_id.
            out.append(Order(venue="bge", market=sub.market, symbol=g("product") or env.product or sub.symbol,
                             stream=sub.spec, exch_ns=exch_ns, recv_ns=recv_ns,
                             order_id=str(g("order_id") or g("orders_id") or ""),
                             client_order_id=str(g("client_oid") or ""), side=str(g("side") or ""),
                             order_type=str(g("type") or ""), status=ORDER_STATUS.get(status, status),
                             price=g("price"), size=g("size"), filled_size=g("filled_amount"), raw=o))
        return out
