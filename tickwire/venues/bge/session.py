"""One BG Exchange V2 connection: login (private), one request per stream, pongs, replies, seq_id."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from typing import Any, Sequence

import msgspec

from tickwire.credentials import redact
from tickwire.model import Event
from tickwire.subscription import SpecError, Subscription
from tickwire.venues.base import UNDECODABLE, Session, SessionOptions, StreamState, Venue, undecodable
from tickwire.venues.bge import PRIVATE, mappers
from tickwire.venues.bge.wire import (
    GZIP_B64, PING_PREFIX, Envelope, code_int, decode_any, decode_assets, decode_book, decode_candle, decode_dicts,
    decode_envelope, decode_fills, decode_lenient_book, decode_ping, decode_raw_levels, encode, inflate,
    levels_exact, request_terms, topic_of,
)
from tickwire.venues.ledger import FINAL, HARMLESS, SUBSCRIBE, TRANSIENT, UNSUBSCRIBE

WSERR = {200: "success", 400: "invalid request", 401: "not logged in", 500: "system error, retry later"}
# Failures worth retrying (with backoff); any other refusal of a subscribe is final for that stream
# (e.g. 400 for an unknown pair, 401 not logged in). 1049/1097/1098: too frequent/timeout/busy (§7.4).
TRANSIENT_CODES = {500, 1049, 1097, 1098}

_OPS = {"sub": SUBSCRIBE, "unsub": UNSUBSCRIBE}
_EVENTS = {SUBSCRIBE: "sub", UNSUBSCRIBE: "unsub"}
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError)


def sign(secret: str, timestamp: int | str) -> str:
    """``access_sign``: Base64(HMAC-SHA256(secret, str(timestamp))) (§5.2: method, path, query
    and body are empty for the WebSocket login, so the signed text is exactly the timestamp)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class BGESession(Session):
    """One BGE V2 connection. Requests carry one stream each and no id: a reply names its
    request by the stream it echoes (``type``/``product``, or the request quoted in ``msg``),
    else it answers the oldest one (the venue answers a connection's requests in order)."""

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        super().__init__(venue, endpoint, conn, options)
        self.client_pings = False  # the server pings; we answer (§3)
        self.private = endpoint == PRIVATE
        # zip=false by default: bge.md §6 recommends it, and how zipped frames are framed
        # (binary gzip? acks and pings too?) is undocumented. Both text and binary gzip
        # frames are decoded either way. SessionOptions.extra["zip"]=True asks for gzip.
        z = options.extra.get("zip", False)
        self.zip = z.strip().lower() in ("1", "true", "yes", "on") if isinstance(z, str) else bool(z)
        self.last_kind = ""                            # what the last frame was (ping/ack/login/data/...)
        self._login_pending = False
        self._login_request = "login"                  # redacted text of our login request
        self._scrub_words: list[str] = []              # key and signature: never echoed in events
        self._unknown_seen: set[tuple] = set()

    def __repr__(self) -> str:
        return (f"BGESession(conn={self.conn!r}, endpoint={self.endpoint!r}, streams={len(self.streams)}, "
                f"logged_in={self.logged_in}, zip={self.zip})")

    # -- what the ledger asks of BGE ----------------------------------------------------------
    def request_frame(self, op: str, subs: Sequence[Subscription], req_id: str) -> bytes:
        # One stream per request: a V2 request names one `product` (§2.1); the engine paces
        # them under 50 msgs/s (300 streams: 7.5 s at 40/s, inside the 30 s window of §3).
        (sub,) = subs
        biz, typ, interval = request_terms(sub.channel)
        req: dict[str, Any] = {"event": _EVENTS[op], "biz": biz, "type": typ, "product": sub.symbol}
        if interval:
            req["interval"] = interval
        req["zip"] = self.zip
        return encode(req)

    def refusal(self, code: Any, msg: str) -> str:
        if "already" in msg.lower():
            return HARMLESS  # the first subscription keeps delivering
        return TRANSIENT if code_int(code) in TRANSIENT_CODES else FINAL

    def pushes_regularly(self, sub: Subscription) -> bool:
        # Full books are pushed every 500 ms (bge.md), changed or not.
        return sub.kind == "book"

    # -- login ----------------------------------------------------------------------------
    def needs_login(self) -> bool:
        return self.private

    def login(self, now_ns: int) -> None:
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
        frame = encode({"event": "login", "params": {"type": "api", "access_key": key,
                                                     "access_sign": signature, "access_timestamp": ts}})
        self._login_request = encode({"event": "login", "params": {
            "type": "api", "access_key": redact(key), "access_sign": "***", "access_timestamp": ts}}).decode()
        self._scrub_words = [w for w in (secret, signature, key) if w]
        self._login_pending = True
        self.login_sent_ns = now_ns or 1
        self.send(frame, "login")

    # -- frames -----------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        if binary or payload[:4] == GZIP_B64:
            try:
                payload = inflate(payload if binary else base64.b64decode(bytes(payload)), self.max_inflated)
            except (zlib.error, binascii.Error, ValueError) as e:
                self.last_kind = "error"
                return [self.error("decode", f"undecodable compressed frame ({e}): {bytes(payload[:60])!r}",
                                   recv_ns=recv_ns)]
        if payload[:8] == PING_PREFIX:
            try:
                ping = decode_ping(payload).ping
            except UNDECODABLE:
                pass  # the generic path says why
            else:
                self._pong(ping)
                return []
        try:
            env = decode_envelope(payload)
        except UNDECODABLE as e:
            self.last_kind = "error"
            return [self.error("decode", self._scrub(f"undecodable frame ({undecodable(e)}): {bytes(payload[:200])!r}"),
                               recv_ns=recv_ns)]
        if len(env.ping):
            self._pong(env.ping)
            return []
        if len(env.pong):  # not documented from the server; harmless
            self.last_kind = "pong"
            return []
        if env.event or env.channel:
            return self._control(env, recv_ns)
        if env.type and (len(env.data) or len(env.bids) or len(env.asks)):
            code = code_int(env.code)
            if code is None or code == 200:  # (V1 ticker pushes carry "code":200)
                self.last_kind = "data"
                return self._push(env, env.type, recv_ns)
        if env.code is not None:
            return self._control(env, recv_ns)
        return self._unknown(env, bytes(payload[:200]).decode("utf-8", "replace"), recv_ns)

    def _pong(self, ping: msgspec.Raw) -> None:
        # §3: answer at once with the very value received; CONTROL goes ahead of any backlog.
        self.last_kind = "ping"
        self.send_control(b'{"pong":' + bytes(ping) + b"}", "pong")

    def _unknown(self, env: Envelope, what: str, recv_ns: int) -> list[Event]:
        # Nothing is swallowed, but a new frame kind is reported once per shape, not per frame.
        self.last_kind = "unknown"
        shape = (env.event, env.type, env.biz)
        if shape in self._unknown_seen:
            return []
        self._unknown_seen.add(shape)
        return [self.error("unrecognized", f"unrecognized frame: {self._scrub(what)}", recv_ns=recv_ns)]

    # -- acks, errors, replies --------------------------------------------------------
    def _control(self, env: Envelope, recv_ns: int) -> list[Event]:
        event = env.event or {"subscribe": "sub", "unsubscribe": "unsub"}.get(env.channel, env.channel)
        code = code_int(env.code)
        failed = (code is not None and code != 200) or env.status.upper() in ("FAIL", "FAILED", "ERROR")
        if event == "login" or (failed and event in ("error", "") and not env.type and self._login_pending):
            return self._login_reply(env, code, failed, recv_ns)
        topic = topic_of(env.type, env.interval, env.product or env.pairCode) if env.type else ""
        if failed:
            return self._failure(event, env, code, topic, recv_ns)
        if event == "req":
            self.last_kind = "data"
            return self._push(env, env.type, recv_ns, reply=True) if env.type and len(env.data) else []
        self.last_kind = "ack"
        if topic and event in _OPS:
            self.ledger.match(topics=(topic,), op=_OPS[event])
        return []

    def _login_reply(self, env: Envelope, code: int | None, failed: bool, recv_ns: int) -> list[Event]:
        self._login_pending = False
        self.last_kind = "login"
        if not failed:
            self.logged_in = True
            self.ledger.open()
            return []
        self.last_kind = "error"
        msg = self._scrub(env.msg) or self._fail_text(env, code)
        # A refused login (400xx auth codes, 400, 401) will be refused again: stop for good
        # instead of a reconnect loop. A system error (500) may pass on a later attempt.
        fatal = code not in TRANSIENT_CODES
        err = self.error(env.code, msg, request=self._login_request, recv_ns=recv_ns, fatal=fatal)
        if fatal:
            self.fail(err)
        else:
            self.close(f"login failed: {err.code} {msg}; reconnecting")
        return [err]

    def _failure(self, event: str, env: Envelope, code: int | None, topic: str, recv_ns: int) -> list[Event]:
        """A refusal names its request by the stream it echoes: in the frame (``type``/``product``),
        else in ``msg`` ("Invalid request: {...}", §7.1); else it answers the oldest request of its
        kind (a draft-style ``error`` event: of any kind)."""
        self.last_kind = "error"
        op = _OPS.get(event)
        topic = topic or self._topic_in_msg(env.msg)
        req = None
        if op is not None or event in ("error", ""):
            req = self.ledger.match(topics=(topic,), op=op) if topic else self.ledger.oldest(op)
            if req is None and topic:
                req = self._match_without_interval(topic, op)
        msg = self._scrub(env.msg) or self._fail_text(env, code)
        return self.ledger.failed(req, env.code, msg, recv_ns, stream=f"bge:{topic}" if topic else "")

    def _match_without_interval(self, topic: str, op: str | None) -> Any:
        """A refusal that echoes ``type`` and ``product`` but not the ``interval`` of an
        orderbook/candles request (the docs' FAIL ack carries none): the oldest pending request
        of that type and product, any interval (the venue answers in order). Without this the
        refusal matched nothing: the stream stayed pending, never retried (found by the chaos run)."""
        typ, _, product = topic.partition(":")
        if "." in typ or typ not in ("orderbook", "candles"):
            return None
        for r in self.ledger.requests.values():
            if (op is None or r.op == op) and any(
                    t.partition(":")[2] == product and t.partition(":")[0].partition(".")[0] == typ for t in r.topics):
                return self.ledger.match(req_id=r.id)
        return None

    @staticmethod
    def _topic_in_msg(msg: str) -> str:
        i = msg.find("{")
        if i < 0:
            return ""
        try:
            obj = decode_any(msg[i:].encode())
        except UNDECODABLE:
            return ""
        if not isinstance(obj, dict):
            return ""
        for inner in (obj, obj.get("para"), obj.get("params")):
            if isinstance(inner, dict) and inner.get("type"):
                product = inner.get("product") or inner.get("pairCode") or ""
                if product:
                    return topic_of(str(inner["type"]), inner.get("interval"), str(product))
        return ""

    @staticmethod
    def _fail_text(env: Envelope, code: int | None) -> str:
        meaning = WSERR.get(code, "") if code is not None else ""
        return f"{env.status or 'FAIL'} ({env.code}{': ' + meaning if meaning else ''})"

    def _scrub(self, text: str) -> str:
        for w in self._scrub_words:
            if w in text:
                text = text.replace(w, "***")
        return text

    # -- data -------------------------------------------------------------------------
    def _push(self, env: Envelope, typ: str, recv_ns: int, reply: bool = False) -> list[Event]:
        product = env.product or env.pairCode
        topic = topic_of(typ, env.interval, product)
        st = self.streams.get(topic)
        if st is None and typ == "orders":
            st = self.streams.get("orders:all")  # subscribed with `all`, pushed with its pair
        if st is None:
            if not self.accept_any:
                return []  # late data of a stream we left
            st = self._adopt(product, topic)
            if st is None:
                return self._unknown(env, f"{typ} push for {product!r}", recv_ns)
        st.last_rx_ns = recv_ns
        if self.ledger.requests and not reply:
            # Data proves the subscription, even if its ack went missing: the request must not
            # stay pending, or a later error could be matched to it.
            self.ledger.serving(topic)
        sub = st.sub
        try:
            if typ in ("orderbook", "orderBook", "percent10"):
                return self._book(st, env, recv_ns)
            if typ == "fills":
                return mappers.fills(sub, decode_fills(env.data), recv_ns)
            if typ == "ticker":
                return self._ticker(st, env, recv_ns, reply)
            if typ == "candles":
                return self._candles(st, env, recv_ns, reply)
            if typ == "assets":
                return mappers.assets(sub, decode_assets(env.data), env.product, env.ts, recv_ns)
            if typ == "orders":
                return mappers.orders(sub, decode_dicts(env.data), env.product, env.ts, recv_ns)
        except _DECODE_ERRORS as e:
            return [self.error("decode", f"bad {typ} frame for {product} ({e})", recv_ns=recv_ns, sub=sub)]
        return []

    def _adopt(self, product: str, topic: str) -> StreamState | None:
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
                           resync (unsub + sub), and the first push after it starts afresh.
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

    def _book(self, st: StreamState, env: Envelope, recv_ns: int) -> list[Event]:
        if len(env.data):
            try:
                d = decode_book(env.data)
                bids, asks, seq = d.bids or [], d.asks or [], d.seq_id
            except msgspec.ValidationError:  # numeric levels: keep their exact digits
                ld = decode_lenient_book(env.data)
                bids, asks, seq = levels_exact(ld.bids), levels_exact(ld.asks), ld.seq_id
            if seq is None:
                seq = env.seq_id  # percent10 also has it at top level (§4.4)
        else:  # V1 orderBook: levels at top level as numbers (§9)
            bids = levels_exact(decode_raw_levels(env.bids)) if len(env.bids) else []
            asks = levels_exact(decode_raw_levels(env.asks)) if len(env.asks) else []
            seq = env.seq_id if env.seq_id is not None else (env.seqId or None)
        out: list[Event] = []
        if not self._accept_seq(st, seq, recv_ns, out):
            return out
        # Every push is taken as the full book of its gear (§4.3: pushed every 500 ms even when
        # unchanged, sides may be empty, no delete rule): a snapshot that resets the book.
        book = st.book
        assert book is not None
        exch_ns = mappers.epoch_s_to_ns(env.id) or env.ts * 1_000_000
        prev = st.last_seq if st.synced else 0  # a stream starts afresh after a resync
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

    def _ticker(self, st: StreamState, env: Envelope, recv_ns: int, reply: bool) -> list[Event]:
        data = decode_dicts(env.data)
        out: list[Event] = []
        for t in data if isinstance(data, list) else [data]:
            seq = t.get("seq_id")
            seq = seq if isinstance(seq, int) else None
            if not reply and not self._accept_seq(st, seq, recv_ns, out):
                continue
            out.append(mappers.ticker(st.sub, t, env.id, env.ts, recv_ns))
            if not reply:
                self._after(st, seq, recv_ns, out)
        return out

    def _candles(self, st: StreamState, env: Envelope, recv_ns: int, reply: bool) -> list[Event]:
        data = decode_candle(env.data)
        interval = st.sub.channel.partition(".")[2] or str(env.interval or "")
        out: list[Event] = []
        for k in data if isinstance(data, list) else [data]:
            if not reply and not self._accept_seq(st, k.seq_id, recv_ns, out):
                continue
            out.append(mappers.candle(st.sub, k, interval, env.ts, reply, recv_ns))
            if not reply:
                self._after(st, k.seq_id, recv_ns, out)
        return out
