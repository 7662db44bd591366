"""python-okx (OKX's official SDK), unchanged: only base URLs point at `tickwire sim --tls`.

WebSocket URLs are the constructors' ``url`` argument, REST the ``domain`` argument. The CA comes
from SSL_CERT_FILE (python-okx's SSL context is ``ssl.create_default_context()``, which reads it,
plus certifi; httpx reads it too). Scenarios: ``public`` (REST instruments + time, books and
trades), ``private`` (login, orders/account/positions pushes).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from _common import args, report

ready, scenario, seconds = args()
v = ready["venues"]["okx"]


async def main() -> None:
    seen: dict[str, list[Any]] = {}

    def cb(message: str) -> None:
        m = json.loads(message)
        key = m.get("arg", {}).get("channel", "") if "data" in m else m.get("event", "?")
        seen.setdefault(key, []).append(m)

    def n(k: str) -> int:
        return len(seen.get(k, []))

    async def until(cond: Any) -> bool:
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            if cond():
                return True
            await asyncio.sleep(0.05)
        return cond()

    if scenario == "public":
        import okx.PublicData as PublicData
        from okx.websocket.WsPublicAsync import WsPublicAsync

        api = PublicData.PublicAPI(flag="0", domain=v["rest"], debug=False)
        inst = (await asyncio.to_thread(api.get_instruments, instType="SWAP", instId="BTC-USDT-SWAP"))["data"][0]
        t = (await asyncio.to_thread(api.get_system_time))["data"][0]["ts"]
        ws = WsPublicAsync(url=v["url"] + "/ws/v5/public")
        await ws.start()
        await ws.subscribe([{"channel": "books", "instId": "BTC-USDT"}, {"channel": "trades", "instId": "BTC-USDT"}], cb)
        ok = await until(lambda: n("books") >= 10 and n("trades") >= 2)
        await ws.stop()
        report(ok, tick=inst["tickSz"], lot=inst["lotSz"], ct_val=inst["ctVal"], server_time=t,
               books=n("books"), trades=n("trades"), first_book_action=seen.get("books", [{}])[0].get("action"))
    elif scenario == "private":
        from okx.websocket.WsPrivateAsync import WsPrivateAsync

        ws = WsPrivateAsync(apiKey="sim-key", passphrase="sim-passphrase", secretKey="sim-secret",
                            url=v["url"] + "/ws/v5/private")
        await ws.start()
        await ws.subscribe([{"channel": "orders", "instType": "ANY"}, {"channel": "account"},
                            {"channel": "positions", "instType": "ANY"}], cb)
        ok = await until(lambda: n("orders") >= 2 and n("account") >= 1)
        await ws.stop()
        report(ok, login=[m.get("code") for m in seen.get("login", [])], orders=n("orders"), account=n("account"),
               positions=n("positions"),
               states=sorted({d["state"] for m in seen.get("orders", []) for d in m["data"]}))
    else:
        report(False, error=f"unknown scenario {scenario}")


asyncio.run(main())
