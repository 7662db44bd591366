"""Replay a recording into a backtest loop: the strategy code that runs live runs unchanged on
a recorded day, fed by ``tickwire replay`` over the venue's own protocol.

    python examples/backtest_replay.py --sim --duration 10   # record 10 s from the simulator, then replay it
    python examples/backtest_replay.py --data data           # a recording made with tickwire record

The strategy is a toy market maker on OKX BTC-USDT: it quotes one lot at the best bid and ask
(``@quotes``), is filled when a trade prints at or through its price, keeps its inventory within
limits and marks its PnL to the mid. ``replay(speed=0)`` serves the recording as fast as the loop
reads it, and the feed ends by itself at the end of the recording.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path

import tickwire

BOOK, TRADES = "okx:books:BTC-USDT", "okx:trades:BTC-USDT"
LOT, MAX_INVENTORY = Decimal("0.001"), Decimal("0.005")


class MarketMaker:
    def __init__(self) -> None:
        self.bid: Decimal | None = None
        self.ask: Decimal | None = None
        self.mid = Decimal(0)
        self.inventory = Decimal(0)
        self.cash = Decimal(0)
        self.fills = 0

    def on_event(self, ev: tickwire.Event) -> None:
        if isinstance(ev, tickwire.Quote) and ev.bid and ev.ask:
            bid, ask = Decimal(ev.bid), Decimal(ev.ask)
            self.mid = (bid + ask) / 2
            self.bid = bid if self.inventory < MAX_INVENTORY else None
            self.ask = ask if self.inventory > -MAX_INVENTORY else None
        elif isinstance(ev, tickwire.Trade):
            px = Decimal(ev.price)
            if ev.side == "sell" and self.bid is not None and px <= self.bid:      # a seller hit our bid
                self.inventory += LOT
                self.cash -= LOT * self.bid
                self.fills += 1
                self.bid = None
            elif ev.side == "buy" and self.ask is not None and px >= self.ask:     # a buyer lifted our ask
                self.inventory -= LOT
                self.cash += LOT * self.ask
                self.fills += 1
                self.ask = None
        elif isinstance(ev, tickwire.Gap):
            self.bid = self.ask = None                                             # stop quoting a broken book

    @property
    def pnl(self) -> Decimal:
        return self.cash + self.inventory * self.mid


async def run_strategy(feed: object, mm: MarketMaker) -> int:
    """The loop a live run uses too."""
    n = 0
    async for ev in feed:  # type: ignore[attr-defined]
        mm.on_event(ev)
        n += 1
    return n


async def record(data: Path, seconds: float) -> None:
    from tickwire.sinks import Recorder

    rec = Recorder(str(data))
    async with tickwire.stream(BOOK, TRADES, sim=True) as feed:
        rec.attach(feed)  # the raw archive (data/raw) is what the replay serves
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        async for ev in feed:
            rec.add(ev)
            if loop.time() >= end:
                break
    rec.close()


async def main(args: argparse.Namespace) -> None:
    from tickwire.sim.replay import ReplayServer

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="tw-backtest-")) / "data"
    if args.sim:
        await record(data, args.duration)
        print(f"recorded {args.duration:g} s from the simulator into {data}")
    mm = MarketMaker()
    async with ReplayServer(data / "raw", speed=0, close_at_end=True) as rp:
        async with tickwire.stream(f"{BOOK}@quotes", TRADES, endpoints=rp.endpoints) as feed:
            n = await run_strategy(feed, mm)
    print(f"replayed {n} events: {mm.fills} fills, inventory {mm.inventory}, PnL {mm.pnl:.4f} USDT "
          f"(marked at mid {mm.mid})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="store_true", help="first record --duration seconds from the simulator")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds to record with --sim")
    ap.add_argument("--data", help="a recorded dataset (with its raw archive)")
    args = ap.parse_args()
    if not args.sim and not args.data:
        ap.error("give --data DIR, or --sim to record from the simulator first")
    asyncio.run(main(args))
