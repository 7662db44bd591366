"""Private order and fill logger: every order update and fill of a Bybit account, one line each,
with a running position and realized cash flow per symbol.

    python examples/order_logger.py --sim --duration 10    # the simulator's test account
    TICKWIRE_BYBIT_API_KEY=... TICKWIRE_BYBIT_SECRET=... python examples/order_logger.py

Private streams need a login: tickwire reads the key from the environment (or ``--credentials
FILE`` on the command line, ``credentials=`` in Python); against the simulator its test key is
used. A refused login ends the run with ``FeedError`` (never a retry loop).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from decimal import Decimal

import tickwire

SPECS = ["bybit:order:ANY", "bybit:execution:ANY"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="store_true", help="run against the built-in simulator")
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = ap.parse_args()

    position: dict[str, Decimal] = defaultdict(Decimal)
    cash: dict[str, Decimal] = defaultdict(Decimal)
    try:
        for ev in tickwire.iterate(*SPECS, sim=args.sim, duration=args.duration):
            if isinstance(ev, tickwire.Order):
                print(f"order {ev.symbol} {ev.order_id} {ev.side} {ev.order_type} {ev.status} "
                      f"price={ev.price} size={ev.size} filled={ev.filled_size}", flush=True)
            elif isinstance(ev, tickwire.Fill):
                qty = Decimal(ev.size) if ev.side.lower() == "buy" else -Decimal(ev.size)
                position[ev.symbol] += qty
                cash[ev.symbol] -= qty * Decimal(ev.price) + Decimal(ev.fee or 0)
                print(f"fill  {ev.symbol} {ev.trade_id} {ev.side} {ev.size} @ {ev.price} fee={ev.fee} "
                      f"{ev.liquidity} -> position {position[ev.symbol]} cash {cash[ev.symbol]}", flush=True)
            elif isinstance(ev, (tickwire.VenueError, tickwire.Disconnected)):
                print(f"{type(ev).__name__}: {getattr(ev, 'msg', '') or getattr(ev, 'reason', '')}", flush=True)
    except tickwire.FeedError as e:
        raise SystemExit(f"error: {e}")
    for sym in sorted(position):
        print(f"total {sym}: position {position[sym]}, cash {cash[sym]}")


if __name__ == "__main__":
    main()
