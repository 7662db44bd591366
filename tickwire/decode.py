"""Offline decoding: recorded frames -> events, through the very same dialect code as live."""

from __future__ import annotations

import time
from typing import Iterable, Iterator

import msgspec

from tickwire.model import Event
from tickwire.venues import get_venue
from tickwire.venues.base import Session

_WRAPPED_KEYS = (b'"frame"', b'"direction"')


def decoder_session(venue_spec: str) -> Session:
    """A session that accepts every topic, for ``venue[.market]`` (e.g. ``bybit.linear``, ``okx``)."""
    name, _, market = venue_spec.lower().partition(".")
    venue = get_venue(name)
    return venue.decoder(venue.decode_endpoint(market))


def frame_of_line(line: bytes) -> bytes | None:
    """One input line -> the frame it holds.

    Accepts raw frames (one per line) and the ``{"source","direction","frame"}`` wrapper
    of the shared example files (only ``server->client`` frames are decoded).
    """
    line = line.strip()
    if not line:
        return None
    if line[:1] == b"{" and _WRAPPED_KEYS[0] in line and _WRAPPED_KEYS[1] in line:
        try:
            obj = msgspec.json.decode(line)
        except msgspec.DecodeError:
            return line
        if isinstance(obj, dict) and "frame" in obj and "direction" in obj:
            if obj.get("direction") != "server->client":
                return None
            frame = obj["frame"]
            return frame.encode() if isinstance(frame, str) else msgspec.json.encode(frame)
    return line


def decode_lines(venue_spec: str, lines: Iterable[bytes], session: Session | None = None) -> Iterator[Event]:
    """Decode newline-separated frames; the receipt clock is the local clock at decode time."""
    s = session or decoder_session(venue_spec)
    for line in lines:
        frame = frame_of_line(line)
        if frame is None:
            continue
        binary = False
        yield from s.decode_safely(frame, binary, time.time_ns())
        yield from drained_events(s)


def drained_events(s: Session) -> list[Event]:
    """The events a session queued outside on_frame; offline, nothing is sent and no action runs."""
    return [x for x in s.drain() if isinstance(x, Event)] if s.outbox else []
