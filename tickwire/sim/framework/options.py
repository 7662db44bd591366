"""The timers and limits every venue simulator has (:class:`SimOptions`, subclassed per venue)."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["SimOptions"]


@dataclass
class SimOptions:
    """Timers and limits shared by every venue simulator. Venues subclass this dataclass.

    Build one from a plain mapping with :meth:`from_mapping` (unknown names raise ``ValueError``;
    a mapping given for a field whose default is a dict is merged into the default).
    """

    speed: float = 1.0
    """Global time factor for push cadences and the synthetic market (2.0 = twice as fast).
    Idle, auth and rate-limit timers are not scaled: they have their own options."""
    conn_limit: int = 500
    """New connections allowed per client IP within ``conn_window_s`` (HTTP 429 beyond)."""
    conn_window_s: float = 300.0
    max_conns_per_ip: int = 1000
    """Concurrent connections per client IP and connection group (HTTP 429 beyond)."""
    idle_check_s: float = 1.0
    """How often the idle sweeper looks at the connections."""
    slow_client_timeout_s: float = 30.0
    """A client whose socket stays write-blocked this long is disconnected."""
    market_steps_per_s: float = 100.0
    """Synthetic market events per second and symbol (multiplied by ``speed``)."""
    book_levels: int = 1100
    """Levels kept per book side by the synthetic market (must exceed the largest depth)."""
    trust_forwarded_for: bool = True
    """Key the per-IP counters on the first X-Forwarded-For address when a client sends one
    (lets tests simulate several IPs over loopback). Otherwise the key is the bound host."""
    max_frame_size: int = 1 << 20
    latency_ms: float = 0.0
    """One-way delay added to every frame this simulator sends (data, acks, pongs, close frames),
    so races that only show over a real network (an ack overtaking the client's bookkeeping)
    show on loopback. Frames of one connection keep their order."""
    jitter_ms: float = 0.0
    """Random extra delay per frame, uniform in ``[0, jitter_ms]``, on top of ``latency_ms``
    (never reorders a connection's frames: a frame leaves no earlier than the one before it)."""
    truth: bool = True
    """Keep the ground truth of books and trades (:mod:`.truth`; a few microseconds per book
    update). The fault and limit logs are always kept."""
    garble_detectable: bool = True
    """The ``garble`` fault keeps to corruption a client can recognise (False: any corruption,
    digits changed included; see :mod:`.mutate`)."""
    truth_history: int = 4096
    """Sequences per book stream whose digest :meth:`.truth.BookTruth.digest_at` can still give."""

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "SimOptions":
        opts = cls()
        if not mapping:
            return opts
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in mapping.items():
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"unknown {cls.__name__} option {key!r}{hint}; known: {', '.join(sorted(names))}"
                )
            current = getattr(opts, key)
            if isinstance(current, dict) and isinstance(value, Mapping):
                merged = dict(current)
                merged.update(value)
                value = merged
            elif isinstance(current, bool):
                if isinstance(value, str):  # "false" from a config file or the API is False
                    if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(f"{cls.__name__} option {key}={value!r}: expected true or false")
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                value = bool(value)
            elif isinstance(current, float) and isinstance(value, (int, float, str)):
                value = float(value)
            elif isinstance(current, int) and isinstance(value, (int, str)):
                value = int(value)
            setattr(opts, key, value)
        if opts.speed <= 0:
            raise ValueError("speed must be > 0")
        if opts.latency_ms < 0 or opts.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        return opts

    def push_interval(self, ms: float) -> float:
        """A venue push cadence in seconds, compressed by ``speed``."""
        return max(ms, 0.0) / 1000.0 / self.speed
