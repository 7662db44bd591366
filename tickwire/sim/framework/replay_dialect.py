"""What ``tickwire replay`` needs to know of a venue's protocol: its :class:`ReplayDialect`.

The replay server (:mod:`tickwire.sim.replay`) sends recorded frames back to a client; the venue's
dialect answers the client's own requests (subscribe, login, ping) with the venue's minimal
replies, tells the server which recorded frames were answers to the recording client's requests
(those are not sent again: the client got fresh ones), and may keep an idle socket alive.

A venue simulator names its dialect in ``VenueSim.replay_dialect``; the base class here answers
nothing and recognizes no answer (a venue without a dialect is replayed without acks).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Protocol

import msgspec

__all__ = ["ReplayClient", "ReplayDialect", "arg_key", "json_object"]

_json = msgspec.json.Decoder()


def json_object(payload: bytes) -> dict | None:
    """The JSON object a frame holds; ``None`` when it holds anything else."""
    try:
        msg = _json.decode(payload)
    except msgspec.DecodeError:
        return None
    return msg if isinstance(msg, dict) else None


def arg_key(arg: Mapping[str, Any]) -> str:
    """The subscription key of a JSON-object subscription arg (OKX style): its non-empty fields,
    sorted. A recorded spec with parameters gets the same key from its parameters."""
    return "|".join(f"{k}={arg[k]}" for k in sorted(arg) if arg[k] not in (None, ""))


class ReplayClient(Protocol):
    """The replay connection as a dialect sees it."""

    conn_id: str
    """A random id for the venue's ``connId``/``conn_id`` fields."""

    def send(self, data: bytes) -> bool: ...

    def send_obj(self, obj: Any) -> None: ...


class ReplayDialect:
    """One replay connection's view of its venue's protocol (one instance per connection).

    Subscription keys: :meth:`on_request` returns the keys a subscribe request asked for, in the
    form the replay gives recorded subscriptions: :func:`arg_key` of the arg for a venue whose
    args are JSON objects, else the topic string as the client's spec parser writes it.
    """

    keepalive_s: ClassVar[float] = 0.0
    """If > 0: :meth:`keepalive` is called this often on a socket kept open after its recording ended."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_request(self, conn: ReplayClient, payload: bytes) -> list[str] | None:
        """Answer one client message; the subscribed keys (``None``: not a subscribe)."""
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        """A recorded frame that answered one of the recording client's requests."""
        return False

    def keepalive(self, conn: ReplayClient) -> None:
        """Keep an idle socket alive (e.g. the venue's server pings)."""
