"""The OKX v5 WebSocket gateway, as both OKX (``venues/okx``) and OKX DEX (``venues/okxdex``) speak it.

Written once here: the ``{"op", "args"}`` requests and their ``id``, the login and its signature,
text ping/pong, the ``{event, code, msg, id}`` replies (acks, errors, notices, channel connection
counts), ``arg`` identities, close codes, and the 30-second rule. Each venue package adds its
endpoints, channels, wire shapes and events. Reference: shared/protocols/okx.md §1, §5.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import msgspec

from tickwire.model import ConnCount, Event, Notice
from tickwire.subscription import Subscription
from tickwire.venues.base import (
    MAX_INFLATED_BYTES, UNDECODABLE, FailOver, Limits, Session, SessionOptions, StreamState, Timers, Venue, VenueOptions,
    bad_field, inflate_bounded, undecodable,
)
from tickwire.venues.ledger import FINAL, REPORT, TRANSIENT

BARS = ("1s", "1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H", "6H", "12H", "1D", "2D", "3D", "5D", "1W",
        "1M", "3M", "6Hutc", "12Hutc", "1Dutc", "2Dutc", "3Dutc", "5Dutc", "1Wutc", "1Mutc", "3Mutc")

MAX_ARGS_PER_REQUEST = 100                # our chunking; every request stays far below 64 KB
# 480 subscribe/unsubscribe/login requests per hour per connection (okx.md §1.3); we keep a margin.
REQUESTS_PER_HOUR = 450

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
TOO_FREQUENT = "60014"                    # retried later, with the stream's backoff
LOGIN_CODES = {"60004", "60005", "60006", "60007", "60009", "60024", "60026", "60031", "60032", "63999"}


def sign(secret: str, timestamp: str) -> str:
    """OKX login signature: Base64(HMAC-SHA256(secret, ts + "GET" + "/users/self/verify"))."""
    mac = hmac.new(secret.encode(), f"{timestamp}GET/users/self/verify".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def ms(ts: Any) -> int:
    """A millisecond timestamp (string or number) in ns; 0 when it is not one."""
    try:
        return int(ts) * 1_000_000
    except (TypeError, ValueError):
        return 0


# --------------------------------------------------------------------------- wire types

class Arg(msgspec.Struct, gc=False):
    channel: str = ""
    instId: str = ""
    instType: str = ""
    ccy: str = ""
    chainIndex: str = ""
    tokenContractAddress: str = ""
    walletAddress: str = ""


class Msg(msgspec.Struct, gc=False):
    """Every frame but pong: a push (``arg`` + ``data``) or a reply (``event``)."""

    arg: Arg | None = None
    action: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    event: str = ""
    code: str | int = ""
    msg: str = ""
    id: str = ""
    connId: str = ""
    channel: str = ""
    connCount: str | int = ""


decode_msg = msgspec.json.Decoder(Msg).decode
decode_arg = msgspec.json.Decoder(Arg).decode

# The ``arg`` a push starts with, found in a frame that does not decode (error path only).
_ARG_HEAD = re.compile(rb'\{"arg":(\{[^{}]{0,400}\})')
encode = msgspec.json.encode

PING = b"ping"
PONG = b"pong"


def arg_key(arg: dict[str, str] | Arg) -> str:
    """A stream's identity on the wire: channel plus its instrument/type/currency keys."""
    if type(arg) is Arg and arg.instId and not arg.instType and not arg.ccy:
        return f"{arg.channel}:{arg.instId}"  # the common case, on the hot path
    g = arg.get if isinstance(arg, dict) else (lambda k, d="": getattr(arg, k, d))
    parts = [g("channel", "")]
    for k in ("instId", "instType", "ccy", "chainIndex", "tokenContractAddress", "walletAddress"):
        v = g(k, "")
        if v:
            parts.append(v)
    return ":".join(parts)


def inflate(payload: bytes | memoryview, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """A binary frame: the older OKEx format, raw DEFLATE without a zlib header (seed 002);
    never more than ``limit`` bytes."""
    return inflate_bounded(bytes(payload), -zlib.MAX_WBITS, limit)


def conn_count(v: str | int) -> int | None:
    """``connCount``: documented a string of digits ("2"), read as a number too; absent is 0.
    None when it is no count (a fraction, a sign, words, more digits than any count has)."""
    if type(v) is int:
        return v if v >= 0 else None
    if v == "":
        return 0
    return int(v) if len(v) <= 18 and v.isascii() and v.isdigit() else None


def same_channel(ours: str, theirs: str) -> bool:
    """channel-conn-count events may name the channel family ("prices" for "price" in the DEX
    docs; candles perhaps without the dex-token- prefix): match tolerantly."""
    def norm(c: str) -> str:
        c = c.removeprefix("dex-token-")
        return c[:-1] if c.endswith("s") else c
    return ours == theirs or norm(ours) == norm(theirs) or (theirs.startswith("candle") and norm(ours).startswith(theirs))


# --------------------------------------------------------------------------- venue

@dataclass
class GatewayOptions(VenueOptions):
    """Venue options of both OKX gateways."""

    port: int | None = None   # 8443: OKX's old port (443, the default, otherwise)
    path: str | None = None   # "v5": the DEX gateway's older /ws/v5/dex


class GatewayVenue(Venue):
    """What both OKX venues share: URLs (``/ws/{version}/{endpoint}``), limits, timers, close codes."""

    venue_options = GatewayOptions
    limits = Limits(connect_rates=((3, 1.0),), max_requests=REQUESTS_PER_HOUR, requests_window_s=3600.0)
    ws_version = "v5"

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        root = (base or self.networks.get(network) or self.networks["mainnet"]).rstrip("/")
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

    def timers(self) -> Timers:
        # okx.md §1.2, §5.3: after each received frame arm a timer under 30 s; on expiry send text
        # "ping" and expect "pong" within N s, else reconnect. 20 s + 8 s stays inside 30 s.
        return Timers(ping_interval_s=20.0, ping_when_idle=True, pong_timeout_s=8.0, notice_lead_s=30.0,
                      stream_silence_s=120.0)

    def close_is_fatal(self, code: int | None) -> str | None:
        return FATAL_CLOSE.get(code or 0)

    def close_means_split(self, code: int | None) -> bool:
        return code in SPLIT_CLOSE


# --------------------------------------------------------------------------- session

class GatewaySession(Session):
    """One gateway connection: login, text ping/pong, requests by ``id``, replies, notices.
    A venue's session adds :meth:`data` (the events of its channels)."""

    args_per_request = MAX_ARGS_PER_REQUEST

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        super().__init__(venue, endpoint, conn, options)
        self.conn_id = ""

    # -- what the ledger asks of the gateway ------------------------------------------------------
    def request_frame(self, op: str, subs: Sequence[Subscription], req_id: str) -> bytes:
        return encode({"id": req_id, "op": op, "args": [s.params for s in subs]})

    def refusal(self, code: Any, msg: str) -> str:
        code = str(code)
        if code == TOO_FREQUENT:
            return TRANSIENT
        return FINAL if code in FATAL_SUB_CODES else REPORT

    def ping_payload(self) -> bytes:
        return PING

    # -- login --------------------------------------------------------------------------------
    def needs_login(self) -> bool:
        return self.endpoint == "private" or any(st.sub.needs_auth for st in self.streams.values())

    def login(self, now_ns: int) -> None:
        cred = self.options.credentials
        name = self.venue.name
        if cred is None:
            needing = sorted(st.sub.spec for st in self.streams.values() if st.sub.needs_auth) or [self.endpoint]
            err = self.error("credentials", f"{name}: login needed for {', '.join(needing)} but no credentials: "
                             f"set TICKWIRE_{name.upper()}_API_KEY, TICKWIRE_{name.upper()}_SECRET and "
                             f"TICKWIRE_{name.upper()}_PASSPHRASE (or pass credentials=...)", request="login",
                             fatal=True, recv_ns=now_ns)
            self.emit([err])
            self.fail(err)
            return
        ts = str(now_ns // 1_000_000_000)
        frame = encode({"op": "login", "args": [{"apiKey": cred.api_key, "passphrase": cred.passphrase,
                                                  "timestamp": ts, "sign": sign(cred.secret, ts)}]})
        self.login_sent_ns = now_ns or 1
        self.send(frame, "login")

    def _login_failed(self, code: str, msg: str, recv_ns: int) -> Event:
        err = self.error(code, f"{self.venue.name} login refused: {code} {msg}".strip(),
                         request="login (apiKey, passphrase and sign redacted)", recv_ns=recv_ns, fatal=True)
        self.fail(err)
        return err

    # -- frames -------------------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        if binary:
            try:
                payload = inflate(payload, self.max_inflated)
            except zlib.error as e:
                return [self.error("inflate", f"binary frame is not raw deflate: {e}", recv_ns=recv_ns)]
        return self.envelope(payload, recv_ns)

    def envelope(self, payload: bytes | memoryview, recv_ns: int) -> list[Event]:
        """Any frame: pong, a reply (``event``), or a push for a stream (``arg``)."""
        if payload == PONG:
            self.pong_received(recv_ns)
            return []
        try:
            m = decode_msg(payload)
        except UNDECODABLE as e:
            if bytes(payload) == PING:  # a server-side ping: answer like nautilus does
                self.send_control(PONG, "pong")
                return []
            return self._undecodable(payload, undecodable(e), recv_ns)
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
            return self.data(st, m, recv_ns)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError, IndexError) as e:
            out: list[Event] = [self.error("decode", f"bad {key} frame ({e})", recv_ns=recv_ns, sub=st.sub)]
            self.push_lost(st, recv_ns, str(e), out)
            return out

    def _undecodable(self, payload: bytes | memoryview, why: str, recv_ns: int) -> list[Event]:
        """A frame that does not decode: a VenueError, naming the stream when the frame's head
        names one of ours (a push starts with its ``arg``), whose book then breaks at once."""
        head = bytes(payload[:500])
        st = None
        found = _ARG_HEAD.match(head)
        if found is not None:
            try:
                st = self.streams.get(arg_key(decode_arg(found.group(1))))
            except msgspec.DecodeError:
                pass
        out: list[Event] = [self.error("decode", f"undecodable frame ({why}): {head[:200]!r}", recv_ns=recv_ns,
                                       sub=st.sub if st is not None else None)]
        if st is not None:
            self.push_lost(st, recv_ns, why, out)
        return out

    def data(self, st: StreamState, m: Msg, recv_ns: int) -> list[Event]:
        """The events of one push for a stream of this connection."""
        raise NotImplementedError

    def _adopt(self, arg: Arg) -> StreamState | None:
        """Decode mode: create stream state for a stream seen in a recorded file."""
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

    def _event(self, m: Msg, recv_ns: int) -> list[Event]:
        ev = m.event
        code = str(m.code)
        if m.connId:
            self.conn_id = m.connId
        if ev in ("subscribe", "unsubscribe"):  # one ack per arg, each with the request's id
            if m.id:
                self.ledger.accepted(m.id, arg_key(m.arg) if m.arg is not None else "")
            return []
        if ev == "login":
            if code in ("0", ""):
                self.logged_in = True
                self.ledger.open()
                return []
            return [self._login_failed(code, m.msg, recv_ns)]
        if ev == "error":
            if code in LOGIN_CODES and self.login_sent_ns and not self.logged_in:
                return [self._login_failed(code, m.msg, recv_ns)]
            # An error names its request by id only; for several args, not which one was bad
            # (the ledger then asks for each alone).
            return self.ledger.failed(self.ledger.match(m.id), code, m.msg, recv_ns)
        if ev == "notice":
            n = Notice(venue=self.venue.name, recv_ns=recv_ns, conn=self.conn, code=code, msg=m.msg)
            if code == "64008":
                self.outbox.append(FailOver(recv_ns))
            return [n]
        if ev == "channel-conn-count":
            count = conn_count(m.connCount)
            if count is None:
                return [self.error("decode", bad_field(f"channel-conn-count of channel {m.channel!r}", "connCount",
                                                       m.connCount, "a non-negative integer"), recv_ns=recv_ns)]
            return [ConnCount(venue=self.venue.name, recv_ns=recv_ns, conn=self.conn, channel=m.channel, count=count)]
        if ev == "channel-conn-count-error":
            # The venue ended our subscription to this channel on this connection: report it
            # once per stream, fatal for those streams only, no retry (okx.md §1.8).
            out: list[Event] = []
            for topic, st in list(self.streams.items()):
                if same_channel(st.sub.channel, m.channel):
                    out.append(self.ledger.drop(
                        topic, "channel-conn-count-error", f"{self.venue.name} ended {st.sub.spec}: {str(m.connCount)[:40]} "
                        f"connections already serve channel {m.channel!r} (limit 30 per key)",
                        recv_ns, request=f"subscribe {topic}"))
            return out or [self.error("channel-conn-count-error", f"channel {m.channel} over its connection "
                                      f"limit ({str(m.connCount)[:40]})", recv_ns=recv_ns)]
        return []
