"""The simulators' ground truth over HTTP, on a port of its own (never on a venue's port).

``Simulator(control_port=0)`` / ``tickwire sim --control-port 0`` starts it; its URL is
``sim.control_url`` and ``control`` on the ready line. JSON answers, ``Connection: close``:

=====================================================  =============================================
``GET /``                                               the venues and their URLs
``GET /{venue}/truth``                                  what the truth holds (streams, counts)
``GET /{venue}/faults?since=ID``                        fault occurrences with id > ID
``GET /{venue}/injections?since=ID``                    faults as given
``GET /{venue}/limits?since=ID``                        refusals and closes by the venue's rules
``GET /{venue}/book?stream=S[&depth=N]``                the current book: seq, digest, bids, asks
``GET /{venue}/book?stream=S&seq=N``                    the digest of the book at sequence N (404:
                                                        unknown or too old)
``GET /{venue}/trades?stream=S[&since=K]``              trades sent, from absolute index K; ``next``
``GET /{venue}/stats``                                  the simulator's counters
``POST /{venue}/inject?fault=F``                        inject a fault (the ``--fault`` grammar)
=====================================================  =============================================

A test driving a simulator in another process (say, pinned beside a busy loop) reads the same
truth as one holding the :class:`~tickwire.sim.framework.truth.Truth` object in hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from .venue import VenueSim

log = logging.getLogger("tickwire.sim")

__all__ = ["ControlServer"]

_MAX_REQUEST = 16 * 1024


class _HttpError(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status


class ControlServer:
    """A tiny HTTP/1.1 JSON server over the truth of a group of venue simulators."""

    def __init__(self, venues: dict[str, "VenueSim"], host: str = "127.0.0.1", port: int = 0) -> None:
        self.venues = venues
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body = 500, {"error": "internal error"}
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            if len(head) > _MAX_REQUEST:
                raise _HttpError(413, "request too large")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split()
            if len(parts) < 2:
                raise _HttpError(400, "bad request line")
            status, body = 200, self.answer(parts[0].upper(), parts[1])
        except _HttpError as e:
            status, body = e.status, {"error": str(e)}
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        except Exception as e:  # a bug here must not take the simulator down
            log.exception("sim control endpoint")
            status, body = 500, {"error": f"{type(e).__name__}: {e}"}
        data = json.dumps(body, separators=(",", ":")).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  413: "Payload Too Large"}.get(status, "Error")
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def answer(self, method: str, target: str) -> Any:
        """The JSON answer to ``method target`` (raises :class:`_HttpError`)."""
        u = urlsplit(target)
        q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
        path = [p for p in u.path.split("/") if p]
        if not path:
            return {"venues": {n: {"url": v.url, "rest": v.rest_url} for n, v in self.venues.items()}}
        sim = self.venues.get(path[0])
        if sim is None:
            raise _HttpError(404, f"unknown venue {path[0]!r}; simulated: {', '.join(self.venues)}")
        what = path[1] if len(path) > 1 else "truth"
        truth = sim.truth
        if method == "POST":
            if what != "inject":
                raise _HttpError(405, f"POST only on /{sim.name}/inject")
            try:
                f = sim.inject(q.get("fault", ""))
            except ValueError as e:
                raise _HttpError(400, str(e)) from None
            return {"fault": str(f)}
        if method != "GET" or what == "inject":
            raise _HttpError(405, f"POST /{sim.name}/inject?fault=..." if what == "inject" else "GET or POST")
        since = _int(q.get("since", "0"), "since")
        if what == "truth":
            return truth.summary()
        if what in ("faults", "injections"):
            recs = truth.faults if what == "faults" else truth.injections
            return {what: [r.as_dict() for r in recs if r.id > since]}
        if what == "limits":
            return {"limits": [r.as_dict() for r in truth.limits if r.id > since]}
        if what == "stats":
            d = sim.stats.as_dict()
            counters = getattr(sim, "counters", None)
            if counters:
                d["counters"] = dict(counters)
            return d
        if what == "book":
            stream = q.get("stream", "")
            b = truth.books.get(stream)
            if b is None:
                raise _HttpError(404, f"no book stream {stream!r}; known: {', '.join(sorted(truth.books))}")
            if "seq" in q:
                seq = _int(q["seq"], "seq")
                d = b.digest_at(seq)
                if d is None:
                    raise _HttpError(404, f"{stream}: sequence {seq} unknown or older than the history kept "
                                          f"(oldest {b.oldest_seq()})")
                return {"stream": stream, "seq": seq, "digest": d}
            return b.as_dict(_int(q["depth"], "depth") if "depth" in q else None)
        if what == "trades":
            stream = q.get("stream", "")
            t = truth.trade_logs.get(stream)
            if t is None:
                raise _HttpError(404, f"no trade stream {stream!r}; known: {', '.join(sorted(truth.trade_logs))}")
            items, nxt = t.since(since)
            return {"stream": stream, "trades": [list(x) for x in items], "next": nxt}
        raise _HttpError(404, f"unknown path {u.path!r}")


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _HttpError(400, f"{name} must be an integer, got {text!r}") from None
