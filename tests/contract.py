"""Reading a session's output in tests through its one way out, :meth:`Session.drain`.

Everything drained is also kept on the session (``_taken``), so a test can look at the frames
sent and, later, at the events and actions (close, fatal, failover, REST fetch) given so far.
"""

from __future__ import annotations

from typing import Any

from tickwire.model import Event, VenueError
from tickwire.venues.base import Close, Fatal, FailOver, FetchSnapshot, Send


def take(s: Any) -> list[Any]:
    items = s.drain()
    s.__dict__.setdefault("_taken", []).extend(items)
    return items


def sends(s: Any, priority: int | None = None) -> list[Send]:
    """Frames queued since the last call (drains the session)."""
    take(s)
    taken = s.__dict__.setdefault("_taken", [])
    start = s.__dict__.get("_sends_seen", 0)
    s._sends_seen = len(taken)
    return [x for x in taken[start:] if type(x) is Send and (priority is None or x.priority == priority)]


def events(s: Any) -> list[Event]:
    """Events given outside on_frame (timers, REST, start) so far."""
    take(s)
    return [x for x in s._taken if isinstance(x, Event)]


def actions(s: Any, cls: type) -> list[Any]:
    take(s)
    return [x for x in s._taken if type(x) is cls]


def closed_reason(s: Any) -> str | None:
    """Why the session asked to close its connection (Close or Fatal), or None."""
    for x in (take(s), s._taken)[1]:
        if type(x) is Close:
            return x.reason
        if type(x) is Fatal:
            return x.error.msg
    return None


def fatal(s: Any) -> VenueError | None:
    """The error of the Fatal action the session gave, or None."""
    found = actions(s, Fatal)
    return found[0].error if found else None


__all__ = ["Close", "FailOver", "Fatal", "FetchSnapshot", "Send", "actions", "closed_reason", "events", "fatal",
           "sends", "take"]
