"""The venue-independent simulator framework every venue simulator (``tickwire/sim/<venue>.py``) builds on.

* :mod:`.faults` — the fault grammar (:func:`parse_fault`, :func:`parse_duration`) and its
  registry of names;
* :mod:`.options` — :class:`SimOptions`, the timers and limits (a venue subclasses it; every
  timer can be overridden so tests compress time);
* :mod:`.market` and :mod:`.candles` — a deterministic synthetic market (:class:`SymbolSpec`,
  :class:`BookSide`, :class:`Market`, :class:`Trade`) and candles built from its prints
  (:class:`Candle`, :class:`CandleBuilder`);
* :mod:`.server` — :class:`SimConnection` (one client WebSocket), :class:`SimStats`,
  :class:`SlidingWindowCounter`;
* :mod:`.streams` — :class:`Stream` (one topic shared by its subscribers) and :class:`Cadence`
  (one timer per push interval);
* :mod:`.venue` — :class:`VenueSim`, the base class of a venue simulator, and the registry
  (:func:`register_venue`, :data:`VENUE_SIMS`);
* :mod:`.truth` — :class:`Truth`, the ground truth of a simulator (``sim.truth``): books at each
  sequence, trades sent, every fault injected and every limit enforced;
* :mod:`.control` — :class:`ControlServer`, that truth (and fault injection) as JSON over HTTP
  on its own port, for a simulator in another process;
* :mod:`.group` — :class:`ServerGroup`, several venue servers started and stopped together
  (the lifecycle of :class:`tickwire.sim.Simulator` and of the replay server);
* :mod:`.replay_dialect` — :class:`ReplayDialect`, what ``tickwire replay`` needs of a venue's
  protocol (a venue module subclasses it).

No venue protocol knowledge lives here: envelopes, topic names and error strings belong to the
venue modules.
"""

from .control import ControlServer
from .candles import Candle, CandleBuilder, fixed_period_bounds, market_fold
from .faults import GENERIC_FAULTS, Fault, FaultSpec, known_faults, parse_duration, parse_fault, register_faults
from .group import ServerGroup
from .market import BookSide, Market, SymbolSpec, Trade, diff_window, format_units, now_ms
from .options import SimOptions
from .replay_dialect import ReplayClient, ReplayDialect, arg_key, json_object
from .server import SimConnection, SimStats, SlidingWindowCounter
from .streams import Cadence, Stream
from .truth import BookTruth, FaultRecord, LimitRecord, TradeLog, Truth, level_hash, levels_digest
from .venue import VENUE_SIMS, VenueSim, register_venue

__all__ = [
    "BookSide",
    "BookTruth",
    "FaultRecord",
    "LimitRecord",
    "TradeLog",
    "Truth",
    "level_hash",
    "levels_digest",
    "Cadence",
    "Candle",
    "CandleBuilder",
    "ControlServer",
    "Fault",
    "FaultSpec",
    "GENERIC_FAULTS",
    "Market",
    "ReplayClient",
    "ReplayDialect",
    "ServerGroup",
    "SimConnection",
    "SimOptions",
    "SimStats",
    "SlidingWindowCounter",
    "Stream",
    "SymbolSpec",
    "Trade",
    "VENUE_SIMS",
    "VenueSim",
    "arg_key",
    "diff_window",
    "fixed_period_bounds",
    "format_units",
    "json_object",
    "known_faults",
    "market_fold",
    "now_ms",
    "parse_duration",
    "parse_fault",
    "register_faults",
    "register_venue",
]
