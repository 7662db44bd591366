"""Deterministic, pre-encoded venue streams for the throughput benchmark.

Every generator is seeded and returns a :class:`Stream`: the data frames exactly as the venue
would put them on the wire (UTF-8 JSON, compact), the expected final state (book: price string ->
size string per side; trades: count and last trade id), and the venue's control replies
(subscribe acks, pongs) for the loopback server.

Streams
-------
``bybit``         Bybit v5 linear ``orderbook.50.BTCUSDT``: one snapshot (50 levels per side), then
                  N deltas with ``u`` +1 each, 1-6 level changes per delta, size ``"0"`` deletes,
                  levels pushed out of the 50-level window deleted explicitly, prices exact decimal
                  strings at tick 0.10 (``"60000.10"``), sizes at step 0.001.
``okx``           OKX v5 ``books`` ``BTC-USDT`` (``/ws/v5/public``): ``action:"snapshot"`` with
                  ``prevSeqId:-1`` and 400 levels per side, then ``action:"update"`` frames on an
                  unbroken ``prevSeqId`` -> ``seqId`` chain (seqId steps 1..20, never +1 only),
                  ``checksum:0``, ``ts`` strings, levels ``[px, sz, "0", numOrders]``.
``bybit-trades``  Bybit v5 linear ``publicTrade.BTCUSDT``: N messages of 1-4 trades each.

Data frame ``i`` (0 = the snapshot for books, 0 = the first trade message for trades) carries the
exchange timestamp ``ts = TS0 + i`` milliseconds, so a pull-style client can tell which message
its state reflects.
"""

from __future__ import annotations

import json
import random
import uuid
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Callable

TS0 = 1_760_000_000_000  # ms; data frame i has ts == TS0 + i

BYBIT_SYMBOL = "BTCUSDT"
OKX_INST = "BTC-USDT"
BYBIT_BOOK_TOPIC = f"orderbook.50.{BYBIT_SYMBOL}"
BYBIT_TRADE_TOPIC = f"publicTrade.{BYBIT_SYMBOL}"
BYBIT_PATHS = ("/v5/public/linear", "/v5/public/spot")
OKX_PATHS = ("/ws/v5/public",)


@dataclass
class Stream:
    """A pre-generated stream and everything needed to serve and check it."""

    key: str  # "bybit" | "okx" | "bybit-trades": the runner's `venue` argument
    venue: str  # "bybit" | "okx": the wire dialect (acks, pings)
    kind: str  # "book" | "trades"
    title: str  # human label for tables
    paths: tuple[str, ...]
    frames: list[bytes]  # data frames in order (snapshot first for books)
    depth: int = 0
    n_deltas: int = 0
    expected_bids: dict[str, str] = field(default_factory=dict)
    expected_asks: dict[str, str] = field(default_factory=dict)
    expected_trades: int = 0
    last_trade_id: str = ""
    seed: int = 0

    @property
    def expected_msgs(self) -> int:
        """Number of data frames a client must process (snapshot included)."""
        return len(self.frames)

    def control_replies(self, payload: bytes, path: str, conn_id: str) -> tuple[list[bytes], bool]:
        """Replies to one client text frame, and whether it was a subscribe.

        Accepts any subscribe frame. Bybit: one ack per request (req_id echoed), JSON pong to
        ``{"op":"ping"}``. OKX: one ack per arg (arg and id echoed), text ``pong`` to ``ping``.
        """
        if self.venue == "okx":
            return okx_control_replies(payload, conn_id)
        return bybit_control_replies(payload, path, conn_id)


# --------------------------------------------------------------------------------------------
# control frames


def bybit_control_replies(payload: bytes, path: str, conn_id: str) -> tuple[list[bytes], bool]:
    try:
        req = json.loads(payload)
    except ValueError:
        return [], False
    if not isinstance(req, dict):
        return [], False
    op = req.get("op")
    spot = path.rstrip("/").endswith("/spot")
    req_id = req.get("req_id")
    if op in ("subscribe", "unsubscribe"):
        if spot:
            msg = {"success": True, "ret_msg": op, "conn_id": conn_id}
            if req_id is not None:
                msg["req_id"] = req_id
            msg["op"] = op
        else:
            msg = {"success": True, "ret_msg": "", "conn_id": conn_id,
                   "req_id": "" if req_id is None else req_id, "op": op}
        return [_dumps(msg)], op == "subscribe"
    if op == "ping":
        if spot:
            msg = {"success": True, "ret_msg": "pong", "conn_id": conn_id, "op": "ping"}
        else:
            msg = {"success": True, "ret_msg": "pong", "conn_id": conn_id,
                   "req_id": "" if req_id is None else req_id, "op": "ping"}
        return [_dumps(msg)], False
    return [], False


def okx_control_replies(payload: bytes, conn_id: str) -> tuple[list[bytes], bool]:
    if payload == b"ping":
        return [b"pong"], False
    try:
        req = json.loads(payload)
    except ValueError:
        return [], False
    if not isinstance(req, dict):
        return [], False
    op = req.get("op")
    if op in ("subscribe", "unsubscribe"):
        out = []
        for arg in req.get("args") or []:
            msg: dict = {}
            if "id" in req:
                msg["id"] = req["id"]
            msg.update({"event": op, "arg": arg, "connId": conn_id})
            out.append(_dumps(msg))
        return out, op == "subscribe"
    return [], False


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# book simulation


class _WindowBook:
    """Both sides of a book kept at exactly `depth` levels, in integer ticks / size units.

    `delta()` mutates the book with 1..6 level changes and returns them; every change a client
    sees is either an upsert inside the window or a delete of a level it holds.
    """

    def __init__(self, rng: random.Random, depth: int, mid: int,
                 new_size: Callable[[], int]) -> None:
        self.rng = rng
        self.depth = depth
        self.new_size = new_size
        self.bias = max(3.0, depth / 8)  # mean index (from the top) of touched levels
        self.bids: list[int] = []  # ascending; best bid is bids[-1]
        self.asks: list[int] = []  # ascending; best ask is asks[0]
        self.bsz: dict[int, int] = {}
        self.asz: dict[int, int] = {}
        t = mid - 1
        for _ in range(depth):
            self.bids.insert(0, t)
            self.bsz[t] = new_size()
            t -= rng.choice((1, 1, 1, 2, 3))
        t = mid + 1
        for _ in range(depth):
            self.asks.append(t)
            self.asz[t] = new_size()
            t += rng.choice((1, 1, 1, 2, 3))

    # helpers: index 0 = best level
    def _at(self, bid: bool, k: int) -> int:
        return self.bids[-1 - k] if bid else self.asks[k]

    def _pick(self) -> int:
        return min(int(self.rng.expovariate(1.0 / self.bias)), self.depth - 1)

    def _remove(self, bid: bool, tick: int) -> None:
        levels, sizes = (self.bids, self.bsz) if bid else (self.asks, self.asz)
        del levels[bisect_left(levels, tick)]
        del sizes[tick]

    def _add(self, bid: bool, tick: int, size: int) -> None:
        levels, sizes = (self.bids, self.bsz) if bid else (self.asks, self.asz)
        insort(levels, tick)
        sizes[tick] = size

    def delta(self) -> tuple[dict[int, int], dict[int, int]]:
        rng = self.rng
        target = rng.choices((1, 2, 3, 4, 5, 6), weights=(30, 25, 18, 12, 9, 6))[0]
        changes: tuple[dict[int, int], dict[int, int]] = ({}, {})  # (bids, asks): tick -> size
        count = 0
        attempts = 0
        while count < target and attempts < 50:
            attempts += 1
            bid = rng.random() < 0.5
            ch = changes[0] if bid else changes[1]
            if target - count == 1 or rng.random() < 0.5:
                count += self._modify(bid, ch)
            elif rng.random() < self._p_insert(bid):
                count += self._insert(bid, ch)
            else:
                count += self._delete(bid, ch)
        return changes

    def _p_insert(self, bid: bool) -> float:
        """Share of inserts among structural changes: mean-reverts the window's span.

        Deletes move a level from the top to just below the window (the span grows); inserts
        add a level near the top and push the worst one out (the span shrinks). Steering on the
        span keeps the book about as dense as at the start (~1.5 ticks per level) and the
        spread tight, over any stream length.
        """
        span = (self.bids[-1] - self.bids[0]) if bid else (self.asks[-1] - self.asks[0])
        excess = span / (self.depth * 1.5)
        return min(0.8, max(0.2, 0.5 * excess))

    def _modify(self, bid: bool, ch: dict[int, int]) -> int:
        tick = self._at(bid, self._pick())
        if tick in ch:
            return 0
        sizes = self.bsz if bid else self.asz
        new = self.new_size()
        if new == sizes[tick]:
            new += 1
        sizes[tick] = new
        ch[tick] = new
        return 1

    def _delete(self, bid: bool, ch: dict[int, int]) -> int:
        tick = self._at(bid, self._pick())
        if tick in ch:
            return 0
        # a level from below the window slides in, so the window stays full
        step = -1 if bid else 1
        worst = self.bids[0] if bid else self.asks[-1]
        refill = worst + step * self.rng.randint(1, 3)
        while refill in ch:
            refill += step
        self._remove(bid, tick)
        ch[tick] = 0
        size = self.new_size()
        self._add(bid, refill, size)
        ch[refill] = size
        return 2

    def _insert(self, bid: bool, ch: dict[int, int]) -> int:
        rng = self.rng
        best_bid, best_ask = self.bids[-1], self.asks[0]
        worst = self.bids[0] if bid else self.asks[-1]
        if worst in ch:
            return 0  # would delete a level this same delta created
        spread = best_ask - best_bid
        if spread > 1 and rng.random() < (0.3 if spread <= 3 else 0.8):
            k = rng.randint(1, min(3, spread - 1))  # improve the touch, inside the spread
            tick = best_bid + k if bid else best_ask - k
        else:  # fill a gap between two adjacent levels, near the top more often
            for _ in range(4):
                k = min(self._pick(), self.depth - 2)
                hi, lo = self._at(bid, k), self._at(bid, k + 1)
                gap = abs(hi - lo)
                if gap > 1:
                    off = rng.randint(1, gap - 1)
                    tick = hi - off if bid else hi + off
                    break
            else:
                return 0
        sizes = self.bsz if bid else self.asz
        if tick in sizes or tick in ch:
            return 0
        size = self.new_size()
        self._add(bid, tick, size)
        ch[tick] = size
        # the level pushed out of the window is deleted explicitly
        self._remove(bid, worst)
        ch[worst] = 0
        return 2


# --------------------------------------------------------------------------------------------
# formatting


def _bybit_px(t: int) -> str:  # tick 0.10 shown with 2 decimals, like "16493.50"
    return f"{t // 10}.{t % 10}0"


def _bybit_sz(s: int) -> str:  # step 0.001, like "0.006"
    return f"{s // 1000}.{s % 1000:03d}" if s else "0"


def _okx_px(t: int) -> str:  # tick 0.1, OKX trims trailing zeros: "8476.9", "8477"
    q, r = divmod(t, 10)
    return f"{q}.{r}" if r else str(q)


def _okx_sz(s: int) -> str:  # base-currency size, up to 8 decimals, trimmed
    if not s:
        return "0"
    q, r = divmod(s, 100_000_000)
    if not r:
        return str(q)
    return f"{q}.{r:08d}".rstrip("0")


def _levels2(items: list[tuple[int, int]], fpx: Callable[[int], str], fsz: Callable[[int], str]) -> str:
    return "[" + ",".join(f'["{fpx(p)}","{fsz(s)}"]' for p, s in items) + "]"


# --------------------------------------------------------------------------------------------
# generators


def bybit_orderbook(n_deltas: int, seed: int = 1, symbol: str = BYBIT_SYMBOL, depth: int = 50) -> Stream:
    """Bybit linear ``orderbook.{depth}.{symbol}``: snapshot + `n_deltas` deltas.

    The defaults (``orderbook.50.BTCUSDT``) are the throughput stream; the latency and scale
    suites use other symbols (one seed each) and the 200-level depth.
    """
    rng = random.Random(seed)

    def new_size() -> int:
        return int(rng.expovariate(1 / 600)) + 1

    book = _WindowBook(rng, depth, mid=600_000 + rng.randint(0, 1000), new_size=new_size)
    u = rng.randint(10_000_000, 90_000_000)
    seq = rng.randint(10**9, 9 * 10**9)
    frames: list[bytes] = []
    topic = f"orderbook.{depth}.{symbol}"
    head = '{"topic":"' + topic + '","type":"'
    sym = '"data":{"s":"' + symbol + '","b":'

    def frame(kind: str, i: int, bids: str, asks: str) -> bytes:
        ts = TS0 + i
        return (f'{head}{kind}","ts":{ts},{sym}{bids},"a":{asks},"u":{u},"seq":{seq}}},'
                f'"cts":{ts - 2}}}').encode()

    bids = [(t, book.bsz[t]) for t in reversed(book.bids)]
    asks = [(t, book.asz[t]) for t in book.asks]
    frames.append(frame("snapshot", 0, _levels2(bids, _bybit_px, _bybit_sz),
                        _levels2(asks, _bybit_px, _bybit_sz)))
    for i in range(1, n_deltas + 1):
        cb, ca = book.delta()
        u += 1
        seq += rng.randint(1, 4000)
        b = sorted(cb.items(), reverse=True)
        a = sorted(ca.items())
        frames.append(frame("delta", i, _levels2(b, _bybit_px, _bybit_sz), _levels2(a, _bybit_px, _bybit_sz)))
    return Stream(
        key="bybit", venue="bybit", kind="book", title=f"Bybit orderbook.{depth} {symbol}",
        paths=BYBIT_PATHS, frames=frames, depth=depth, n_deltas=n_deltas, seed=seed,
        expected_bids={_bybit_px(t): _bybit_sz(book.bsz[t]) for t in book.bids},
        expected_asks={_bybit_px(t): _bybit_sz(book.asz[t]) for t in book.asks},
    )


def okx_books(n_deltas: int, seed: int = 2, inst: str = OKX_INST, depth: int = 400) -> Stream:
    """OKX ``books`` ``{inst}``: 400-level snapshot + `n_deltas` updates on a seqId chain."""
    rng = random.Random(seed)

    def new_size() -> int:
        # mostly small fractional BTC amounts at 1e-8 resolution, some round lots
        if rng.random() < 0.15:
            return rng.randint(1, 2000) * 100_000  # 0.001 steps
        return int(rng.expovariate(1 / 40_000_000)) + 1

    book = _WindowBook(rng, depth, mid=950_000 + rng.randint(0, 1000), new_size=new_size)
    norders: dict[int, int] = {}

    def lv(items: list[tuple[int, int]]) -> str:
        parts = []
        for p, s in items:
            if s:
                n = norders[p] = rng.randint(1, 40)
                parts.append(f'["{_okx_px(p)}","{_okx_sz(s)}","0","{n}"]')
            else:
                norders.pop(p, None)
                parts.append(f'["{_okx_px(p)}","0","0","0"]')
        return "[" + ",".join(parts) + "]"

    head = '{"arg":{"channel":"books","instId":"' + inst + '"},"action":"'
    frames: list[bytes] = []
    seq = rng.randint(10**10, 9 * 10**10)
    asks = [(t, book.asz[t]) for t in book.asks]
    bids = [(t, book.bsz[t]) for t in reversed(book.bids)]
    frames.append((f'{head}snapshot","data":[{{"asks":{lv(asks)},"bids":{lv(bids)},"ts":"{TS0}",'
                   f'"checksum":0,"prevSeqId":-1,"seqId":{seq}}}]}}').encode())
    for i in range(1, n_deltas + 1):
        cb, ca = book.delta()
        prev = seq
        seq += rng.randint(1, 20)
        a = sorted(ca.items())
        b = sorted(cb.items(), reverse=True)
        frames.append((f'{head}update","data":[{{"asks":{lv(a)},"bids":{lv(b)},"ts":"{TS0 + i}",'
                       f'"checksum":0,"prevSeqId":{prev},"seqId":{seq}}}]}}').encode())
    return Stream(
        key="okx", venue="okx", kind="book", title=f"OKX books {inst}",
        paths=OKX_PATHS, frames=frames, depth=depth, n_deltas=n_deltas, seed=seed,
        expected_bids={_okx_px(t): _okx_sz(book.bsz[t]) for t in book.bids},
        expected_asks={_okx_px(t): _okx_sz(book.asz[t]) for t in book.asks},
    )


def bybit_trades(n_msgs: int, seed: int = 3) -> Stream:
    """Bybit linear ``publicTrade.BTCUSDT``: `n_msgs` messages of 1-4 trades."""
    rng = random.Random(seed)
    px = 600_000 + rng.randint(0, 1000)
    last_dir = "Plus"
    seq = rng.randint(10**11, 9 * 10**11)
    frames: list[bytes] = []
    head = '{"topic":"' + BYBIT_TRADE_TOPIC + '","type":"snapshot","ts":'
    count = 0
    last_id = ""
    for i in range(n_msgs):
        ts = TS0 + i
        seq += rng.randint(1, 500)
        side = "Buy" if rng.random() < 0.5 else "Sell"
        parts = []
        for _ in range(rng.choices((1, 2, 3, 4), weights=(60, 22, 12, 6))[0]):
            move = rng.choices((-1, 0, 1), weights=(3, 4, 3))[0]
            if move:
                px += move
                last_dir = "Plus" if move > 0 else "Minus"
                tick = f"{last_dir}Tick"
            else:
                tick = f"Zero{last_dir}Tick"
            last_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            size = int(rng.expovariate(1 / 150)) + 1
            parts.append(f'{{"T":{ts - 1},"s":"{BYBIT_SYMBOL}","S":"{side}","v":"{_bybit_sz(size)}",'
                         f'"p":"{_bybit_px(px)}","L":"{tick}","i":"{last_id}","BT":false,'
                         f'"RPI":false,"seq":{seq}}}')
            count += 1
        frames.append(f'{head}{ts},"data":[{",".join(parts)}]}}'.encode())
    return Stream(
        key="bybit-trades", venue="bybit", kind="trades", title="Bybit publicTrade BTCUSDT",
        paths=BYBIT_PATHS, frames=frames, n_deltas=n_msgs, seed=seed,
        expected_trades=count, last_trade_id=last_id,
    )


GENERATORS: dict[str, Callable[[int], Stream]] = {
    "bybit": bybit_orderbook,
    "okx": okx_books,
    "bybit-trades": bybit_trades,
}


def replay_book(stream: Stream) -> tuple[dict[str, str], dict[str, str]]:
    """Straightforward replay of a book stream with json + dicts (used by the tests)."""
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    for raw in stream.frames:
        m = json.loads(raw)
        if stream.venue == "bybit":
            d, snap = m["data"], m["type"] == "snapshot"
            b, a = d["b"], d["a"]
        else:
            d, snap = m["data"][0], m["action"] == "snapshot"
            b, a = d["bids"], d["asks"]
        if snap:
            bids.clear()
            asks.clear()
        for side, levels in ((bids, b), (asks, a)):
            for lvl in levels:
                if lvl[1] == "0":
                    side.pop(lvl[0], None)
                else:
                    side[lvl[0]] = lvl[1]
    return bids, asks
