"""Computed streams: book snapshots at an interval and depth, quotes, trade bars — live and
from recordings, the same events in both.

* Live: a spec with a view, ``SPEC@VIEW`` (``okx:books:BTC-USDT@snapshot10_1s``,
  ``bybit.linear:publicTrade:BTCUSDT@bars1m``), in :func:`tickwire.stream` or ``tickwire tail``
  (:mod:`.live`).
* From a recorded dataset: :func:`tickwire.derive.offline.derive` /
  ``tickwire derive --data DIR SPEC@VIEW ...`` (Parquet tables, :mod:`.offline`).
* The views and their syntax: :mod:`.spec`; the computations, shared by both: :mod:`.engine`.
"""

from tickwire.derive.spec import DerivedSubscription, View, parse_view

__all__ = ["DerivedSubscription", "View", "parse_view"]
