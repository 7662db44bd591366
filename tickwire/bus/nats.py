"""The bus on NATS JetStream (client: ``nats-py``; ``pip install 'tickwire[nats]'``).

Publishing is a core NATS publish per message with a ``Nats-Msg-Id`` header and a reply subject
under one wildcard inbox (``<inbox>.<n>``): the stream's confirmation (stream sequence, or
``duplicate`` with the original's sequence, or an error) comes back on it and is matched by
``n``. Nothing waits per message: a :meth:`NatsBus.publish` call writes its messages to the
connection in one buffer, in call order, and confirmations are parsed in bulk where the client
reads its socket. Measured cost per message and the batching policy: ``docs/scale-out.md``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, AsyncIterator

import msgspec

from tickwire.bus.base import AckCallback, Bus, BusError, InMsg, OutMsg, StreamSpec

log = logging.getLogger("tickwire.bus")


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict | None = None


_ack_dec = msgspec.json.Decoder(_PubAck)


def _call(cb: AckCallback, results: list) -> None:
    """A confirmation callback that raises must not stop the client's reading of its socket."""
    try:
        cb(results)
    except Exception:
        log.exception("bus confirmation callback failed")


def _command_end(buf: bytearray) -> int:
    """The end of the first protocol command in ``buf`` (-1: incomplete)."""
    i = buf.find(b"\r\n")
    if i < 0:
        return -1
    if buf.startswith(b"MSG ") or buf.startswith(b"HMSG "):
        end = i + 2 + int(bytes(buf[:i]).split()[-1]) + 2
        return end if len(buf) >= end else -1
    return i + 2


def split_urls(url: str | list[str]) -> list[str]:
    if isinstance(url, list):
        return url
    out = []
    for u in url.split(","):
        u = u.strip()
        if u:
            out.append(u if "://" in u else "nats://" + u)
    return out


class NatsBus(Bus):
    def __init__(self, url: str | list[str], *, name: str = "tickwire", connect_timeout: float = 2.0,
                 reconnect_wait: float = 0.25) -> None:
        self.urls = split_urls(url)
        if not self.urls:
            raise BusError("no bus URL")
        self.name = name
        self.connect_timeout = connect_timeout
        self.reconnect_wait = reconnect_wait
        self.nc: Any = None
        self.js: Any = None
        self.on_state = None
        self._inbox = ""
        self._inbox_b = b""
        self._n = 0
        self._waiting: dict[int, tuple[OutMsg, AckCallback]] = {}
        self._fast_acks = False
        self._connector: asyncio.Task | None = None
        self._closed = False
        self._up = False
        self._ack_sub: Any = None
        self._subs: list[Any] = []
        self._last_error: Exception | None = None  # the client's last connection error (for messages)

    # -- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._up and self.nc is not None and self.nc.is_connected

    def _state(self, up: bool, reason: str) -> None:
        if up == self._up or self._closed:
            return
        self._up = up
        cb = self.on_state
        if cb is not None:
            try:
                cb(up, reason)
            except Exception:
                log.exception("bus state callback failed")

    async def connect(self, wait: bool = True) -> None:
        try:
            import nats  # noqa: F401
        except ImportError as e:  # pragma: no cover
            raise BusError("the NATS client is not installed: pip install 'tickwire[nats]'") from e
        if wait:
            await self._connect_watched()
            return
        self._connector = asyncio.get_running_loop().create_task(self._connect_loop(), name="tickwire:bus-connect")

    @property
    def last_error(self) -> Exception | None:
        """The client's last connection error (to say why the bus is not reachable)."""
        return self._last_error

    def _unreachable(self, why: object) -> None:
        cb = self.on_state
        if cb is not None:  # the owner says it (once, in its own words)
            cb(False, f"bus {','.join(self.urls)} not reachable ({why})")
        else:
            log.warning("bus %s not reachable (%s); waiting for it", ",".join(self.urls), why)

    async def _connect_watched(self) -> None:
        """Connect; the NATS client retries an unreachable server forever without a word, so
        say so (once) when the first attempts have not succeeded, and keep waiting."""
        task = asyncio.ensure_future(self._connect_once())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.connect_timeout + 1.0)
            if not done:
                self._unreachable(self._last_error or "no answer")
            await task
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _connect_loop(self) -> None:
        first = True
        while not self._closed:
            try:
                await self._connect_watched()
                return
            except Exception as e:
                if first:
                    self._unreachable(e)
                    first = False
                await asyncio.sleep(self.reconnect_wait * 2)

    async def _connect_once(self) -> None:
        import nats

        async def disconnected() -> None:
            self._state(False, "disconnected")

        async def reconnected() -> None:
            self._waiting.clear()  # confirmations of the old link will not come: the owner re-sends
            self._state(True, "reconnected")

        async def error(e: Exception) -> None:
            self._last_error = e
            log.debug("bus error: %r", e)

        nc = await nats.connect(self.urls, name=self.name, connect_timeout=self.connect_timeout,
                                reconnect_time_wait=self.reconnect_wait, max_reconnect_attempts=-1,
                                allow_reconnect=True, disconnected_cb=disconnected, reconnected_cb=reconnected,
                                error_cb=error, ping_interval=5, max_outstanding_pings=2,
                                pending_size=64 * 1024 * 1024)
        self.nc = nc
        self.js = nc.jetstream()
        self._inbox = f"_INBOX.tw{secrets.token_hex(8)}"
        self._inbox_b = self._inbox.encode() + b"."
        self._ack_sub = await nc.subscribe(self._inbox + ".*", cb=self._on_ack, pending_msgs_limit=1_000_000,
                                           pending_bytes_limit=256 * 1024 * 1024)
        self._hook_acks(nc)
        await nc.flush()  # the subscription is in place before anything is published (written directly)
        self._state(True, "connected")

    async def close(self) -> None:
        self._closed = True
        if self._connector is not None:
            self._connector.cancel()
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.close(), 5)
            except Exception:
                pass

    async def info(self) -> dict[str, Any]:
        if self.nc is None:
            return {}
        return dict(getattr(self.nc, "_server_info", {}) or {})

    # -- streams -----------------------------------------------------------------------
    async def ensure_streams(self, specs: list[StreamSpec]) -> None:
        from nats.js import api
        from nats.js.errors import BadRequestError

        for s in specs:
            cfg = api.StreamConfig(
                name=s.name, subjects=s.subjects, storage=api.StorageType.FILE, retention=api.RetentionPolicy.LIMITS,
                discard=api.DiscardPolicy.OLD, max_age=s.max_age_s or None, max_bytes=s.max_bytes,
                max_msgs_per_subject=s.max_msgs_per_subject, duplicate_window=s.duplicate_window_s,
                num_replicas=s.replicas, allow_direct=True)
            for attempt in range(100):
                try:
                    try:
                        await self.js.add_stream(cfg)
                    except BadRequestError as e:
                        if getattr(e, "err_code", None) == 10058:  # exists with another configuration
                            await self.js.update_stream(cfg)
                        else:
                            raise
                    break
                except BadRequestError:
                    raise
                except Exception as e:  # cluster still forming, leader election...
                    if attempt == 99:
                        raise BusError(f"cannot create stream {s.name}: {e}") from e
                    await asyncio.sleep(0.1)
            await self._wait_leader(s.name)

    async def _wait_leader(self, stream: str, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                si = await self.js.stream_info(stream)
                if si.cluster is None or si.cluster.leader:
                    return
            except Exception:
                pass
            if loop.time() > end:
                raise BusError(f"stream {stream} has no leader after {timeout} s")
            await asyncio.sleep(0.05)

    async def last_seq(self, stream: str) -> int:
        si = await self.js.stream_info(stream)
        return int(si.state.last_seq)

    async def last(self, stream: str, subject: str) -> InMsg | None:
        from nats.js.errors import NotFoundError

        try:
            m = await self.js.get_last_msg(stream, subject)
        except NotFoundError:
            return None
        return InMsg(m.subject, m.data or b"", int(m.seq), stream)

    async def last_per_subject(self, stream: str, subjects: list[str]) -> list[InMsg]:
        """The last message of every subject matching ``subjects``."""
        from nats.js import api

        cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT, ack_policy=api.AckPolicy.NONE,
                                 inactive_threshold=10.0)
        if len(subjects) == 1:
            cfg.filter_subject = subjects[0]
        else:
            cfg.filter_subjects = subjects
        psub = await self.js.pull_subscribe(subjects[0], stream=stream, config=cfg)
        out: list[InMsg] = []
        try:
            left = (await psub.consumer_info()).num_pending
            while left > 0:
                try:
                    msgs = await psub.fetch(min(left, 1000), timeout=2)
                except asyncio.TimeoutError:
                    break
                for m in msgs:
                    out.append(InMsg(m.subject, m.data, m.metadata.sequence.stream, stream))
                left -= len(msgs)
        finally:
            try:
                await psub.unsubscribe()
            except Exception:
                pass
        return out

    # -- publishing ----------------------------------------------------------------------
    def publish(self, msgs: list[OutMsg], on_acks: AckCallback) -> None:
        """Every message of ``msgs`` as HPUB commands in one buffer, written to the connection's
        transport right now (no task hop, no per-message call into the client). Subjects are
        escaped by the codec and ids are plain ASCII. Confirmations come back in bulk (see
        :meth:`_install_fast_acks`). Not connected: each message comes back at once as not sent."""
        if not msgs:
            return
        nc = self.nc
        if not self.connected:
            on_acks([(m, 0, False, "not connected") for m in msgs])
            return
        transport = getattr(nc, "_transport", None)
        if transport is None or not hasattr(transport, "write"):  # a client without the internals used here
            asyncio.get_running_loop().create_task(self._publish_public(msgs, on_acks))
            return
        if not self._fast_acks:
            self._install_fast_acks()
        waiting = self._waiting
        inbox = self._inbox_b
        n = self._n
        parts: list[bytes] = []
        add = parts.append
        for m in msgs:
            n += 1
            waiting[n] = (m, on_acks)
            data = m.data
            mid = m.msg_id
            if mid:
                mb = mid.encode()
                hl = 27 + len(mb)
                add(b"HPUB %s %s%d %d %d\r\nNATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n"
                    % (m.subject.encode(), inbox, n, hl, hl + len(data), mb))
            else:
                add(b"PUB %s %s%d %d\r\n" % (m.subject.encode(), inbox, n, len(data)))
            add(data)
            add(b"\r\n")
        self._n = n
        try:
            transport.write(b"".join(parts))
        except Exception as e:  # the link broke under us: the owner sends them again on reconnect
            log.debug("bus write failed: %r", e)

    async def _publish_public(self, msgs: list[OutMsg], on_acks: AckCallback) -> None:
        """The same through the client's public API, one call per message (slower)."""
        for m in msgs:
            self._n += 1
            self._waiting[self._n] = (m, on_acks)
            try:
                await self.nc.publish(m.subject, m.data, reply=f"{self._inbox}.{self._n}",
                                      headers={"Nats-Msg-Id": m.msg_id} if m.msg_id else None)
            except Exception as e:
                self._waiting.pop(self._n, None)
                _call(on_acks, [(m, 0, False, f"not sent: {e!r}")])

    def _install_fast_acks(self) -> None:
        """Confirmations are parsed in bulk right where the client reads from its socket: a run
        of PubAcks (``MSG <inbox>.<n> <sid> <len>`` + ``{"stream":..,"seq":..}``) is matched by
        one regular expression and handed over as one list; anything else (the client's own
        traffic, an error reply, a 503 no-responders) goes through the client's parser as usual
        (and confirmations among it through :meth:`_ack`). Measured: the client's parser and one
        coroutine per confirmation were most of the publishing cost."""
        self._fast_acks = True
        nc = self.nc
        ps = getattr(nc, "_ps", None)
        sid = getattr(self._ack_sub, "_id", None)
        if ps is None or sid is None or not hasattr(ps, "buf") or not hasattr(ps, "state"):
            return
        import re

        from nats.protocol import parser as nparser

        one = (rb'MSG ' + re.escape(self._inbox_b) + rb'(\d+) ' + str(sid).encode() + rb' \d+\r\n'
               rb'\{"stream":"[^"\\]*",(?:"domain":"[^"\\]*",)?"seq":(\d+)(,"duplicate": ?true)?\}\r\n')
        one_re = re.compile(one)
        run_re = re.compile(rb"(?:" + one.replace(rb"(\d+)", rb"\d+").replace(rb"(,", rb"(?:,") + rb")+")
        general = nparser.Parser.parse
        control = nparser.AWAITING_CONTROL_LINE
        waiting = self._waiting

        def deliver(found: list[tuple[bytes, bytes, bytes]]) -> None:
            results: list = []
            cb: Any = None
            for key, seq, dup in found:
                entry = waiting.pop(int(key), None)
                if entry is None:
                    continue
                m, f = entry
                if f is not cb:
                    if results:
                        _call(cb, results)
                        results = []
                    cb = f
                results.append((m, int(seq), bool(dup), ""))
            if results:
                _call(cb, results)

        async def parse(data: bytes = b"") -> None:
            buf = ps.buf
            if data:
                buf.extend(data)
            while buf:
                if ps.state != control:
                    await general(ps)
                    if ps.state != control:
                        return  # a message of the client's own traffic is incomplete: wait for more
                    buf = ps.buf
                    continue
                m = run_re.match(buf)
                if m is not None:
                    end = m.end()
                    found = one_re.findall(buf, 0, end)
                    del buf[:end]
                    deliver(found)
                    continue
                end = _command_end(buf)
                if end < 0:
                    return  # incomplete: wait for more
                rest = bytes(buf[end:])
                del buf[end:]
                await general(ps)  # exactly one command of any other kind, by the client's parser
                buf = ps.buf
                if rest:
                    buf.extend(rest)

        ps.parse = parse

    def _hook_acks(self, nc: Any) -> None:
        """Confirmations the bulk parser leaves to the client's parser (error replies, 503 no
        responders...) are handled right where that parser hands over a message (no message
        object, queue or task per confirmation). Any other message goes the client's usual way."""
        orig = getattr(nc, "_process_msg", None)
        sid = getattr(self._ack_sub, "_id", None)
        if orig is None or sid is None:
            return
        on_ack = self._ack

        async def process_msg(sid_: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
            if sid_ == sid:
                on_ack(subject, data, headers)
            else:
                await orig(sid_, subject, reply, data, headers)

        nc._process_msg = process_msg

    def _ack(self, subject: bytes, data: bytes, headers: Any) -> None:
        try:
            entry = self._waiting.pop(int(subject[subject.rfind(b".") + 1:]), None)
        except ValueError:
            return
        if entry is None:
            return
        m, cb = entry
        if not data:
            _call(cb, [(m, 0, False, f"no stream answered ({bytes(headers or b'')[:40]!r})")])
            return
        try:
            a = _ack_dec.decode(data)
        except msgspec.DecodeError:
            _call(cb, [(m, 0, False, f"bad confirmation {data[:80]!r}")])
            return
        if a.error:
            _call(cb, [(m, 0, False, f"{a.error.get('code')} {a.error.get('description', '')}")])
        else:
            _call(cb, [(m, a.seq, a.duplicate, "")])

    async def _on_ack(self, msg: Any) -> None:
        """The subscription's own callback (used only if the hooks above could not be installed)."""
        self._ack(msg.subject.encode(), msg.data, b"")

    async def flush(self) -> None:
        if self.connected:
            await self.nc.flush()

    # -- consuming -----------------------------------------------------------------------
    async def consume(self, stream: str, subjects: list[str], *, start_seq: int = 0, durable: str | None = None,
                      batch: int = 1000, new_only: bool = False, recreate: bool = False,
                      ack_wait_s: float = 60.0, max_ack_pending: int = 200_000) -> AsyncIterator[list[InMsg]]:
        """See :meth:`Bus.consume`. ``recreate``: a durable consumer is created afresh at
        ``start_seq`` (its owner keeps its own exact position, e.g. the bus recorder's checkpoint:
        messages delivered to a killed process are then not held back for ``ack_wait_s``)."""
        from nats.js import api

        if durable:
            cfg = api.ConsumerConfig(durable_name=durable, ack_policy=api.AckPolicy.ALL, ack_wait=ack_wait_s,
                                     max_ack_pending=max_ack_pending, deliver_policy=api.DeliverPolicy.ALL,
                                     max_deliver=-1)
            if len(subjects) == 1:
                cfg.filter_subject = subjects[0]
            else:
                cfg.filter_subjects = subjects
            if start_seq:
                cfg.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
                cfg.opt_start_seq = start_seq
            exists = True
            try:
                await self.js.consumer_info(stream, durable)
            except Exception:
                exists = False
            if exists and recreate:
                await self.js.delete_consumer(stream, durable)
                exists = False
            if not exists:
                await self.js.add_consumer(stream, cfg)
            psub = await self.js.pull_subscribe_bind(durable, stream)
            self._subs.append(psub)
            while True:
                try:
                    msgs = await psub.fetch(batch, timeout=0.5)
                except asyncio.TimeoutError:
                    yield []
                    continue
                except Exception as e:  # link down: nats-py reconnects; try again
                    if self._closed:
                        return
                    log.debug("fetch failed: %r", e)
                    await asyncio.sleep(0.2)
                    yield []
                    continue
                out = []
                for m in msgs:
                    md = m.metadata
                    out.append(InMsg(m.subject, m.data, md.sequence.stream, stream,
                                     int(md.timestamp.timestamp() * 1e9) if md.timestamp else 0, m))
                yield out
        else:
            q: list[InMsg] = []
            ev = asyncio.Event()

            async def cb(m: Any) -> None:
                md = m.metadata
                q.append(InMsg(m.subject, m.data, md.sequence.stream, stream, 0, None))
                ev.set()

            subs = []
            for subj in subjects:
                if start_seq:
                    sub = await self.js.subscribe(subj, stream=stream, cb=cb, ordered_consumer=True,
                                                  deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                                  config=api.ConsumerConfig(opt_start_seq=start_seq),
                                                  pending_msgs_limit=1_000_000)
                else:
                    sub = await self.js.subscribe(subj, stream=stream, cb=cb, ordered_consumer=True,
                                                  deliver_policy=api.DeliverPolicy.NEW if new_only
                                                  else api.DeliverPolicy.ALL, pending_msgs_limit=1_000_000)
                subs.append(sub)
            self._subs.extend(subs)
            try:
                while True:
                    if not q:
                        ev.clear()
                        try:
                            await asyncio.wait_for(ev.wait(), 0.5)
                        except asyncio.TimeoutError:
                            yield []
                            continue
                    out, q[:] = list(q), []
                    yield out
            finally:
                for s in subs:
                    try:
                        await s.unsubscribe()
                    except Exception:
                        pass

    async def ack(self, msg: InMsg) -> None:
        if msg.handle is not None:
            await msg.handle.ack()
