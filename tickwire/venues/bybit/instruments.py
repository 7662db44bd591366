"""Bybit v5 instrument lists (REST ``GET /v5/market/instruments-info``) and unified symbols.

Pure functions: which pages to ask for (:func:`paths`), how a reply unpacks (:func:`unpack`:
items, the next page, the category), one item -> :class:`~tickwire.instruments.Instrument`
(:func:`to_instrument`), and the unified symbol a name alone gives (:func:`derive_usymbol`).
The fetching, caching and refreshing is :mod:`tickwire.instruments`'.

Reply shape (Bybit docs, "Get Instruments Info")::

    {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [{...}],
     "nextPageCursor": "..."}, "time": ...}

``linear``/``inverse`` are paged (``limit`` up to 1000, ``cursor``); ``spot`` is not (``limit`` and
``cursor`` are not valid there); ``option`` returns BTC unless ``baseCoin`` is given.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qs, quote, urlsplit

from tickwire.instruments import Instrument
from tickwire.subscription import Subscription
from tickwire.venues import get_venue
from tickwire.venues.bybit import ANY_SYMBOL, CATEGORIES, PRIVATE

PATH = "/v5/market/instruments-info"
PAGE_LIMIT = 1000

# Quote coins of spot pairs, longest first (a spot name is BASE+QUOTE with no separator: the
# split is a guess until the instrument list says; "" when no known quote ends the name).
SPOT_QUOTES = ("FDUSD", "USDT", "USDC", "USDE", "USD1", "EUR", "BRL", "TRY", "PLN", "DAI", "BTC", "ETH", "MNT")
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                       "DEC"), 1)}


def rest_root(ws_base: str | None, network: str) -> str:
    return get_venue("bybit").rest_base(ws_base, network)


def paths(subs: Iterable[Subscription]) -> list[str]:
    """The first page of each instrument list these streams need: the categories they trade
    (a private all-in-one stream: spot, linear and inverse), options by base coin."""
    cats: set[str] = set()
    option_bases: set[str] = set()
    for s in subs:
        if s.endpoint == PRIVATE:
            if s.market == "option" or s.channel.startswith("greeks"):
                option_bases.add("")  # the venue's default (BTC)
            elif s.market:
                cats.add(s.market)
            else:
                cats.update(("spot", "linear", "inverse"))
        elif s.market == "option":
            option_bases.add(s.symbol.split("-")[0] if s.symbol != ANY_SYMBOL else "")
        elif s.market in CATEGORIES:
            cats.add(s.market)
    out = [category_path(c) for c in CATEGORIES if c in cats and c != "option"]
    out += [category_path("option", b) for b in sorted(option_bases)]
    return out


def category_path(category: str, base_coin: str = "", cursor: str = "") -> str:
    q = f"{PATH}?category={category}"
    if category != "spot":
        q += f"&limit={PAGE_LIMIT}"
    if base_coin:
        q += f"&baseCoin={quote(base_coin)}"
    if cursor:
        q += f"&cursor={quote(cursor, safe='')}"
    return q


def unpack(body: Any, path: str) -> tuple[list[dict], str | None, str]:
    """``(items, next page path or None, category)``; ValueError for a venue error reply."""
    if not isinstance(body, dict):
        raise ValueError(f"unexpected reply: {type(body).__name__}")
    code = body.get("retCode")
    if code not in (0, "0", None):
        raise ValueError(f"retCode {code} {body.get('retMsg', '')}".strip())
    result = body.get("result") or {}
    q = parse_qs(urlsplit(path).query)
    category = result.get("category") or (q.get("category") or [""])[0]
    items = [x for x in result.get("list") or [] if isinstance(x, dict)]
    cursor = result.get("nextPageCursor") or ""
    nxt = None
    if cursor and items and category != "spot":
        nxt = category_path(category, (q.get("baseCoin") or [""])[0], cursor)
    return items, nxt, category


def _ms(v: Any) -> int | None:
    try:
        n = int(v)
    except (TypeError, ValueError):
        return None
    return n * 1_000_000 if n > 0 else None


def yymmdd(expiry_ns: int) -> str:
    return datetime.fromtimestamp(expiry_ns / 1e9, tz=timezone.utc).strftime("%y%m%d")


def to_instrument(d: dict, category: str) -> Instrument | None:
    """One instruments-info item of ``category`` -> Instrument (None if it is not one)."""
    g = d.get
    symbol = g("symbol") or ""
    if not symbol:
        return None
    base, quote_ = g("baseCoin") or "", g("quoteCoin") or ""
    pf = g("priceFilter") or {}
    lf = g("lotSizeFilter") or {}
    common = dict(venue="bybit", market=category, symbol=symbol, base=base, tick_size=pf.get("tickSize") or "",
                  min_size=lf.get("minOrderQty") or None, status=g("status") or "", raw=d)
    if category == "spot":
        return Instrument(**common, usymbol=f"{base}/{quote_}", type="spot", quote=quote_,
                          lot_size=lf.get("basePrecision") or lf.get("qtyStep") or "")
    if category in ("linear", "inverse"):
        linear = category == "linear"
        settle = g("settleCoin") or (quote_ if linear else base)
        future = "Futures" in (g("contractType") or "")
        expiry = _ms(g("deliveryTime")) if future else None
        usym = f"{base}/{quote_}:{settle}" + (f"-{yymmdd(expiry)}" if expiry else "")
        return Instrument(**common, usymbol=usym, type="future" if future else "swap", quote=quote_, settle=settle,
                          linear=linear, contract_value="1", contract_currency=base if linear else quote_,
                          multiplier="1", lot_size=lf.get("qtyStep") or "", expiry_ns=expiry)
    if category == "option":
        parts = symbol.split("-")
        settle = g("settleCoin") or "USDC"
        kind = g("optionsType") or ""
        cp = "C" if kind == "Call" else "P" if kind == "Put" else (parts[3] if len(parts) > 3 else "")
        strike = parts[2] if len(parts) > 2 else ""
        expiry = _ms(g("deliveryTime"))
        usym = f"{base}/{settle}:{settle}-{yymmdd(expiry) if expiry else ''}-{strike}-{cp}"
        return Instrument(**common, usymbol=usym, type="option", quote=settle, settle=settle, linear=True,
                          contract_value="1", contract_currency=base, multiplier="1",
                          lot_size=lf.get("qtyStep") or "", expiry_ns=expiry, strike=strike or None,
                          option_type={"C": "call", "P": "put"}.get(cp))
    return None


def _date(code: str) -> str:
    """``26DEC25`` / ``3JAN23`` -> ``251226`` / ``230103``; "" if it is not a date."""
    day, mon, yy = code[:-5], code[-5:-2], code[-2:]
    if not (day.isdigit() and mon in _MONTHS and yy.isdigit()):
        return ""
    return f"{yy}{_MONTHS[mon]:02d}{int(day):02d}"


def _split_quote(name: str) -> tuple[str, str]:
    for q in SPOT_QUOTES + ("USD",):
        if name.endswith(q) and len(name) > len(q):
            return name[:-len(q)], q
    return "", ""


def derive_usymbol(market: str, symbol: str) -> str:
    """The unified symbol Bybit's naming gives without the instrument list ("" where it is
    ambiguous: an unknown quote, an inverse future's delivery day)."""
    if not symbol or symbol == ANY_SYMBOL:
        return ""
    if market == "spot":
        base, q = _split_quote(symbol)
        return f"{base}/{q}" if q and q != "USD" else ""
    if market == "linear":
        if "-" in symbol:  # USDC futures BTC-26DEC25, USDT futures BTCUSDT-26DEC25
            name, _, code = symbol.partition("-")
            date = _date(code)
            if not date:
                return ""
            base, q = _split_quote(name)
            if not q:
                base, q = name, "USDC"
            return f"{base}/{q}:{q}-{date}" if q in ("USDT", "USDC") else ""
        if symbol.endswith("PERP") and len(symbol) > 4:
            return f"{symbol[:-4]}/USDC:USDC"
        for q in ("USDT", "USDC"):
            if symbol.endswith(q) and len(symbol) > len(q):
                return f"{symbol[:-len(q)]}/{q}:{q}"
        return ""
    if market == "inverse":
        if symbol.endswith("USD") and len(symbol) > 3:
            base = symbol[:-3]
            return f"{base}/USD:{base}"
        return ""  # futures (BTCUSDH26): the delivery day is not in the name
    if market == "option":
        parts = symbol.split("-")
        if len(parts) in (4, 5) and parts[3] in ("C", "P") and _date(parts[1]) and parts[2]:
            settle = parts[4] if len(parts) == 5 else "USDC"
            return f"{parts[0]}/{settle}:{settle}-{_date(parts[1])}-{parts[2]}-{parts[3]}"
        return ""
    return ""
