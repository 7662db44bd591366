"""tickwire: reliable, fast, normalized crypto exchange WebSocket market data.

    async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT") as feed:
        async for event in feed:
            ...
"""

from tickwire.book import Book
from tickwire.model import (
    Balance, BookUpdate, Candle, ConnCount, Connected, DexCandle, DexPrice, DexSignal, DexTrade,
    Disconnected, Event, Fill, Funding, Gap, IndexPrice, Liquidation, MarkPrice, Notice, OpenInterest,
    Order, Overflow, Position, Resynced, Ticker, Trade, VenueError, to_dict, to_json,
)
from tickwire.net import Feed, FeedError, FeedOptions, stream
from tickwire.subscription import SpecError, Subscription
from tickwire.venues import parse

__version__ = "0.1.0"


def query(sql: str, data: str = "./data"):  # type: ignore[no-untyped-def]
    """Run SQL over a recorded dataset (DuckDB; one table per kind) -> pandas DataFrame."""
    from tickwire.sinks.query import query as _query

    return _query(sql, data=data)

__all__ = [
    "Balance", "Book", "BookUpdate", "Candle", "ConnCount", "Connected", "DexCandle", "DexPrice",
    "DexSignal", "DexTrade", "Disconnected", "Event", "Feed", "FeedError", "FeedOptions", "Fill",
    "Funding", "Gap", "IndexPrice", "Liquidation", "MarkPrice", "Notice", "OpenInterest", "Order",
    "Overflow", "Position", "Resynced", "SpecError", "Subscription", "Ticker", "Trade", "VenueError",
    "parse", "query", "stream", "to_dict", "to_json",
]
