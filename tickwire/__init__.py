"""tickwire: reliable, fast, normalized crypto exchange WebSocket market data.

    async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT") as feed:
        async for event in feed:
            ...
"""

from tickwire.book import Book
from tickwire.model import (
    Balance, BookUpdate, Candle, ConnCount, Connected, DexCandle, DexPrice, DexSignal, DexTrade,
    Disconnected, Event, Fill, Funding, Gap, IndexPrice, LineSwitch, Liquidation, MarkPrice, Notice,
    OpenInterest, Order, Overflow, Position, Resynced, Ticker, Trade, VenueError, to_dict, to_json,
)
from tickwire.net import Feed, FeedError, FeedOptions
from tickwire.options import OptionError
from tickwire.derive.live import stream  # the feed, plus computed streams (SPEC@VIEW) when asked for
from tickwire.model import BookSnapshot, Quote, TradeBar  # computed streams (tickwire.derive)
from tickwire.sync import iterate, run
from tickwire.subscription import SpecError, Subscription
from tickwire.venues import parse

__version__ = "0.1.0"


def query(sql: str, data: str = "./data", engine: str = "pandas"):  # type: ignore[no-untyped-def]
    """Run SQL over a recorded dataset (DuckDB; one table per kind) -> a pandas DataFrame, or a
    polars DataFrame with ``engine="polars"`` (``pip install tickwire[data]``), or a pyarrow
    Table with ``engine="arrow"``."""
    if engine == "pandas":
        from tickwire.sinks.query import query as _query

        return _query(sql, data=data)
    if engine not in ("polars", "arrow"):
        raise ValueError(f"engine must be 'pandas', 'polars' or 'arrow', not {engine!r}")
    if engine == "polars":
        try:
            import polars  # noqa: F401
        except ImportError:
            raise ImportError("engine='polars' needs polars: pip install 'tickwire[data]'") from None
    from tickwire.sinks.query import run

    def fetch(rel):  # type: ignore[no-untyped-def]
        if rel is None:  # a statement without a result
            if engine == "polars":
                import polars as pl

                return pl.DataFrame()
            import pyarrow as pa

            return pa.table({})
        return rel.pl() if engine == "polars" else rel.arrow().read_all()

    return run(sql, data, fetch)

_SUBPACKAGES = ("bus", "sinks", "sim", "derive", "instruments", "metrics")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """``tickwire.bus.subscribe``, ``tickwire.sinks.Recorder``... after a plain ``import tickwire``
    (imported on first use: they bring heavier dependencies)."""
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"tickwire.{name}")
    raise AttributeError(f"module 'tickwire' has no attribute {name!r}")


__all__ = [
    "Balance", "Book", "BookUpdate", "Candle", "ConnCount", "Connected", "DexCandle", "DexPrice",
    "DexSignal", "DexTrade", "Disconnected", "Event", "Feed", "FeedError", "FeedOptions", "Fill",
    "Funding", "Gap", "IndexPrice", "LineSwitch", "Liquidation", "MarkPrice", "Notice", "OpenInterest",
    "OptionError", "Order",
    "Overflow", "Position", "Resynced", "SpecError", "Subscription", "Ticker", "Trade", "VenueError",
    "iterate", "parse", "query", "run", "stream", "to_dict", "to_json", "BookSnapshot", "Quote", "TradeBar",
]
