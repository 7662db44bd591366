"""The OKX WebSocket gateway, shared by the OKX exchange (:mod:`tickwire.sim.okx`) and the OKX DEX
market gateway (:mod:`tickwire.sim.okxdex`).

Written from ``protocols/okx.md`` only (no client code read or shared). :class:`OkxGatewaySim` is
the machinery both gateways share: ``connId``, text ``ping``/``pong``, the HMAC login, one ack per
arg, the 480 requests/hour budget, the 64 KB args limit, the 30 s rule (close ``4004 No data
received in 30s.``), per-channel connection counting (``channel-conn-count`` /
``channel-conn-count-error``), ``notice`` 64008 and the gateway faults. A gateway subclass
implements :meth:`OkxGatewaySim.resolve` (one subscription arg -> a :class:`Sub`) with its
channels, built on :class:`OkxStream`.

Also here: the candle bars of the OKX family (:data:`CANDLE_BARS`, :func:`bar_bounds`) and the
replay dialect of the envelope (:class:`OkxReplayDialect`).

Error texts the notes do not give are marked "invented" below.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import hashlib
import hmac
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Mapping, Sequence

import msgspec
from picows import WSCloseCode, WSMsgType

from .framework import (
    GENERIC_FAULTS,
    Cadence,
    Fault,
    FaultSpec,
    ReplayClient,
    ReplayDialect,
    SimConnection,
    SimOptions,
    SlidingWindowCounter,
    Stream,
    VenueSim,
    arg_key,
    fixed_period_bounds,
    json_object,
)

__all__ = [
    "bar_bounds",
    "CANDLE_BARS",
    "ERR_MSG",
    "GATEWAY_FAULTS",
    "okx_sign",
    "OkxConnection",
    "OkxGatewayOptions",
    "OkxGatewaySim",
    "OkxReplayDialect",
    "OkxStream",
    "Sub",
    "SubError",
    "uid_for",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
_RawMap = dict[str, msgspec.Raw]

NOTICE_MSG = "The connection will soon be closed for a service upgrade. Please reconnect."
IDLE_REASON = "No data received in 30s."

ERR_MSG: dict[str, str] = {
    "60004": "Invalid timestamp",
    "60005": "Invalid apiKey",
    "60006": "Timestamp request expired",
    "60007": "Invalid sign",
    "60009": "Login failed.",
    "60011": "Please log in",
    "60013": "Invalid args",
    "60014": "Requests too frequent.",
    "60024": "Wrong passphrase",
    # the notes give the meaning of these, not the text: invented wording
    "60027": "Parameter {} can not be empty.",
    "60031": "The WebSocket endpoint does not allow multiple or repeated logins.",
    "64000": "Invalid request: uly is no longer supported, please use instFamily instead.",
    "64001": "This channel has been migrated to the '/business' URL. Please subscribe using the new URL.",
    "64002": "This channel is not supported by \"/business\" URL. Please use \"/private\" URL (for order "
             "channels) or \"/public\" URL (for other channels).",
    "64003": "Your trading fee tier doesn't meet the requirement to access this channel",
    "64004": "You can't subscribe to books-l2-tbt and books/books50-l2-tbt of the same instId at the same time.",
}

GATEWAY_FAULTS: dict[str, FaultSpec] = dict(GENERIC_FAULTS)
GATEWAY_FAULTS.update(
    {
        s.name: s
        for s in (
            FaultSpec("close-4004", "none", "close every connection now with 4004 'No data received in 30s.'", needs_subscribers=True),
            FaultSpec("close-4009", "none", "close every connection carrying more than one subscription with "
                                            "4009 (channels on this connection over the limit)", needs_subscribers=True),
            FaultSpec("notice", "none", "send notice 64008 on every connection now, close each after "
                                        "notice_lead_s", needs_subscribers=True),
            FaultSpec("sub-fail", "count", "answer the next N subscribe args with error 60014 'Requests too "
                                           "frequent.' (default 1)", 1),
        )
    }
)


def okx_sign(secret: str, timestamp: str) -> str:
    """The login signature: Base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify"))."""
    mac = hmac.new(secret.encode(), f"{timestamp}GET/users/self/verify".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def uid_for(api_key: str) -> str:
    """A stable 15-digit account uid for an API key."""
    h = int(hashlib.sha256(api_key.encode()).hexdigest()[:15], 16)
    return str(10**14 + h % (9 * 10**14))


def _default_api_keys() -> dict[str, list[str]]:
    return {"sim-key": ["sim-secret", "sim-passphrase"]}


@dataclass
class OkxGatewayOptions(SimOptions):
    """Options shared by the OKX exchange and OKX DEX simulators (defaults = the venue's rules)."""

    conn_limit: int = 3
    """New connections per second and IP (HTTP 429 at the handshake beyond)."""
    conn_window_s: float = 1.0
    idle_close_s: float = 30.0
    """The 30 s rule: close 4004 when nothing was subscribed this long after connecting, or
    nothing was sent to the client (data, ack, pong) for this long."""
    request_limit: int = 480
    """subscribe + unsubscribe + login requests per connection and ``request_window_s``."""
    request_window_s: float = 3600.0
    max_args_bytes: int = 65536
    """A request whose ``args`` JSON is longer than this is answered with close 1009."""
    answer_control_pings: bool = True
    """Answer RFC 6455 pings with pongs (the text ``ping`` is always answered)."""
    api_keys: dict[str, list[str]] = field(default_factory=_default_api_keys)
    """API key -> ``[secret, passphrase]`` accepted by ``op:login``."""
    login_expiry_s: float = 30.0
    login_fail_close: bool = False
    """After a failed login also close with 4001 (the notes: "the server may close with 4001")."""
    max_login_args: int = 100
    """More API keys than this in one login closes the connection with 4003."""
    counted_channels: list[str] = field(default_factory=list)
    """Channels (families) under the connections-per-channel rule."""
    max_conn_per_channel: int = 30
    conn_count_every_sub: bool = False
    """Also send ``channel-conn-count`` for a further arg of a channel this connection is already
    counted on (default: only when a connection newly subscribes the channel, as seed 000 says)."""
    conn_count_labels: dict[str, str] = field(default_factory=dict)
    """``channel`` value to put in conn-count events per family (default: the subscribed name)."""
    notice_every_s: float = 0.0
    """Send notice 64008 on every connection this often (0 = never), then close after the lead."""
    notice_lead_s: float = 60.0
    notice_close_code: int = 1001
    """Close code used after a notice (0 = drop the TCP connection without a close frame)."""
    key_conn_limit: int = 0
    """New logged-in connections per API key and ``key_conn_window_s`` (0 = no limit)."""
    key_conn_window_s: float = 1.0


class OkxConnection(SimConnection):
    """One client connection of an OKX-family gateway."""

    def __init__(self, sim: VenueSim, cid: int, path: str, query: dict[str, str], ip: str, group: str):
        super().__init__(sim, cid, path, query, ip, group)
        self.conn_id = ""
        self.api_key: str | None = None
        self.uid = ""
        self.req_times: deque[float] = deque()
        self.ever_subscribed = False
        self.counted: dict[str, set[str]] = {}  # family -> subscription keys on this connection
        self.key_family: dict[str, str] = {}
        self.notice_handle: asyncio.TimerHandle | None = None
        self.closing = False
        self.count_owner: dict[str, str] = {}  # family -> the API key (or IP) it was counted under

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type is WSMsgType.PING and not self.sim.opts.answer_control_pings:  # type: ignore[attr-defined]
            return
        super().on_ws_frame(transport, frame)

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update(conn_id=self.conn_id, logged_in=self.api_key is not None, uid=self.uid,
                 ever_subscribed=self.ever_subscribed)
        return d


@dataclass
class Sub:
    """A resolved subscription arg: a unique key (the stream topic) and how to get its stream."""

    key: str
    make: Callable[[], Stream]
    channel: str
    family: str | None = None


class SubError(Exception):
    def __init__(self, code: str, msg: str | None = None):
        super().__init__(code)
        self.code = code
        self.msg = ERR_MSG.get(code, "") if msg is None else msg


_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
_TS_RE = re.compile(r"^\d+(\.\d+)?$")


class OkxReplayDialect(ReplayDialect):
    """``tickwire replay``: text ``pong``, the login answer and one ack per arg (OKX v5 and the DEX
    gateway share the envelope)."""

    def on_request(self, conn: ReplayClient, payload: bytes) -> list[str] | None:
        if payload == b"ping":
            conn.send(b"pong")
            return None
        msg = json_object(payload)
        if msg is None:
            return None
        op, req_id = msg.get("op"), msg.get("id")
        base: dict[str, Any] = {} if req_id is None else {"id": req_id}
        if op == "login":
            conn.send_obj({**base, "event": "login", "code": "0", "msg": "", "connId": conn.conn_id})
            return None
        if op in ("subscribe", "unsubscribe"):
            keys = []
            for arg in msg.get("args") or []:
                if isinstance(arg, dict):
                    conn.send_obj({**base, "event": op, "arg": arg, "connId": conn.conn_id})
                    keys.append(arg_key(arg))
            return keys if op == "subscribe" else None
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        if binary:
            return False
        if payload == b"pong":
            return True
        if payload[:7] == b'{"arg":' or b'"event"' not in payload:
            return False
        msg = json_object(payload)
        if msg is None:
            return False
        ev = msg.get("event")
        if ev in ("subscribe", "unsubscribe"):
            return True
        return ev == "login" and str(msg.get("code", "0")) in ("0", "")


# ---------------------------------------------------------------------------------------------
# The gateway
# ---------------------------------------------------------------------------------------------


class OkxGatewaySim(VenueSim):
    """Base of the OKX exchange and OKX DEX simulators (not registered itself)."""

    Options: ClassVar[type[SimOptions]] = OkxGatewayOptions
    FAULTS: ClassVar[dict[str, FaultSpec]] = GATEWAY_FAULTS
    connection_class = OkxConnection
    replay_dialect = OkxReplayDialect
    opts: OkxGatewayOptions
    LOGIN_REQUIRED: ClassVar[bool] = False
    """Every subscribe/unsubscribe needs a login first (the DEX gateway)."""

    def __init__(self, *, seed: int = 0, options: Mapping[str, Any] | None = None, faults: Sequence[str] = ()):
        super().__init__(seed=seed, options=options, faults=faults)
        self._streams: dict[str, Stream] = {}
        self._conn_reg: dict[tuple[str, str], dict[OkxConnection, None]] = {}
        self._key_rate = (SlidingWindowCounter(self.opts.key_conn_limit, self.opts.key_conn_window_s)
                          if self.opts.key_conn_limit > 0 else None)
        self._cid_rng = random.Random(f"{seed}|{self.name}|connId")
        self._sub_fail = 0
        self._sub_fail_cause: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def on_start(self) -> None:
        if self.opts.notice_every_s > 0:
            self.every(self.opts.notice_every_s, self.send_notice_all)

    def on_open(self, conn: SimConnection) -> None:
        assert isinstance(conn, OkxConnection)
        conn.conn_id = f"{self._cid_rng.getrandbits(32):08x}"

    def on_close(self, conn: SimConnection) -> None:
        assert isinstance(conn, OkxConnection)
        if conn.notice_handle is not None:
            conn.notice_handle.cancel()
            conn.notice_handle = None
        for fam in list(conn.counted):
            self._uncount(conn, fam)

    # -- sending ------------------------------------------------------------------------------

    def send_bytes(self, conn: OkxConnection, data: bytes) -> bool:
        if conn.send(data):
            conn.last_tx = time.monotonic()
            self.stats.frames_sent += 1
            return True
        return False

    def send_obj(self, conn: OkxConnection, obj: dict[str, Any]) -> bool:
        return self.send_bytes(conn, _encode(obj))

    def send_error(self, conn: OkxConnection, code: str, msg: str, req_id: Any = None) -> None:
        d: dict[str, Any] = {}
        if req_id is not None:
            d["id"] = req_id
        d.update(event="error", code=code, msg=msg, connId=conn.conn_id)
        self.stats.errors_sent += 1
        self.send_obj(conn, d)

    def _log(self, conn: OkxConnection, op: str, nargs: int, ok: bool) -> None:
        self.stats.request_log.append((time.monotonic(), conn.id, conn.path, op, nargs, ok))

    # -- requests -----------------------------------------------------------------------------

    def on_text(self, conn: SimConnection, payload: bytes) -> None:
        assert isinstance(conn, OkxConnection)
        if payload == b"ping":
            self.stats.pings += 1
            conn.last_ping = time.monotonic()
            self.send_bytes(conn, b"pong")
            return
        text = payload.decode("utf-8", "replace")
        try:
            msg = _decode(payload, type=_RawMap)
            op = _decode(msg["op"]) if "op" in msg else None
            req_id = _decode(msg["id"]) if "id" in msg else None
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            self.send_error(conn, "60012", f"Invalid request: {text}")
            return
        conn.requests += 1
        if req_id is not None and not (isinstance(req_id, str) and _ID_RE.match(req_id)):
            self.send_error(conn, "60012", f"Invalid request: {text}")
            return
        if not isinstance(op, str) or "args" not in msg:
            self.send_error(conn, "60012", f"Invalid request: {text}", req_id)
            return
        if op not in ("login", "subscribe", "unsubscribe"):
            if not self.on_other_op(conn, op, msg, req_id):
                self._log(conn, op, 0, False)
                self.send_error(conn, "60019", f"Invalid op: {op}", req_id)
            return
        if not self._take_request(conn):
            self._log(conn, op, 0, False)
            self.truth.limit("request-limit", conn.id, f"{op}: more than {self.opts.request_limit} requests per "
                                                       f"{self.opts.request_window_s:g}s")
            self.send_error(conn, "60014", ERR_MSG["60014"], req_id)
            return
        raw_args = msg["args"]
        if len(raw_args) > self.opts.max_args_bytes:
            self._log(conn, op, 0, False)
            self.truth.limit("args-too-long", conn.id, f"{len(raw_args)} bytes of args: close 1009")
            conn.close(WSCloseCode.MESSAGE_TOO_BIG, b"")
            return
        if op == "login":
            self._login(conn, raw_args, req_id, text)
            return
        try:
            args = _decode(raw_args)
        except msgspec.DecodeError:  # pragma: no cover - the raw map decoded already
            args = None
        if not isinstance(args, list) or not args:
            self._log(conn, op, 0, False)
            self.send_error(conn, "60012", f"Invalid request: {text}", req_id)
            return
        self._subscribe(conn, op, args, req_id, text)

    def on_other_op(self, conn: OkxConnection, op: str, msg: dict[str, msgspec.Raw], req_id: Any) -> bool:
        """Hook for venue ops beyond login/subscribe/unsubscribe; return False for ``60019``."""
        return False

    def _take_request(self, conn: OkxConnection) -> bool:
        now = time.monotonic()
        q = conn.req_times
        edge = now - self.opts.request_window_s
        while q and q[0] <= edge:
            q.popleft()
        if len(q) >= self.opts.request_limit:
            return False
        q.append(now)
        return True

    # -- login --------------------------------------------------------------------------------

    def _login(self, conn: OkxConnection, raw_args: msgspec.Raw, req_id: Any, text: str) -> None:
        try:
            args = _decode(raw_args, type=list[_RawMap])
        except (msgspec.DecodeError, msgspec.ValidationError):
            args = None
        if not args:
            self._login_failed(conn, "60012", f"Invalid request: {text}", req_id, 0)
            return
        if len(args) > self.opts.max_login_args:
            self._log(conn, "login", len(args), False)
            conn.close(WSCloseCode(4003), b"")
            return
        keys: list[str] = []
        for a in args:
            err = self._check_login_arg(a)
            if isinstance(err, tuple):
                self._login_failed(conn, err[0], err[1], req_id, len(args))
                return
            keys.append(err)
        key = keys[0]
        if conn.api_key is None and self._key_rate is not None and not self._key_rate.allow(key):
            self.truth.limit("key-conn-rate", conn.id, f"more than {self.opts.key_conn_limit} logged-in connections "
                                                       f"per {self.opts.key_conn_window_s:g}s")
            self._login_failed(conn, "60014", ERR_MSG["60014"], req_id, len(args))
            return
        conn.api_key = key
        conn.uid = uid_for(key)
        self.stats.auth_ok += 1
        self._log(conn, "login", len(args), True)
        d: dict[str, Any] = {}
        if req_id is not None:
            d["id"] = req_id
        d.update(event="login", code="0", msg="", connId=conn.conn_id)
        self.send_obj(conn, d)

    def _check_login_arg(self, a: dict[str, msgspec.Raw]) -> str | tuple[str, str]:
        """The API key if this login arg is valid, else ``(code, msg)``."""
        vals: dict[str, Any] = {}
        for name in ("apiKey", "passphrase", "timestamp", "sign"):
            raw = a.get(name)
            if raw is None:
                return "60027", ERR_MSG["60027"].format(name)
            vals[name] = raw
        try:
            api_key = _decode(vals["apiKey"])
            passphrase = _decode(vals["passphrase"])
            sign = _decode(vals["sign"])
        except msgspec.DecodeError:  # pragma: no cover
            return "60009", ERR_MSG["60009"]
        # the prehash uses the timestamp exactly as sent: a string's text, a number's JSON text
        ts_raw = bytes(vals["timestamp"]).strip()
        if ts_raw.startswith(b'"'):
            ts_text = _decode(ts_raw)
        else:
            ts_text = ts_raw.decode("ascii", "replace")
        if not isinstance(ts_text, str) or not _TS_RE.match(ts_text):
            return "60004", ERR_MSG["60004"]
        if not isinstance(api_key, str) or not api_key:
            return "60027", ERR_MSG["60027"].format("apiKey")
        ts = float(ts_text)
        if abs(time.time() - ts) > self.opts.login_expiry_s:
            return "60006", ERR_MSG["60006"]
        cred = self.opts.api_keys.get(api_key)
        if cred is None:
            return "60005", ERR_MSG["60005"]
        secret, want_pass = cred[0], cred[1]
        if passphrase != want_pass:
            return "60024", ERR_MSG["60024"]
        if not isinstance(sign, str) or not hmac.compare_digest(okx_sign(secret, ts_text), sign):
            return "60007", ERR_MSG["60007"]
        return api_key

    def _login_failed(self, conn: OkxConnection, code: str, msg: str, req_id: Any, nargs: int) -> None:
        self.stats.auth_failed += 1
        self._log(conn, "login", nargs, False)
        self.send_error(conn, code, msg, req_id)
        if self.opts.login_fail_close:
            conn.close(WSCloseCode(4001), b"")

    # -- subscribe ----------------------------------------------------------------------------

    def resolve(self, conn: OkxConnection, op: str, arg: dict[str, Any]) -> Sub:
        """Venue hook: validate one arg on this connection; raise :class:`SubError`."""
        raise SubError("60018", f"Wrong URL or channel:{arg.get('channel')} doesn't exist")

    def stream(self, key: str, factory: Callable[[], Stream]) -> Stream:
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = factory()
        return s

    def _subscribe(self, conn: OkxConnection, op: str, args: list[Any], req_id: Any, text: str) -> None:
        sub = op == "subscribe"
        if sub:
            self.stats.subscribe_requests += 1
            conn.subscribe_requests += 1
        else:
            self.stats.unsubscribe_requests += 1
            conn.unsubscribe_requests += 1
        n = len(args)
        conn.max_args = max(conn.max_args, n)
        self.stats.max_args_per_request = max(self.stats.max_args_per_request, n)
        ok_all = True
        for arg in args:
            if not isinstance(arg, dict) or not isinstance(arg.get("channel"), str) or not arg["channel"]:
                ok_all = False
                self.send_error(conn, "60012", f"Invalid request: {text}", req_id)
                continue
            try:
                if self.LOGIN_REQUIRED and conn.api_key is None:
                    raise SubError("60011")
                target = self.resolve(conn, op, arg)
                if sub and self._sub_fail > 0:
                    self._sub_fail -= 1
                    self.truth.fault("sub-fail", stream=target.key, conns=(conn.id,), cause=self._sub_fail_cause,
                                     detail="subscribe answered with 60014")
                    raise SubError("60014")
            except SubError as e:
                ok_all = False
                self.send_error(conn, e.code, e.msg, req_id)
                continue
            if sub:
                self._attach(conn, arg, target, req_id)
            else:
                self._detach(conn, arg, target, req_id)
        self._log(conn, op, n, ok_all)

    def _ack(self, conn: OkxConnection, op: str, arg: dict[str, Any], req_id: Any) -> None:
        d: dict[str, Any] = {}
        if req_id is not None:
            d["id"] = req_id
        d.update(event=op, arg=arg, connId=conn.conn_id)
        self.send_obj(conn, d)

    @staticmethod
    def _owner(conn: OkxConnection) -> str:
        return conn.api_key if conn.api_key is not None else f"ip:{conn.ip}"

    def _attach(self, conn: OkxConnection, arg: dict[str, Any], target: Sub, req_id: Any) -> None:
        key = target.key
        if key in conn.topics:
            self._ack(conn, "subscribe", arg, req_id)  # acked again, no second stream
            return
        fam = target.family
        if fam is not None:
            label = self.opts.conn_count_labels.get(fam, target.channel)
            if fam in conn.counted:
                conn.counted[fam].add(key)
                conn.key_family[key] = fam
                if self.opts.conn_count_every_sub:
                    self._ack(conn, "subscribe", arg, req_id)
                    n = len(self._conn_reg.get((conn.count_owner[fam], fam), ()))
                    self.send_obj(conn, {"event": "channel-conn-count", "channel": label, "connCount": str(n),
                                         "connId": conn.conn_id})
                    target.make().subscribe(conn)
                    return
            else:
                owner = self._owner(conn)
                reg = self._conn_reg.setdefault((owner, fam), {})
                count = len(reg) + 1
                if count > self.opts.max_conn_per_channel:
                    # the normal ack, then the error: this connection's subscription is terminated
                    self.truth.limit("conn-per-channel", conn.id, f"{fam}: more than {self.opts.max_conn_per_channel} "
                                                                  f"connections")
                    self._ack(conn, "subscribe", arg, req_id)
                    self.send_obj(conn, {"event": "channel-conn-count-error", "channel": label,
                                         "connCount": str(self.opts.max_conn_per_channel),
                                         "connId": conn.conn_id})
                    return
                reg[conn] = None
                conn.count_owner[fam] = owner
                conn.counted[fam] = {key}
                conn.key_family[key] = fam
                self._ack(conn, "subscribe", arg, req_id)
                self.send_obj(conn, {"event": "channel-conn-count", "channel": label, "connCount": str(count),
                                     "connId": conn.conn_id})
                conn.ever_subscribed = True
                target.make().subscribe(conn)
                return
        self._ack(conn, "subscribe", arg, req_id)
        conn.ever_subscribed = True
        target.make().subscribe(conn)

    def _detach(self, conn: OkxConnection, arg: dict[str, Any], target: Sub, req_id: Any) -> None:
        key = target.key
        s = conn.topics.get(key)
        if s is not None:
            s.unsubscribe(conn)
        conn.topics.pop(key, None)
        fam = conn.key_family.pop(key, None)
        if fam is not None:
            keys = conn.counted.get(fam)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    self._uncount(conn, fam)
        self._ack(conn, "unsubscribe", arg, req_id)  # also for an arg that was not subscribed

    def _uncount(self, conn: OkxConnection, fam: str) -> None:
        for k in conn.counted.pop(fam, ()):
            conn.key_family.pop(k, None)
        owner = conn.count_owner.pop(fam, None)
        reg = self._conn_reg.get((owner, fam)) if owner is not None else None
        if reg is not None:
            reg.pop(conn, None)
            if not reg:
                self._conn_reg.pop((owner, fam), None)  # type: ignore[arg-type]

    def channel_conn_count(self, api_key: str, family: str) -> int:
        """Connections of ``api_key`` currently counted on a channel family."""
        return len(self._conn_reg.get((api_key, family), ()))

    # -- the 30 s rule, notices ---------------------------------------------------------------

    def sweep(self) -> None:
        limit = self.opts.idle_close_s
        if limit <= 0:
            return
        now = time.monotonic()
        for c in list(self.connections):
            assert isinstance(c, OkxConnection)
            if c.closing:
                continue
            if not c.ever_subscribed:
                if now - c.opened_at >= limit:
                    self.close_4004(c, limit=f"nothing subscribed within {limit:g}s")
                continue
            last = c.last_tx
            for s in c.topics.values():
                if s is not None and s.last_push > last:
                    last = s.last_push
            if now - max(last, c.opened_at) >= limit:
                self.close_4004(c, limit=f"nothing sent for {limit:g}s")

    def close_4004(self, c: OkxConnection, limit: str = "") -> None:
        """Close with 4004; ``limit``: why the 30 s rule fired (else it is the injected fault)."""
        if c.closing:
            return
        c.closing = True
        self.stats.idle_closes += 1
        if limit:
            self.truth.limit("idle-4004", c.id, limit)
        c.close(WSCloseCode(4004), IDLE_REASON.encode())

    def send_notice_all(self) -> None:
        """Send notice 64008 on every connection, then close each after ``notice_lead_s``."""
        loop = asyncio.get_running_loop()
        noticed = []
        for c in list(self.connections):
            assert isinstance(c, OkxConnection)
            if c.notice_handle is not None or c.closing:
                continue
            self.send_obj(c, {"event": "notice", "code": "64008", "msg": NOTICE_MSG, "connId": c.conn_id})
            c.notice_handle = loop.call_later(self.opts.notice_lead_s, self._notice_close, c)
            noticed.append(c.id)
        if noticed:
            self.truth.fault("notice", conns=noticed, detail=f"64008, closed {self.opts.notice_lead_s:g}s later")

    def _notice_close(self, c: OkxConnection) -> None:
        c.notice_handle = None
        if c.closing:
            return
        c.closing = True
        code = int(self.opts.notice_close_code)
        if code == 0:
            c.drop()
        else:
            c.close(WSCloseCode(code), b"")

    # -- faults -------------------------------------------------------------------------------

    def apply_venue_fault(self, f: Fault) -> bool:
        if f.name == "close-4004":
            conns = [c for c in list(self.connections) if not c.closing]  # type: ignore[attr-defined]
            self.truth.fault("close-4004", conns=[c.id for c in conns], detail="4004 No data received in 30s.")
            for c in conns:
                assert isinstance(c, OkxConnection)
                self.close_4004(c)
        elif f.name == "close-4009":
            conns = [c for c in list(self.connections) if len(c.topics) > 1]
            self.truth.fault("close-4009", conns=[c.id for c in conns], detail="4009 channels over the limit")
            for c in conns:
                c.close(WSCloseCode(4009), b"Channels on this connection over the limit.")
        elif f.name == "notice":
            self.send_notice_all()
        elif f.name == "sub-fail":
            self._sub_fail += int(f.value or 1)
            self._sub_fail_cause = self.truth.cause
        else:
            return False
        return True

    def clear_faults(self) -> None:
        super().clear_faults()
        self._sub_fail = 0

    def malformed_frame(self) -> bytes:
        return b'{"arg":{"channel":"sim.malformed"},"data":[{"ts":"17'


class OkxStream(Stream):
    """A shared stream with its push ``arg`` pre-built."""

    def __init__(self, sim: OkxGatewaySim, topic: str, cadence: Cadence | None, arg: dict[str, Any]):
        super().__init__(sim, topic, cadence)
        self.osim = sim
        self.arg = arg

    def send_to(self, conn: SimConnection, data: bytes) -> None:
        assert isinstance(conn, OkxConnection)
        self.osim.send_bytes(conn, data)

    def frame(self, data: list[Any], **extra: Any) -> bytes:
        d: dict[str, Any] = {"arg": self.arg}
        d.update(extra)
        d["data"] = data
        return _encode(d)


# ---------------------------------------------------------------------------------------------
# Candle bars
# ---------------------------------------------------------------------------------------------

CANDLE_BARS = (
    "1s 1m 3m 5m 15m 30m 1H 2H 4H 6H 12H 1D 2D 3D 5D 1W 1M 3M "
    "6Hutc 12Hutc 1Dutc 2Dutc 3Dutc 5Dutc 1Wutc 1Mutc 3Mutc"
).split()

_BAR_MS = {"s": 1000, "m": 60_000, "H": 3_600_000, "D": 86_400_000, "W": 604_800_000}


def bar_bounds(bar: str, t_ms: int, override_s: float | None = None) -> tuple[int, int]:
    """``[start, end]`` (ms, end inclusive) of the candle of ``bar`` containing ``t_ms``.

    Bars of 6H and longer without the ``utc`` suffix follow Hong Kong time (UTC+8); weeks start
    on Monday.
    """
    if override_s:
        return fixed_period_bounds(t_ms, override_s)
    utc = bar.endswith("utc")
    core = bar[:-3] if utc else bar
    n, unit = int(core[:-1]), core[-1]
    shift = 0 if utc or unit in "sm" or (unit == "H" and n < 6) else 8 * 3_600_000
    local = t_ms + shift
    if unit in _BAR_MS:
        p = n * _BAR_MS[unit]
        origin = 4 * 86_400_000 if unit == "W" else 0  # 1970-01-05 was a Monday
        start = local - (local - origin) % p
        return start - shift, start + p - shift - 1
    d = datetime.fromtimestamp(local / 1000, tz=timezone.utc)
    idx = d.year * 12 + d.month - 1
    idx -= idx % n
    start = calendar.timegm((idx // 12, idx % 12 + 1, 1, 0, 0, 0)) * 1000
    idx += n
    end = calendar.timegm((idx // 12, idx % 12 + 1, 1, 0, 0, 0)) * 1000
    return start - shift, end - shift - 1
