"""The fault grammar of ``tickwire sim --fault`` and :meth:`VenueSim.inject`.

A fault is ``name``, ``name=value`` and optionally ``@when`` (:func:`parse_fault`); each name has a
:class:`FaultSpec` saying how it takes its value and when it can take effect.

When a fault is applied:

* ``name@5s`` — five seconds after the simulator started (``tickwire sim --fault``) or after
  :meth:`~tickwire.sim.framework.venue.VenueSim.inject` was called;
* ``name@sub`` — at the next subscription a client makes (after its ack and snapshot);
* plain ``name`` — a one-shot fault that acts on what is live (``drop``, ``stall``, ``notice``,
  ``skip-u``, ``skip-seq``…; :attr:`FaultSpec.needs_subscribers`) given at start-up waits for
  the first subscription, since nothing is connected yet; injected at run time it applies now.
  Periodic faults (``…-every``), handshake refusals and switches (``no-ping``, ``sub-fail``)
  apply at once. :data:`GENERIC_FAULTS` are served by every venue simulator; a
venue adds its own names to the grammar with :func:`register_faults` (done by
:func:`~tickwire.sim.framework.venue.register_venue`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

__all__ = ["GENERIC_FAULTS", "Fault", "FaultSpec", "known_faults", "parse_duration", "parse_fault", "register_faults"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int) -> float:
    """Parse ``"5s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a bare number (seconds) into seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"negative duration: {text!r}")
        return float(text)
    m = _DURATION_RE.match(str(text))
    if not m:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 5s, 500ms, 2m, 1h)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True)
class FaultSpec:
    """How a fault name takes its value.

    ``kind`` is one of ``"none"`` (no value allowed), ``"duration"`` (value required, seconds),
    ``"count"`` (optional positive integer, default ``default``), ``"count_or_duration"``
    (a bare integer is a count, a value with a unit is a duration).

    ``needs_subscribers``: a one-shot fault that acts on live connections or streams; given at
    start-up (before any client connected) it waits for the first subscription.
    """

    name: str
    kind: str
    help: str
    default: int | None = None
    needs_subscribers: bool = False


@dataclass(frozen=True)
class Fault:
    """A parsed fault: ``name``, ``value`` (``None``, seconds as ``float`` or a count as ``int``) and
    ``at``: ``None`` (the fault's default timing), a delay in seconds, or ``"sub"`` (the next
    subscription)."""

    name: str
    value: float | int | None = None
    at: float | str | None = None

    def __str__(self) -> str:
        if self.value is None:
            text = self.name
        elif isinstance(self.value, float):
            text = f"{self.name}={self.value:g}s"
        else:
            text = f"{self.name}={self.value}"
        if self.at is None:
            return text
        return f"{text}@{self.at}" if isinstance(self.at, str) else f"{text}@{self.at:g}s"

    def now(self) -> "Fault":
        """The same fault without its timing (what is applied when the time comes)."""
        return Fault(self.name, self.value)


GENERIC_FAULTS: dict[str, FaultSpec] = {
    s.name: s
    for s in (
        FaultSpec("drop", "none", "abruptly close every client connection now (no close frame)",
                  needs_subscribers=True),
        FaultSpec("drop-every", "duration", "drop every connection periodically, e.g. drop-every=5s"),
        FaultSpec("stall", "none", "stop sending anything (pongs included) on every open connection, "
                                   "without closing, until 'clear' or the client leaves", needs_subscribers=True),
        FaultSpec("stall-for", "duration", "stall every open connection for a while, e.g. stall-for=10s",
                  needs_subscribers=True),
        FaultSpec("malformed", "none", "send one frame that is not valid JSON on every connection",
                  needs_subscribers=True),
        FaultSpec("malformed-every", "duration", "send a non-JSON frame periodically, e.g. malformed-every=2s"),
        FaultSpec("reject-connect", "count", "refuse the next N handshakes with HTTP 429 (default 1)", 1),
        FaultSpec("reject-connect-for", "duration", "refuse every handshake with HTTP 429 for a while"),
        FaultSpec("close", "count", "close every connection now with this close code (default 1001), "
                                    "e.g. close=1011", 1001, needs_subscribers=True),
        FaultSpec("garble", "count", "corrupt this percent of the frames sent (default 10), in ways a client can "
                                     "recognise: truncated, wrong types, bad numbers, missing keys, deep nesting, "
                                     "broken compression... (framework/mutate.py), until 'clear'", 10),
        FaultSpec("lose-requests", "count", "lose the next N subscribe requests clients send (default 1): no "
                                            "answer, no subscription, as if lost on the way", 1),
        FaultSpec("clear", "none", "cancel periodic faults, stalls, garbling and pending handshake refusals"),
    )
}

_FAULT_REGISTRY: dict[str, FaultSpec] = dict(GENERIC_FAULTS)


def register_faults(specs: Iterable[FaultSpec]) -> None:
    """Add venue-specific fault names to the grammar known by :func:`parse_fault`."""
    for s in specs:
        old = _FAULT_REGISTRY.get(s.name)
        if old is not None and old.kind != s.kind:
            raise ValueError(f"fault {s.name!r} registered twice with different value kinds")
        _FAULT_REGISTRY[s.name] = s


def known_faults() -> dict[str, FaultSpec]:
    """All fault names known to the grammar (generic ones and those of loaded venues)."""
    return dict(_FAULT_REGISTRY)


def parse_fault(text: str, known: Mapping[str, FaultSpec] | None = None) -> Fault:
    """Parse ``name[=value][@when]`` (e.g. ``"drop-every=5s"``, ``"notice@5s"``, ``"skip-u@sub"``)
    into a :class:`Fault`.

    Raises ``ValueError`` for an unknown name (listing the known ones) or a bad value.
    """
    if isinstance(text, Fault):
        return text
    registry = _FAULT_REGISTRY if known is None else known
    body, at_sep, when = str(text).strip().partition("@")
    at: float | str | None = None
    if at_sep:
        when = when.strip()
        if when == "sub":
            at = "sub"
        else:
            try:
                at = parse_duration(when)
            except ValueError:
                raise ValueError(f"fault {text!r}: '@' takes a delay (e.g. @5s) or 'sub' "
                                 f"(at the next subscription), got {when!r}") from None
    f = _parse_body(body, registry)
    return Fault(f.name, f.value, at) if at is not None else f


def _parse_body(text: str, registry: Mapping[str, FaultSpec]) -> Fault:
    name, sep, raw = text.strip().partition("=")
    name = name.strip()
    spec = registry.get(name)
    if spec is None:
        raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(sorted(registry))}")
    raw = raw.strip()
    if not sep:
        if spec.kind == "duration":
            raise ValueError(f"fault {name!r} needs a duration, e.g. {name}=5s")
        if spec.kind == "count_or_duration":
            raise ValueError(f"fault {name!r} needs a count or a duration, e.g. {name}=10 or {name}=2s")
        return Fault(name, spec.default if spec.kind == "count" else None)
    if spec.kind == "none":
        raise ValueError(f"fault {name!r} takes no value")
    if spec.kind == "count" or (spec.kind == "count_or_duration" and raw.isdigit()):
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"fault {name!r} needs a positive integer, got {raw!r}")
        return Fault(name, int(raw))
    seconds = parse_duration(raw)
    if seconds <= 0:
        raise ValueError(f"fault {name!r} needs a positive duration, got {raw!r}")
    return Fault(name, seconds)
