"""The subscription ledger: one connection's subscribe/unsubscribe lifecycle, written once.

Every session owns one (``session.ledger``). It

* sends requests: ``subscribe``/``unsubscribe`` of streams, chunked at the session's
  ``args_per_request``, each remembered by an id until the venue answers. Nothing goes out
  before :meth:`Ledger.open` (the session opens it at start, or once logged in);
* knows which topics are **live** (a subscribe went out and no refusal or unsubscribe since):
  only those are unsubscribed, and a resync unsubscribes only those;
* carries out the venue's answers, once the session's envelope classification has found the
  request they answer (:meth:`match` by id, by a topic the answer names, or by a topic quoted
  in its text; :meth:`oldest` for venues that answer in order and name nothing):
  :meth:`failed` (the request was refused as a whole, perhaps naming the culprit topics) and
  :meth:`refused` (these topics were refused on their own). The session's
  :meth:`~tickwire.venues.base.Session.refusal` says what a code/text means:

  ``FINAL``     the topic will never be served: dropped from the session, recorded in
                ``session.refused`` (the engine never asks for it again), a fatal VenueError for
                its stream. A request of several topics refused as a whole without naming one
                is sent again one topic per request, to find the culprit;
  ``TRANSIENT`` subscribe again later, with the topic's backoff (below); one VenueError;
  ``HARMLESS``  nothing to do (e.g. "already subscribed");
  ``REPORT``    a VenueError per topic, no retry (a code whose meaning is not known).

  A refused unsubscribe is only reported;
* resyncs: :meth:`resync_later` (a broken book) and transient retries schedule one topic's
  unsubscribe (if live) + subscribe, rate-limited per topic: the first resync goes out at once,
  then each waits ``resync_min_interval_s``, doubling up to 30 s, after the previous one
  (a minute of health resets it), so a broken stream can never cause a request storm.
  :meth:`run_due` (from the session's timer) sends the due ones together;
* unanswered requests: a subscribe with neither an answer nor data for a stream within the
  session's ``request_timeout_s`` (30 s, counted from the first timer tick that saw it, so
  requests waiting in the engine's pacer are not cut short) is reported (``no-answer``) and those
  streams are subscribed again with their backoff; a stream whose data flows counts as answered.
  An unanswered unsubscribe is forgotten (late data of a removed stream is ignored anyway).

A venue declares only what differs, on its Session subclass: ``args_per_request``,
``request_frame(op, subs, req_id)``, ``refusal(code, msg)``, and in its envelope
classification how an answer names its request.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Sequence

from tickwire.model import Event, VenueError
from tickwire.subscription import Subscription

if TYPE_CHECKING:
    from tickwire.venues.base import Session, StreamState

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"

# What a refusal means (Session.refusal).
FINAL = "final"
TRANSIENT = "transient"
HARMLESS = "harmless"
REPORT = "report"

_MAX_BACKOFF_S = 30.0
_HEALTHY_NS = 60_000_000_000  # a topic not resynced for this long starts its backoff afresh


class Request(NamedTuple):
    """One request sent and not yet answered."""

    id: str
    op: str                       # SUBSCRIBE or UNSUBSCRIBE
    subs: list[Subscription]
    text: str                     # the frame, as VenueError.request

    @property
    def topics(self) -> list[str]:
        return [s.topic for s in self.subs]


class Ledger:
    """Pending requests, live topics, refusals, retries and resyncs of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.requests: dict[str, Request] = {}   # unanswered, oldest first
        self.live: set[str] = set()
        self.is_open = False
        self._ids = itertools.count(1)
        self._last: dict[str, str] = {}          # topic -> id of the last request naming it
        self._seen_ns: dict[str, int] = {}       # request id -> first timer tick that saw it pending

    # -- requests ------------------------------------------------------------------------------
    def open(self) -> None:
        """Requests may go out from now on: subscribe every stream not yet live."""
        self.is_open = True
        live = self.live
        self.subscribe([st.sub for topic, st in self.session.streams.items() if topic not in live])

    def subscribe(self, subs: Sequence[Subscription]) -> None:
        if subs and self.is_open:
            self._send(SUBSCRIBE, subs)

    def unsubscribe(self, subs: Iterable[Subscription]) -> None:
        """Unsubscribe the live ones of these streams (the others are not served anyway)."""
        live = [s for s in subs if s.topic in self.live]
        if live:
            self._send(UNSUBSCRIBE, live)

    def _send(self, op: str, subs: Sequence[Subscription]) -> None:
        s = self.session
        per = s.args_per_request
        for i in range(0, len(subs), per):
            chunk = list(subs[i:i + per])
            rid = str(next(self._ids))
            frame = s.request_frame(op, chunk, rid)
            topics = [x.topic for x in chunk]
            self.requests[rid] = Request(rid, op, chunk, frame.decode())
            for t in topics:
                self._last[t] = rid
            if op == SUBSCRIBE:
                self.live.update(topics)
            else:
                self.live.difference_update(topics)
            s.send(frame, f"{op} {' '.join(topics)}")

    # -- finding the request an answer is for ----------------------------------------------------
    def accepted(self, req_id: str, topic: str = "") -> None:
        """One stream of a request was accepted, for venues that answer each stream on its own
        (OKX: one ack per arg, all with the request's id). The request stays pending for its
        other streams until each is answered, so an error for one of them still finds it."""
        r = self.requests.get(req_id)
        if r is None:
            return
        rest = [x for x in r.subs if x.topic != topic] if topic else []
        if rest and len(rest) < len(r.subs):
            self.requests[req_id] = r._replace(subs=rest)
        else:
            del self.requests[req_id]

    def match(self, req_id: str = "", topics: Iterable[str] = (), text: str = "",
              op: str | None = None) -> Request | None:
        """Take the unanswered request an answer names: by ``req_id``; else one carrying one of
        ``topics``; else the oldest carrying a topic quoted in ``text`` (of ``op`` if given).
        None if nothing matches (the answer is then only reported)."""
        reqs = self.requests
        if req_id:
            r = reqs.pop(req_id, None)
            if r is not None:
                return r
        if not reqs:
            return None
        for t in topics:
            r = reqs.get(self._last.get(t, ""))  # the usual case: the last request naming it
            if r is None or (op is not None and r.op != op):
                r = next((x for x in reqs.values() if (op is None or x.op == op) and t in x.topics), None)
            if r is not None:
                return reqs.pop(r.id)
        if text:
            for r in reqs.values():
                if (op is None or r.op == op) and any(t in text for t in r.topics):
                    return reqs.pop(r.id)
        return None

    def serving(self, topic: str) -> None:
        """Data arrived for ``topic``: it is subscribed, even if the ack went missing. Its pending
        one-stream subscribe counts as answered (so a later error cannot be matched to it)."""
        r = self.requests.get(self._last.get(topic, ""))
        if r is not None and r.op == SUBSCRIBE and len(r.subs) == 1:
            del self.requests[r.id]

    def oldest(self, op: str | None = None) -> Request | None:
        """Take the oldest unanswered request (of ``op``), for venues that answer in order."""
        for r in self.requests.values():
            if op is None or r.op == op:
                return self.requests.pop(r.id)
        return None

    # -- answers ------------------------------------------------------------------------------
    def failed(self, req: Request | None, code: Any, msg: str, recv_ns: int,
               blamed: Sequence[str] = (), stream: str = "") -> list[Event]:
        """The venue refused ``req`` as a whole; ``blamed``: the topics its answer names as the
        cause (the request's other streams are subscribed again). ``req`` None: no request
        matched, the error is only reported (for ``stream`` if the answer names one)."""
        s = self.session
        if req is None:
            if s.refusal(code, msg) == HARMLESS:
                return []
            return [s.error(code, msg, recv_ns=recv_ns, stream=stream)]
        topics = req.topics
        blamed = [t for t in blamed if t in topics]
        if blamed:
            out = self.refused(blamed, code, msg, recv_ns, req)
            rest = [x for x in req.subs if x.topic not in blamed and x.topic in s.streams]
            if req.op == SUBSCRIBE and rest:
                self.live.difference_update(x.topic for x in rest)
                self.subscribe(rest)
            return out
        if len(topics) > 1 and req.op == SUBSCRIBE and s.refusal(code, msg) == FINAL:
            # Refused for good, but which stream? Ask for each alone: the others will pass.
            self.live.difference_update(topics)
            for x in req.subs:
                if x.topic in s.streams:
                    self._send(SUBSCRIBE, [x])
            return [s.error(code, f"{msg} (subscribing each of {len(topics)} streams alone to find "
                                  "the refused one)", request=req.text, recv_ns=recv_ns)]
        return self.refused(topics, code, msg, recv_ns, req)

    def refused(self, topics: Sequence[str], code: Any, msg: str, recv_ns: int,
                req: Request | None = None) -> list[Event]:
        """The venue refused these topics (of ``req``; None: a subscribe) on their own."""
        s = self.session
        kind = s.refusal(code, msg)
        if kind == HARMLESS or not topics:
            return []
        op = req.op if req is not None else SUBSCRIBE
        request = req.text if req is not None else ""
        named = {x.topic: x for x in req.subs} if req is not None else {}
        streams = s.streams

        def sub_of(t: str) -> Subscription | None:
            st = streams.get(t)
            return st.sub if st is not None else named.get(t)

        if op == UNSUBSCRIBE:
            return [s.error(code, msg, request=request, recv_ns=recv_ns, sub=sub_of(t)) for t in topics]
        self.live.difference_update(topics)
        if kind == REPORT:
            return [s.error(code, msg, request=request, recv_ns=recv_ns, sub=sub_of(t)) for t in topics]
        if kind == TRANSIENT:
            waits = [self.retry_later(st, recv_ns) for st in (streams.get(t) for t in topics) if st is not None]
            text = f"{msg} (retrying in {max(waits):g}s)" if waits else msg
            return [s.error(code, text, request=request, recv_ns=recv_ns,
                            sub=sub_of(topics[0]) if len(topics) == 1 else None)]
        return [self.drop(t, code, msg, recv_ns, request, named.get(t)) for t in topics]

    def drop(self, topic: str, code: Any, msg: str, recv_ns: int, request: str = "",
             sub: Subscription | None = None) -> VenueError:
        """The venue will never serve ``topic`` here: forget it for good; the fatal error for its stream."""
        s = self.session
        st = s.streams.pop(topic, None)
        s.refused.add(topic)
        s.refused_why[topic] = " ".join(str(x) for x in (code, msg) if x not in (None, ""))
        self.live.discard(topic)
        return s.error(code, msg, request=request, recv_ns=recv_ns, fatal=True, sub=st.sub if st is not None else sub)

    # -- resyncs and retries ----------------------------------------------------------------------
    def resync_later(self, st: StreamState, now_ns: int) -> None:
        """A fresh snapshot for this stream: at once, unless it was resynced lately (backoff)."""
        self._schedule(st, now_ns, 0.0)

    def retry_later(self, st: StreamState, now_ns: int) -> float:
        """Subscribe this stream again after a transient refusal; returns the wait in seconds."""
        return self._schedule(st, now_ns, None)

    def _schedule(self, st: StreamState, now_ns: int, wait_s: float | None) -> float:
        if not st.resync_due_ns:
            if now_ns - st.last_resync_ns > _HEALTHY_NS:
                st.resync_backoff_s = 0.0
            backoff = st.resync_backoff_s
            least = self.session.timers.resync_min_interval_s
            if wait_s is None:
                wait_s = max(least, backoff)
            st.resync_due_ns = max(1, now_ns + int(wait_s * 1e9), st.last_resync_ns + int(backoff * 1e9))
            st.resync_backoff_s = min(_MAX_BACKOFF_S, max(least, backoff * 2))
        return (st.resync_due_ns - now_ns) / 1e9

    def check_unanswered(self, now_ns: int) -> None:
        """Requests pending past ``request_timeout_s``: see the module docstring."""
        seen = self._seen_ns
        if not self.requests:
            seen.clear()
            return
        limit = int(self.session.timers.request_timeout_s * 1e9)
        late = []
        for rid, r in self.requests.items():
            t = seen.setdefault(rid, now_ns)
            if now_ns - t > limit:
                late.append((rid, r, t))
        if not late:
            return
        s = self.session
        for rid, r, t in late:
            del self.requests[rid]
            seen.pop(rid, None)
            if r.op != SUBSCRIBE:
                continue
            # (a broken book waiting for its resync's snapshot is the resync timeout's: check_resyncs)
            quiet = [st for st in (s.streams.get(x.topic) for x in r.subs)
                     if st is not None and st.last_rx_ns < t and not st.resync_due_ns and not st.gap_reported]
            if not quiet:
                continue
            waits = [self.retry_later(st, now_ns) for st in quiet]
            s.outbox.append(s.error(
                "no-answer", f"no answer and no data for subscribe {' '.join(st.sub.topic for st in quiet)} "
                f"within {limit / 1e9:g}s; subscribing again in {min(waits):g}s", request=r.text, recv_ns=now_ns,
                sub=quiet[0].sub if len(quiet) == 1 else None))
        for rid in [k for k in seen if k not in self.requests]:
            del seen[rid]

    def run_due(self, now_ns: int) -> None:
        """Send the due resyncs and retries: unsubscribe (the live ones), then subscribe."""
        due = [st for st in self.session.streams.values() if st.resync_due_ns and st.resync_due_ns <= now_ns]
        if due:
            for st in due:
                st.resync_due_ns = 0
                st.last_resync_ns = now_ns
                st.resyncs += 1
            subs = [st.sub for st in due]
            self.unsubscribe(subs)
            self.subscribe(subs)
