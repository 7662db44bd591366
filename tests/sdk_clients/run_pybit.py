"""pybit (Bybit's official SDK), unchanged: only its base URLs point at `tickwire sim --tls`.

pybit builds its WebSocket URLs from the module constants ``PUBLIC_WSS`` / ``PRIVATE_WSS`` and its
REST URL in ``HTTP.endpoint``; those are the only things set here. The CA: SSL_CERT_FILE for the
WebSocket side (websocket-client reads OpenSSL's default paths); pybit's REST session sends
prepared requests, which bypasses requests' REQUESTS_CA_BUNDLE, so its ``requests.Session`` is
told the CA file (``session.client.verify``, a plain requests setting). Scenarios: ``public`` (REST instruments + time, orderbook.50 and publicTrade),
``private`` (auth, order/execution/position/wallet pushes), ``badkey`` (wrong secret refused).
"""

from __future__ import annotations

import threading
from typing import Any

import pybit.unified_trading as ut
from pybit.unified_trading import HTTP, WebSocket

from _common import args, report, wait_until

ready, scenario, seconds = args()
v = ready["venues"]["bybit"]
ut.PUBLIC_WSS = v["url"] + "/v5/public/{CHANNEL_TYPE}"
ut.PRIVATE_WSS = v["url"] + "/v5/private"

lock = threading.Lock()
seen: dict[str, list[Any]] = {}


def keep(name: str):
    def cb(msg: dict[str, Any]) -> None:
        with lock:
            seen.setdefault(name, []).append(msg)
    return cb


def n(name: str) -> int:
    with lock:
        return len(seen.get(name, []))


if scenario == "public":
    http = HTTP(testnet=False)
    http.endpoint = v["rest"]
    http.client.verify = ready["tls"]["ca_file"]
    inst = http.get_instruments_info(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    t = http.get_server_time()["result"]
    ws = WebSocket(testnet=False, channel_type="linear")
    ws.orderbook_stream(50, "BTCUSDT", keep("book"))
    ws.trade_stream("BTCUSDT", keep("trade"))
    ok = wait_until(lambda: n("book") >= 20 and n("trade") >= 3, seconds)
    book = ws.data.get("orderbook.50.BTCUSDT") if hasattr(ws, "data") else None
    ws.exit()
    report(ok, tick=inst["priceFilter"]["tickSize"], lot=inst["lotSizeFilter"]["qtyStep"],
           server_time=t["timeSecond"], book_msgs=n("book"), trade_msgs=n("trade"),
           first_trade=seen.get("trade", [{}])[0].get("data", [{}])[0],
           book_levels=[len(book["b"]), len(book["a"])] if book else None)
elif scenario == "private":
    ws = WebSocket(testnet=False, channel_type="private", api_key="sim-key", api_secret="sim-secret")
    ws.order_stream(keep("order"))
    ws.execution_stream(keep("execution"))
    ws.position_stream(keep("position"))
    ws.wallet_stream(keep("wallet"))
    ok = wait_until(lambda: all(n(k) >= 1 for k in ("order", "execution", "position", "wallet")), seconds)
    ws.exit()
    with lock:
        execs = [it for m in seen.get("execution", []) for it in m["data"]]
        orders = [it for m in seen.get("order", []) for it in m["data"]]
    report(ok, counts={k: n(k) for k in ("order", "execution", "position", "wallet")},
           exec_ids=[e["execId"] for e in execs], order_statuses=sorted({o["orderStatus"] for o in orders}))
elif scenario == "badkey":
    errors: list[str] = []
    try:
        ws = WebSocket(testnet=False, channel_type="private", api_key="sim-key", api_secret="wrong", retries=1)
        ws.order_stream(keep("order"))
        wait_until(lambda: False, 3)
        ws.exit()
    except Exception as exc:  # pybit raises on a refused auth
        errors.append(f"{type(exc).__name__}: {exc}")
    report(bool(errors) and n("order") == 0, errors=errors)
else:
    report(False, error=f"unknown scenario {scenario}")
