"""Client runners for ``python -m bench throughput`` and their registry.

Runner contract
===============

::

    run(url: str, venue: str, expected_msgs: int) -> dict

``url``
    ``ws://127.0.0.1:PORT/<path>`` of the loopback server (``bench/server.py``) for the venue:
    Bybit ``/v5/public/linear``, OKX ``/ws/v5/public``. Never anything but loopback.
``venue``
    Which stream the server plays (see ``bench/streams.py``):

    ``"bybit"``         subscribe ``orderbook.50.BTCUSDT`` (Bybit v5 linear); book stream
    ``"okx"``           subscribe ``books`` / ``BTC-USDT`` (OKX v5 public); book stream
    ``"bybit-trades"``  subscribe ``publicTrade.BTCUSDT`` (Bybit v5 linear); trades stream

    Raise :class:`NotSupported` (with the reason) for a venue the client does not handle; the
    harness shows the reason instead of a number.
``expected_msgs``
    Number of data frames the server sends after the subscribe: books 1 snapshot + N deltas,
    trades N messages. Data frame ``i`` (0-based) carries exchange time ``ts = TS0 + i`` ms
    (:data:`TS0`), which lets a pull-style client tell which frame its state reflects.

The runner connects, subscribes (any subscribe frame is accepted; the server acks like the
venue), processes frames until it has handled the last data frame, closes, and returns a dict:

``final_bids``, ``final_asks``
    ``dict[str, str]``: price -> size per side as the client holds its book, each as ``str()`` of
    the client's own number type (the harness compares numerically, and reports whether the
    strings are also exactly the venue's). Empty for the trades stream.
``msgs``
    Data frames handled inside the timed window.
``cpu_s``
    Process CPU seconds (``resource.getrusage(RUSAGE_SELF)`` user+sys, all threads) in the window.
``wall_s``
    Wall seconds in the window.

The timed window runs from just after the first data frame (the book snapshot) was handled to
just after the last one was, so ``msgs`` is normally ``expected_msgs - 1``: deltas only.
:class:`bench.clients._meter.Meter` implements this. Optional keys: ``trades`` (int) and
``last_trade_id`` (str) for the trades stream (checked against the generator), ``loop`` (event
loop used) and ``note`` (shown in RESULTS.md).

Each runner is executed by ``bench/runner.py`` in its own fresh process, pinned to one core,
with the project venv's interpreter (``sys.executable``) unless :data:`CLIENT_ENV` says
``"peers"`` (``bench/.venv-peers/bin/python``). Keep this module stdlib-only: the peers
interpreter imports it too.

Adding a client (e.g. tickwire)
-------------------------------
Write ``bench/clients/<name>.py`` with a ``run`` of the signature above and register it::

    CLIENTS["tickwire"] = _lazy(".tickwire_client")           # project venv by default
    CLIENT_VENUES["tickwire"] = ("bybit", "okx", "bybit-trades")  # optional

Rows appear in registry order.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

TS0 = 1_760_000_000_000  # same constant as bench.streams.TS0

VENUES = ("bybit", "okx", "bybit-trades")

Runner = Callable[[str, str, int], dict[str, Any]]


class NotSupported(Exception):
    """Raised by a runner for a venue/stream it does not handle."""


def _lazy(module: str, attr: str = "run") -> Runner:
    """A runner that imports its module only when called (in the runner's own process)."""

    def run(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
        mod = importlib.import_module(module, __name__)
        return getattr(mod, attr)(url, venue, expected_msgs)

    run.__qualname__ = run.__name__ = f"run[{module}]"
    run.module = module  # type: ignore[attr-defined]
    return run


CLIENTS: dict[str, Runner] = {
    "floor": _lazy(".floor"),
    "tickwire": _lazy(".tickwire_client"),
    "tickwire+metrics": _lazy(".tickwire_client", "run_with_metrics"),
    "cryptofeed": _lazy(".peer_cryptofeed"),
    "ccxt.pro": _lazy(".peer_ccxt"),
    "pybit": _lazy(".peer_pybit"),
    "python-okx": _lazy(".peer_okx"),
}

# Which interpreter runs the client: "project" (default: sys.executable) or "peers".
CLIENT_ENV: dict[str, str] = {
    "cryptofeed": "peers",
    "ccxt.pro": "peers",
    "pybit": "peers",
    "python-okx": "peers",
}

# Streams a client handles (absent: all of VENUES). Others are shown as "n/a" without running.
CLIENT_VENUES: dict[str, tuple[str, ...]] = {
    "pybit": ("bybit", "bybit-trades"),
    "python-okx": ("okx",),
}

# One-line description for RESULTS.md.
CLIENT_DESC: dict[str, str] = {
    "floor": "raw picows + msgspec typed Structs + dict book, uvloop (no events, no integrity)",
    "tickwire+metrics": "tickwire with Prometheus metrics on (metrics_port=0: counters on the hot path, /metrics served)",
    "cryptofeed": "cryptofeed FeedHandler, L2_BOOK / TRADES callbacks",
    "ccxt.pro": "ccxt.pro watch_order_book / watch_trades loop",
    "pybit": "pybit WebSocket(channel_type='linear').orderbook_stream / trade_stream",
    "python-okx": "python-okx WsPublicAsync (raw messages) + hand-written dict book",
}
