"""The simulated Bybit account behind ``/v5/private``: orders, executions, positions, wallet, greeks.

Written from ``protocols/bybit.md`` §8 (push envelope and field lists) only. One
:class:`BybitAccount` per API key starts the first time one of its connections subscribes a
private topic, and trades while at least one topic of the key is subscribed:

* orders (``Limit``, ``GTC``) on the instruments of ``BybitOptions.private_symbols``, placed at a
  seeded rate (``private_orders_per_s``), most of them marketable, some resting below/above the
  touch; open orders are cancelled now and then (``Cancelled``; ``PartiallyFilledCanceled`` on
  spot once something filled);
* fills come from the **public prints** of the same symbol (the synthetic market every public
  topic reads): a print at a price the order accepts fills up to the print's size, at the print's
  price and time; ``execId`` is the print's public trade id (``publicTrade`` ``i``), ``seq`` its
  cross sequence (``seq`` of that print), ``isMaker`` whether the print's taker was on the other
  side. One print fills at most one order, so ``execId`` is unique. Order states go
  ``New`` -> ``PartiallyFilled`` -> ``Filled``;
* now and then (``private_race_prob``) a cancel races the final fill: the order update
  ``Filled`` is followed by a second ``Filled`` with ``cancelType=CancelByUser`` and
  ``rejectReason=EC_OrigClOrdIDDoesNotExist`` (§8);
* a fill moves the position (linear, inverse, option; one-way mode, ``positionIdx`` 0; realised
  PnL when it reduces) and the wallet (fees, realised PnL, spot base/quote, option premium); a
  position message is also pushed on every order create and cancel (§8), the wallet after the
  fills of a tick, ``greeks`` after an option fill. Nothing is pushed on subscribe (no snapshot).

Pushes use the subscribed topic's name (``order``, ``order.linear``, ``execution.fast.spot``…)
with the private envelope ``{"id", "topic", "creationTime", "data": [...]}`` (``execution.fast``
has no ``id``). The items pushed are kept, in order, in :attr:`BybitAccount.orders`,
:attr:`~BybitAccount.executions`, :attr:`~BybitAccount.positions_log`,
:attr:`~BybitAccount.wallet_log` and :attr:`~BybitAccount.greeks_log` (ground truth for tests).
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

from .framework import Market, SimConnection, Stream, Trade, now_ms

if TYPE_CHECKING:
    from .bybit import BybitSim

__all__ = ["BybitAccount", "PrivateTopic", "DEFAULT_PRIVATE_SYMBOLS"]

DEFAULT_PRIVATE_SYMBOLS = {
    "linear": ["BTCUSDT", "ETHUSDT"], "spot": ["BTCUSDT"], "inverse": ["BTCUSD"], "option": ["BTC-27DEC26-100000-C"],
}
_START_COINS = {"USDT": 100_000.0, "USDC": 50_000.0, "BTC": 2.0, "ETH": 20.0}
_MAKER_FEE = 0.0002
_TAKER_FEE = 0.00055
_FAST_FIELDS = ("category", "symbol", "execId", "execPrice", "execQty", "orderId", "isMaker", "orderLinkId",
                "side", "execTime", "seq")
_COIN_USD = {"USDT": 1.0, "USDC": 1.0}


def _f(x: float, decimals: int = 8) -> str:
    s = f"{x:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


class _Order:
    __slots__ = ("item", "category", "market", "side", "price", "qty", "filled", "value", "fee", "seq_no")

    def __init__(self, item: dict[str, Any], category: str, market: Market, side: str, price: int, qty: int):
        self.item = item
        self.category = category
        self.market = market
        self.side = side
        self.price = price
        self.qty = qty
        self.filled = 0
        self.value = 0.0
        self.fee = 0.0
        self.seq_no = 0


class _Position:
    __slots__ = ("size", "entry", "realised", "cum_realised", "created", "updated", "seq")

    def __init__(self, created: int):
        self.size = 0  # signed, qty units
        self.entry = 0.0
        self.realised = 0.0  # this session (curRealisedPnl)
        self.cum_realised = 0.0
        self.created = created
        self.updated = created
        self.seq = 0


class PrivateTopic(Stream):
    """One private topic of one API key (``order``, ``order.linear``, ``wallet``…); its
    subscribers are that key's authenticated connections that subscribed it."""

    def __init__(self, sim: "BybitSim", topic: str, account: "BybitAccount"):
        super().__init__(sim, topic, None)
        self.account = account

    def activate(self) -> None:
        self.account.attach()

    def deactivate(self) -> None:
        self.account.detach()


class BybitAccount:
    """The synthetic account of one API key (see the module docstring)."""

    def __init__(self, sim: "BybitSim", api_key: str):
        self.sim = sim
        self.api_key = api_key
        self.uid = 100_000_000 + int(hashlib.sha256(api_key.encode()).hexdigest()[:8], 16) % 900_000_000
        self.rng = random.Random(f"{sim.seed}|bybit|account|{api_key}")
        self.topics: dict[str, PrivateTopic] = {}
        self.orders: list[dict[str, Any]] = []
        """Every order update pushed, in order (copies of the wire items)."""
        self.executions: list[dict[str, Any]] = []
        """Every execution pushed (full ``execution`` items), in order."""
        self.positions_log: list[dict[str, Any]] = []
        self.wallet_log: list[dict[str, Any]] = []
        self.greeks_log: list[dict[str, Any]] = []
        self.open: dict[str, _Order] = {}
        self.positions: dict[tuple[str, str], _Position] = {}
        self.coins: dict[str, float] = dict(_START_COINS)
        self.cum_realised: dict[str, float] = {}
        self._active = 0
        self._cadence: Any = None
        self._listening: list[tuple[Market, Any]] = []
        self._t_last = time.monotonic()
        self._order_no = self.rng.getrandbits(64)
        self._msg_no = 0
        self._out: list[tuple[str, str, dict[str, Any], str]] = []  # (kind, category, item, group)
        self._wallet_dirty = False
        self._greeks_dirty = False

    # -- lifecycle ----------------------------------------------------------------------------

    def topic(self, name: str) -> PrivateTopic:
        t = self.topics.get(name)
        if t is None:
            t = self.topics[name] = PrivateTopic(self.sim, name, self)
        return t

    def attach(self) -> None:
        self._active += 1
        if self._active > 1:
            return
        o = self.sim.opts
        speed = o.speed
        self._t_last = time.monotonic()
        for cat, syms in o.private_symbols.items():
            for sym in syms:
                m = self.sim.market(cat, sym)
                m.sync(None, speed)
                fn = self._listener(cat, m)
                m.trade_listeners.append(fn)
                self._listening.append((m, fn))
        self._cadence = self.sim.cadence(o.push_interval(o.private_interval_ms), ("private", self.api_key))
        self._cadence.add(self)

    def detach(self) -> None:
        self._active -= 1
        if self._active > 0:
            return
        self._active = 0
        if self._cadence is not None:
            self._cadence.discard(self)
            self._cadence = None
        for m, fn in self._listening:
            try:
                m.trade_listeners.remove(fn)
            except ValueError:
                pass
        self._listening.clear()

    # -- the clock ----------------------------------------------------------------------------

    def tick(self) -> None:
        o = self.sim.opts
        for m, _ in self._listening:
            m.sync(None, o.speed)  # prints -> fills (the listeners)
        rate = o.private_orders_per_s * o.speed
        now = time.monotonic()
        if rate > 0:
            n = int((now - self._t_last) * rate)
            if n > 0:
                self._t_last += n / rate
                for _ in range(min(n, 10)):
                    self._order_event()
        else:
            self._t_last = now
        self._flush()

    # -- orders -------------------------------------------------------------------------------

    def _order_event(self) -> None:
        rng = self.rng
        if self.open and rng.random() < self.sim.opts.private_cancel_prob:
            od = self.open[rng.choice(sorted(self.open))]
            self._cancel(od)
            return
        choices = [(c, s) for c, syms in self.sim.opts.private_symbols.items() for s in syms]
        if not choices:
            return
        cat, sym = choices[rng.randrange(len(choices))]
        self._place(cat, sym)

    def _place(self, cat: str, sym: str) -> None:
        rng = self.rng
        m = self.sim.market(cat, sym)
        m.sync(None, self.sim.opts.speed)
        spec = m.spec
        tk = spec.tick_units
        side = "Buy" if rng.random() < 0.5 else "Sell"
        b, a = m.bids.best(), m.asks.best()
        if b is None or a is None:
            return
        if rng.random() < 0.75:  # marketable: crosses the spread a few ticks
            price = a + tk * rng.randint(0, 5) if side == "Buy" else b - tk * rng.randint(0, 5)
        else:  # resting behind the touch
            price = b - tk * rng.randint(1, 20) if side == "Buy" else a + tk * rng.randint(1, 20)
        price = max(tk, price)
        qty = spec.lot_units * (1 + int(rng.expovariate(1.0 / max(1, spec.size_mean_lots * 2))))
        self._order_no += rng.randint(1, 1 << 20)
        oid = str(uuid.UUID(int=self._order_no % (1 << 128), version=4))
        now = str(now_ms())
        fee_ccy = ""
        if cat == "spot":
            fee_ccy = self._base_quote(sym)[0] if side == "Buy" else self._base_quote(sym)[1]
        item: dict[str, Any] = {
            "category": cat, "symbol": sym, "orderId": oid, "orderLinkId": f"sim-{self._order_no % 10**10}",
            "parentOrderLinkId": "", "isLeverage": "0" if cat == "spot" else "", "blockTradeId": "",
            "side": side, "orderType": "Limit", "cancelType": "UNKNOWN", "price": spec.fp(price),
            "qty": spec.fq(qty), "orderIv": "", "timeInForce": "GTC", "orderStatus": "New",
            "lastPriceOnCreated": spec.fp(m.last_price), "reduceOnly": False, "leavesQty": spec.fq(qty),
            "leavesValue": _f(self._value(cat, spec.price_float(price), spec.qty_float(qty))),
            "cumExecQty": "0", "cumExecValue": "0", "avgPrice": "" if cat != "linear" else "0",
            "positionIdx": 0, "cumExecFee": "0", "cumFeeDetail": {}, "closedPnl": "0",
            "createdTime": now, "updatedTime": now, "rejectReason": "EC_NoError", "stopOrderType": "",
            "tpslMode": "", "triggerPrice": "", "takeProfit": "", "stopLoss": "", "tpTriggerBy": "",
            "slTriggerBy": "", "tpLimitPrice": "", "slLimitPrice": "", "triggerDirection": 0,
            "triggerBy": "", "closeOnTrigger": False, "placeType": "option" if cat == "option" else "",
            "smpType": "None", "smpGroup": 0, "smpOrderId": "", "feeCurrency": fee_ccy,
            "createType": "CreateByUser", "marketUnit": "", "slippageToleranceType": "UNKNOWN",
            "slippageTolerance": "0", "ocoTriggerBy": "", "rpiTakerAccess": False, "rpiMatchedQty": "0",
        }
        od = _Order(item, cat, m, side, price, qty)
        self.open[oid] = od
        self._emit_order(od)
        self._touch_position(cat, sym)

    def _cancel(self, od: _Order) -> None:
        self.open.pop(od.item["orderId"], None)
        it = od.item
        it["orderStatus"] = "PartiallyFilledCanceled" if od.category == "spot" and od.filled else "Cancelled"
        it["cancelType"] = "CancelByUser"
        it["leavesQty"] = "0"
        it["leavesValue"] = "0"
        it["updatedTime"] = str(now_ms())
        self._emit_order(od)
        self._touch_position(od.category, it["symbol"])

    def _emit_order(self, od: _Order) -> None:
        item = dict(od.item)
        item["cumFeeDetail"] = dict(od.item["cumFeeDetail"])
        self._out.append(("order", od.category, item, item["orderId"]))

    # -- fills --------------------------------------------------------------------------------

    def _listener(self, cat: str, m: Market) -> Any:
        def on_trade(t: Trade) -> None:
            try:
                self._on_print(cat, m, t)
            except Exception as exc:
                self.sim._internal_error(exc)

        return on_trade

    def _on_print(self, cat: str, m: Market, t: Trade) -> None:
        sym = m.spec.symbol
        for od in list(self.open.values()):
            if od.market is not m:
                continue
            if od.side == "Buy" and t.price > od.price or od.side == "Sell" and t.price < od.price:
                continue
            if self.rng.random() >= self.sim.opts.private_fill_prob:
                return  # this print went to somebody else
            self._fill(od, cat, sym, t)
            return  # one print fills at most one order: execId stays unique

    def _fill(self, od: _Order, cat: str, sym: str, t: Trade) -> None:
        from .bybit import public_trade_id

        spec = od.market.spec
        q = min(od.qty - od.filled, t.size)
        if q <= 0:
            return
        px = spec.price_float(t.price)
        qf = spec.qty_float(q)
        is_maker = t.side != od.side
        rate = _MAKER_FEE if is_maker else _TAKER_FEE
        value = self._value(cat, px, qf)
        od.filled += q
        od.value += value
        it = od.item
        base, quote = self._base_quote(sym) if cat == "spot" else ("", "")
        if cat == "spot":
            fee = (qf if od.side == "Buy" else value) * rate
            fee_ccy = base if od.side == "Buy" else quote
        else:
            fee = value * rate
            fee_ccy = self._settle(cat, sym)
        od.fee += fee
        done = od.filled >= od.qty
        avg = (od.value / spec.qty_float(od.filled)) if cat != "inverse" else spec.qty_float(od.filled) / od.value
        now = str(t.ts_ms)
        closed_size, exec_pnl = self._apply_fill(od, cat, sym, q, px, fee, fee_ccy, t.ts_ms)
        it.update(
            orderStatus="Filled" if done else "PartiallyFilled",
            leavesQty=spec.fq(od.qty - od.filled) if not done else "0",
            leavesValue=_f(self._value(cat, spec.price_float(od.price), spec.qty_float(od.qty - od.filled))),
            cumExecQty=spec.fq(od.filled), cumExecValue=_f(od.value), avgPrice=_f(avg, spec.price_scale + 4),
            cumExecFee=_f(od.fee), cumFeeDetail={fee_ccy: _f(od.fee)}, feeCurrency=fee_ccy if cat == "spot" else "",
            updatedTime=now,
        )
        mark = spec.price_float(od.market.mid_units())
        ex = {
            "category": cat, "symbol": sym, "execId": public_trade_id(cat, t), "execPrice": spec.fp(t.price),
            "execQty": spec.fq(q), "execType": "Trade", "execValue": _f(value), "execFee": _f(fee),
            "feeRate": _f(rate), "execTime": now, "execPnl": _f(exec_pnl), "isMaker": is_maker,
            "orderId": it["orderId"], "orderLinkId": it["orderLinkId"], "orderPrice": it["price"],
            "orderQty": it["qty"], "orderType": "Limit", "stopOrderType": "UNKNOWN", "side": od.side,
            "isLeverage": it["isLeverage"], "leavesQty": it["leavesQty"], "closedSize": spec.fq(closed_size),
            "tradeIv": "", "markIv": "", "markPrice": _f(mark, spec.price_scale + 2),
            "indexPrice": _f(mark, spec.price_scale + 2), "underlyingPrice": "", "blockTradeId": "",
            "seq": t.seq, "marketUnit": "", "createType": "CreateByUser", "extraFees": [],
            "feeCurrency": fee_ccy if cat == "spot" else "",
        }
        if cat == "option":
            ex["tradeIv"] = ex["markIv"] = "0.45"
            ex["underlyingPrice"] = _f(self.sim.underlying(spec), 2)
        self._out.append(("execution", cat, ex, it["orderId"]))
        self._emit_order(od)
        if done:
            self.open.pop(it["orderId"], None)
            if self.rng.random() < self.sim.opts.private_race_prob:
                # the user's cancel arrived after the fill: a second Filled update (§8)
                it.update(cancelType="CancelByUser", rejectReason="EC_OrigClOrdIDDoesNotExist",
                          updatedTime=str(t.ts_ms + self.rng.randint(1, 30)))
                self._emit_order(od)
        if cat != "spot":
            self._position_item(cat, sym)
        self._wallet_dirty = True
        if cat == "option":
            self._greeks_dirty = True

    def _apply_fill(self, od: _Order, cat: str, sym: str, q: int, px: float, fee: float, fee_ccy: str,
                    t_ms: int) -> tuple[int, float]:
        """Move the position and the wallet; return ``(closed size, realised PnL)``."""
        spec = od.market.spec
        qf = spec.qty_float(q)
        if cat == "spot":
            base, quote = self._base_quote(sym)
            sign = 1 if od.side == "Buy" else -1
            self.coins[base] = self.coins.get(base, 0.0) + sign * qf
            self.coins[quote] = self.coins.get(quote, 0.0) - sign * qf * px
            self.coins[fee_ccy] = self.coins.get(fee_ccy, 0.0) - fee
            return 0, 0.0
        settle = self._settle(cat, sym)
        pos = self.positions.get((cat, sym))
        if pos is None:
            pos = self.positions[(cat, sym)] = _Position(t_ms)
        sign = 1 if od.side == "Buy" else -1
        old = pos.size
        closed = 0
        pnl = 0.0
        if old != 0 and (old > 0) != (sign > 0):
            closed = min(abs(old), q)
            cf = spec.qty_float(closed)
            d = 1 if old > 0 else -1
            if cat == "inverse":
                pnl = d * cf * (1.0 / pos.entry - 1.0 / px) if pos.entry else 0.0
            else:
                pnl = d * cf * (px - pos.entry)
        new = old + sign * q
        if new == 0:
            pos.entry = 0.0
        elif old == 0 or (old > 0) != (new > 0):
            pos.entry = px  # opened, or flipped: the rest opens at this price
        elif (old > 0) == (sign > 0):
            tot = abs(old) + q
            if cat == "inverse":  # average of contracts over prices
                pos.entry = tot / (abs(old) / pos.entry + q / px)
            else:
                pos.entry = (pos.entry * abs(old) + px * q) / tot
        pos.size = new
        pos.realised += pnl - fee
        pos.cum_realised += pnl - fee
        pos.updated = t_ms
        if cat == "option":  # premium paid or received
            self.coins[settle] = self.coins.get(settle, 0.0) - sign * qf * px
        self.coins[settle] = self.coins.get(settle, 0.0) + pnl - fee
        self.cum_realised[settle] = self.cum_realised.get(settle, 0.0) + pnl - fee
        return closed, pnl

    # -- positions, wallet, greeks ------------------------------------------------------------

    def _touch_position(self, cat: str, sym: str) -> None:
        if cat != "spot":
            self._position_item(cat, sym)

    def _position_item(self, cat: str, sym: str) -> None:
        pos = self.positions.get((cat, sym))
        if pos is None:
            pos = self.positions[(cat, sym)] = _Position(now_ms())
        pos.seq += 1
        self._out.append(("position", cat, self.position_dict(cat, sym), sym))

    def position_dict(self, cat: str, sym: str) -> dict[str, Any]:
        """The position of one instrument as the ``position`` topic (and REST position list) shows it."""
        m = self.sim.market(cat, sym)
        spec = m.spec
        pos = self.positions.get((cat, sym))
        if pos is None:
            pos = self.positions[(cat, sym)] = _Position(now_ms())
        mark = spec.price_float(m.mid_units())
        size = spec.qty_float(abs(pos.size))
        if cat == "inverse":
            value = size / pos.entry if pos.entry else 0.0
            upl = (1 if pos.size > 0 else -1) * size * (1.0 / pos.entry - 1.0 / mark) if pos.entry and pos.size else 0.0
        else:
            value = size * pos.entry
            upl = (1 if pos.size > 0 else -1) * size * (mark - pos.entry) if pos.size else 0.0
        item = {
            "category": cat, "symbol": sym, "positionIdx": 0, "tradeMode": 0, "riskId": 1,
            "riskLimitValue": "2000000" if cat != "option" else "",
            "side": "" if pos.size == 0 else ("Buy" if pos.size > 0 else "Sell"),
            "size": spec.fq(abs(pos.size)), "entryPrice": _f(pos.entry, spec.price_scale + 4),
            "sessionAvgPrice": "", "breakEvenPrice": _f(pos.entry, spec.price_scale + 4),
            "leverage": "10" if cat != "option" else "", "positionValue": _f(value),
            "positionBalance": "0", "markPrice": _f(mark, spec.price_scale + 2),
            "positionIM": _f(value / 10), "positionIMByMp": _f(value / 10), "positionMM": _f(value / 200),
            "positionMMByMp": _f(value / 200), "liqPrice": "", "bustPrice": "", "takeProfit": "0",
            "stopLoss": "0", "trailingStop": "0", "tpslMode": "Full", "unrealisedPnl": _f(upl),
            "curRealisedPnl": _f(pos.realised), "cumRealisedPnl": _f(pos.cum_realised),
            "createdTime": str(pos.created), "updatedTime": str(pos.updated), "adlRankIndicator": 2 if pos.size else 0,
            "autoAddMargin": 0, "leverageSysUpdatedTime": "", "mmrSysUpdatedTime": "",
            "seq": self._pos_seq(m, pos), "isReduceOnly": False, "positionStatus": "Normal",
        }
        return item

    def _pos_seq(self, m: Market, pos: _Position) -> int:
        return m.seq + pos.seq  # rises with the market's cross sequence, one more per message

    def _usd(self, coin: str) -> float:
        if coin in _COIN_USD:
            return _COIN_USD[coin]
        for cat in ("spot", "linear"):
            if f"{coin}USDT" in self.sim._symbols.get(cat, ()):
                m = self.sim.market(cat, f"{coin}USDT")
                return m.spec.price_float(m.mid_units())
        return 0.0

    def wallet_dict(self) -> dict[str, Any]:
        """The unified account's balances as the ``wallet`` topic shows them."""
        return self._wallet_item()

    def _wallet_item(self) -> dict[str, Any]:
        coins = []
        total = 0.0
        for c in sorted(self.coins):
            bal = self.coins[c]
            usd = bal * self._usd(c)
            total += usd
            coins.append({
                "coin": c, "equity": _f(bal), "usdValue": _f(usd, 6), "walletBalance": _f(bal),
                "availableToWithdraw": _f(bal), "availableToBorrow": "", "borrowAmount": "0", "accruedInterest": "0",
                "totalOrderIM": "0", "totalPositionIM": "0", "totalPositionMM": "0", "unrealisedPnl": "0",
                "cumRealisedPnl": _f(self.cum_realised.get(c, 0.0)), "bonus": "0", "collateralSwitch": True,
                "marginCollateral": True, "locked": "0", "spotHedgingQty": "0", "spotBorrow": "0",
            })
        t = _f(total, 4)
        return {
            "accountType": "UNIFIED", "accountIMRate": "0", "accountIMRateByMp": "0", "accountMMRate": "0",
            "accountMMRateByMp": "0", "totalEquity": t, "totalWalletBalance": t, "totalMarginBalance": t,
            "totalAvailableBalance": t, "totalPerpUPL": "0", "totalInitialMargin": "0",
            "totalInitialMarginByMp": "0", "totalMaintenanceMargin": "0", "totalMaintenanceMarginByMp": "0",
            "accountLTV": "0", "coin": coins,
        }

    def _greeks_item(self) -> dict[str, Any]:
        delta = gamma = vega = theta = 0.0
        for (cat, sym), pos in self.positions.items():
            if cat != "option" or not pos.size:
                continue
            m = self.sim.market(cat, sym)
            q = m.spec.qty_float(pos.size)
            d = 0.35 if sym.endswith("-C") else -0.35
            delta += q * d
            gamma += q * 0.00002
            vega += q * 40.0
            theta += -q * 25.0
        return {"baseCoin": "BTC", "totalDelta": _f(delta, 6), "totalGamma": _f(gamma, 8),
                "totalVega": _f(vega, 6), "totalTheta": _f(theta, 6)}

    # -- pushing ------------------------------------------------------------------------------

    def _msg_id(self) -> str:
        self._msg_no += 1
        return f"{self.uid}{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def _flush(self) -> None:
        if self._wallet_dirty:
            self._wallet_dirty = False
            self._out.append(("wallet", "", self._wallet_item(), ""))
        if self._greeks_dirty:
            self._greeks_dirty = False
            self._out.append(("greeks", "", self._greeks_item(), ""))
        out, self._out = self._out, []
        i = 0
        while i < len(out):
            kind, cat, item, group = out[i]
            items = [item]
            j = i + 1
            if kind == "execution":  # several fills of one order in one message
                while j < len(out) and out[j][0] == kind and out[j][3] == group:
                    items.append(out[j][2])
                    j += 1
            self._push(kind, cat, items)
            i = j

    def _push(self, kind: str, cat: str, items: list[dict[str, Any]]) -> None:
        log = {"order": self.orders, "execution": self.executions, "position": self.positions_log,
               "wallet": self.wallet_log, "greeks": self.greeks_log}[kind]
        log.extend(items)
        now = now_ms()
        names = [kind, f"{kind}.{cat}"] if cat else [kind]
        for name in names:
            t = self.topics.get(name)
            if t is not None and t.subs:
                t.publish(self.sim.encode({"id": self._msg_id(), "topic": name, "creationTime": now, "data": items}))
        if kind == "execution":
            fast = [{k: it[k] for k in _FAST_FIELDS} for it in items]
            for name in ("execution.fast", f"execution.fast.{cat}"):
                t = self.topics.get(name)
                if t is not None and t.subs:
                    t.publish(self.sim.encode({"topic": name, "creationTime": now, "data": fast}))

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _base_quote(sym: str) -> tuple[str, str]:
        for q in ("USDT", "USDC", "BTC", "ETH"):
            if sym.endswith(q) and len(sym) > len(q):
                return sym[: -len(q)], q
        return sym, "USDT"

    @staticmethod
    def _settle(cat: str, sym: str) -> str:
        if cat == "inverse":
            return sym[:-3] if sym.endswith("USD") else sym.split("USD")[0]
        if cat == "option":
            return "USDC"
        return "USDC" if sym.endswith("PERP") or sym.endswith("USDC") else "USDT"

    @staticmethod
    def _value(cat: str, px: float, qf: float) -> float:
        """Order/execution value: qty x price; inverse contracts are USD, valued in the coin."""
        if cat == "inverse":
            return qf / px if px else 0.0
        return qf * px

    def subscribers(self) -> dict[str, list[SimConnection]]:
        """Subscribed connections per topic (for tests)."""
        return {n: list(t.subs) for n, t in self.topics.items() if t.subs}
