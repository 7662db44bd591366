"""Multi-venue spread monitor: BTC's best bid and ask on OKX, Bybit and BG Exchange, and the
best cross-venue spread, printed once a second.

    python examples/spread_monitor.py --sim --duration 10     # offline, against the simulator
    python examples/spread_monitor.py                         # live venues (Ctrl-C to stop)

Uses the synchronous API (no asyncio) and the computed ``@quotes`` stream of each book: one
event each time a venue's best bid or ask changes.
"""

from __future__ import annotations

import argparse
import time

import tickwire

BOOKS = {
    "okx": "okx:books:BTC-USDT@quotes",
    "bybit": "bybit.spot:orderbook.50:BTCUSDT@quotes",
    "bge": "bge:orderbook.0:BTC_USDT@quotes",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="store_true", help="run against the built-in simulator")
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = ap.parse_args()

    best: dict[str, tickwire.Quote] = {}
    next_print = time.monotonic() + 1
    for ev in tickwire.iterate(*BOOKS.values(), sim=args.sim, duration=args.duration):
        if isinstance(ev, tickwire.Quote) and ev.bid and ev.ask:
            best[ev.venue] = ev
        elif isinstance(ev, tickwire.Gap):
            best.pop(ev.venue, None)          # that book is not trustworthy until it resyncs
        if time.monotonic() >= next_print and best:
            next_print += 1
            cols = "  ".join(f"{v}: {q.bid}/{q.ask}" for v, q in sorted(best.items()))
            hi_bid = max(best.values(), key=lambda q: float(q.bid))
            lo_ask = min(best.values(), key=lambda q: float(q.ask))
            edge = float(hi_bid.bid) - float(lo_ask.ask)
            print(f"{cols}  | best bid {hi_bid.venue} {hi_bid.bid}, best ask {lo_ask.venue} {lo_ask.ask}, "
                  f"cross-venue spread {-edge:+.2f}", flush=True)


if __name__ == "__main__":
    main()
