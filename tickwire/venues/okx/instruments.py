"""OKX v5 instrument lists (REST ``GET /api/v5/public/instruments``) and unified symbols.

Pure functions, as for every venue (:mod:`tickwire.instruments` fetches, caches, refreshes):
:func:`paths`, :func:`unpack`, :func:`to_instrument`, :func:`derive_usymbol`.

Reply shape (okx.md §3, the ``instruments`` channel has the same schema)::

    {"code": "0", "msg": "", "data": [{"instType": "SWAP", "instId": "BTC-USDT-SWAP",
     "instFamily": "BTC-USDT", "uly": "BTC-USDT", "baseCcy": "", "quoteCcy": "", "settleCcy": "USDT",
     "ctVal": "0.01", "ctMult": "1", "ctValCcy": "BTC", "ctType": "linear", "optType": "", "stk": "",
     "expTime": "", "tickSz": "0.1", "lotSz": "0.01", "minSz": "0.01", "state": "live", ...}]}

One request per ``instType`` (no paging); ``OPTION`` needs ``instFamily``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import quote

from tickwire.instruments import Instrument
from tickwire.subscription import Subscription
from tickwire.venues import get_venue
from tickwire.venues.okx import market_of

PATH = "/api/v5/public/instruments"
MARKETS = {"SPOT": "spot", "MARGIN": "margin", "SWAP": "swap", "FUTURES": "futures", "OPTION": "option"}
_TYPES = {v: k for k, v in MARKETS.items()}


def rest_root(ws_base: str | None, network: str) -> str:
    return get_venue("okx").rest_base(ws_base, network)


def _family(inst_id: str) -> str:
    return "-".join(inst_id.split("-")[:2])


def paths(subs: Iterable[Subscription]) -> list[str]:
    """One list per instrument type the streams trade (an ``ANY`` stream: spot, swap, futures);
    options per family (``BTC-USD``)."""
    types: set[str] = set()
    families: set[str] = set()
    for s in subs:
        if s.venue != "okx":
            continue
        inst, itype = s.params.get("instId", ""), s.params.get("instType", "")
        if inst:
            m = market_of(inst)
            if m == "option":
                families.add(_family(inst))
            elif m in _TYPES:
                types.add(_TYPES[m])
        elif itype in ("SPOT", "MARGIN", "SWAP", "FUTURES"):
            types.add(itype)
        elif itype == "ANY" or s.needs_auth:  # every instrument of the account
            types.update(("SPOT", "SWAP", "FUTURES"))
    out = [f"{PATH}?instType={t}" for t in ("SPOT", "MARGIN", "SWAP", "FUTURES") if t in types]
    out += [f"{PATH}?instType=OPTION&instFamily={quote(f)}" for f in sorted(families)]
    return out


def unpack(body: Any, path: str) -> tuple[list[dict], str | None, str]:
    """``(items, None, "")``: OKX lists are not paged; ValueError for a venue error reply."""
    if not isinstance(body, dict):
        raise ValueError(f"unexpected reply: {type(body).__name__}")
    code = body.get("code")
    if str(code) not in ("0", "None"):
        raise ValueError(f"code {code} {body.get('msg', '')}".strip())
    return [x for x in body.get("data") or [] if isinstance(x, dict)], None, ""


def _ms(v: Any) -> int | None:
    try:
        n = int(v)
    except (TypeError, ValueError):
        return None
    return n * 1_000_000 if n > 0 else None


def yymmdd(expiry_ns: int) -> str:
    return datetime.fromtimestamp(expiry_ns / 1e9, tz=timezone.utc).strftime("%y%m%d")


def to_instrument(d: dict, _ctx: str = "") -> Instrument | None:
    g = d.get
    inst_id, itype = g("instId") or "", g("instType") or ""
    market = MARKETS.get(itype)
    if not inst_id or market is None:
        return None
    common = dict(venue="okx", market=market, symbol=inst_id, tick_size=g("tickSz") or "", lot_size=g("lotSz") or "",
                  min_size=g("minSz") or None, status=g("state") or "", raw=d)
    if market in ("spot", "margin"):
        base, quote_ = g("baseCcy") or "", g("quoteCcy") or ""
        if not base or not quote_:
            base, _, quote_ = inst_id.partition("-")
        return Instrument(**common, usymbol=f"{base}/{quote_}", type="spot", base=base, quote=quote_)
    base, _, quote_ = (g("instFamily") or g("uly") or _family(inst_id)).partition("-")
    settle = g("settleCcy") or (base if quote_ == "USD" else quote_)
    expiry = _ms(g("expTime")) if market != "swap" else None
    usym = f"{base}/{quote_}:{settle}"
    if market in ("futures", "option") and expiry:
        usym += f"-{yymmdd(expiry)}"
    strike = opt = None
    if market == "option":
        strike, cp = g("stk") or "", g("optType") or ""
        usym += f"-{strike}-{cp}"
        opt = {"C": "call", "P": "put"}.get(cp)
    ct_type = g("ctType") or ""
    return Instrument(**common, usymbol=usym, type={"swap": "swap", "futures": "future"}.get(market, "option"),
                      base=base, quote=quote_, settle=settle,
                      linear=(ct_type == "linear") if ct_type else settle != base,
                      contract_value=g("ctVal") or None, contract_currency=g("ctValCcy") or None,
                      multiplier=g("ctMult") or None, expiry_ns=expiry, strike=strike or None, option_type=opt)


def derive_usymbol(market: str, symbol: str) -> str:
    """OKX names are unambiguous: ``BTC-USDT`` -> ``BTC/USDT``, ``BTC-USDT-SWAP`` ->
    ``BTC/USDT:USDT``, ``BTC-USD-SWAP`` -> ``BTC/USD:BTC``, ``BTC-USD-261225`` ->
    ``BTC/USD:BTC-261225``, ``BTC-USD-261225-100000-C`` -> ``BTC/USD:BTC-261225-100000-C``
    (settled in the quote when it is a stablecoin, else in the base)."""
    parts = symbol.split("-")
    if len(parts) < 2 or not all(parts):
        return ""
    base, quote_ = parts[0], parts[1]
    settle = base if quote_ == "USD" else quote_
    if len(parts) == 2:
        return f"{base}/{quote_}" if market not in ("swap", "futures", "option") else ""
    if len(parts) == 3 and parts[2] == "SWAP":
        return f"{base}/{quote_}:{settle}"
    if len(parts) == 3 and parts[2].isdigit() and len(parts[2]) == 6:
        return f"{base}/{quote_}:{settle}-{parts[2]}"
    if len(parts) == 5 and parts[4] in ("C", "P") and parts[2].isdigit() and len(parts[2]) == 6:
        return f"{base}/{quote_}:{settle}-{parts[2]}-{parts[3]}-{parts[4]}"
    return ""
