"""BG Exchange instrument list (REST ``GET /v1/products`` on ``https://api.bg.exchange/hk``) and
unified symbols.

Pure functions, as for every venue (:mod:`tickwire.instruments` fetches, caches, refreshes):
:func:`paths`, :func:`unpack`, :func:`to_instrument`, :func:`derive_usymbol`.

Reply (BGE docs "Obtaining All Known Trading Products"; bge.md §1 gives the host): a plain JSON
array of products::

    [{"product": "ETH_USD", "base_currency": "ETH", "quote_currency": "USD", "display_name": "ETH_USD",
      "status": "on", "quote_precision": "5", "trade_precision": "8", "amount_precision": "6", ...}]

``trade_precision`` ("precision of the pricing unit") is read as the price's decimals and
``amount_precision`` as the size's: the docs' wording is loose (UNVERIFIED). A ``{"code", "data"}``
envelope (the V2 public endpoints' style) is accepted too.
"""

from __future__ import annotations

from typing import Any, Iterable

from tickwire.instruments import Instrument
from tickwire.subscription import Subscription

REST = {"mainnet": "https://api.bg.exchange/hk"}
PREFIX = "/hk"            # the REST host's path prefix, kept when the host is overridden
PATH = "/v1/products"


def rest_root(ws_base: str | None, network: str) -> str:
    """The REST root: the override's host (ws->http) with the venue's ``/hk`` prefix, else the venue's."""
    if ws_base:
        scheme, sep, rest = ws_base.partition("://")
        host = rest.split("/", 1)[0]
        return f"{'https' if scheme == 'wss' else 'http'}://{host}{PREFIX}" if sep else ws_base.rstrip("/")
    return REST.get(network, REST["mainnet"])


def paths(subs: Iterable[Subscription]) -> list[str]:
    return [PATH] if any(s.venue == "bge" for s in subs) else []


def unpack(body: Any, path: str) -> tuple[list[dict], str | None, str]:
    if isinstance(body, dict):
        code = body.get("code")
        if code not in (None, 0, 200, "0", "200"):
            raise ValueError(f"code {code} {body.get('message') or body.get('msg') or ''}".strip())
        body = body.get("data")
    if not isinstance(body, list):
        raise ValueError(f"unexpected reply: {type(body).__name__}")
    return [x for x in body if isinstance(x, dict)], None, "spot"


def _step(decimals: Any) -> str:
    """``8`` -> ``0.00000001``; "" when it is not a number of decimals."""
    try:
        n = int(decimals)
    except (TypeError, ValueError):
        return ""
    if n < 0:
        return ""
    return "1" if n == 0 else "0." + "0" * (n - 1) + "1"


def to_instrument(d: dict, _ctx: str = "spot") -> Instrument | None:
    g = d.get
    product = g("product") or g("display_name") or ""
    if not product:
        return None
    base, _, quote = product.partition("_")
    base, quote = g("base_currency") or base, g("quote_currency") or quote
    return Instrument(venue="bge", market="spot", symbol=product, usymbol=f"{base}/{quote}", type="spot", base=base,
                      quote=quote, tick_size=_step(g("trade_precision")), lot_size=_step(g("amount_precision")),
                      status=g("status") or "", raw=d)


def derive_usymbol(market: str, symbol: str) -> str:
    """``BTC_USDT`` -> ``BTC/USDT`` (BG Exchange has one spot market)."""
    base, sep, quote = symbol.partition("_")
    return f"{base}/{quote}" if sep and base and quote and "_" not in quote else ""
