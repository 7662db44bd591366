"""Prometheus metrics of a running feed (``pip install tickwire[metrics]``).

::

    async with tickwire.stream(*specs, metrics_port=9464) as feed:   # or serve_metrics(feed, 9464)
        ...                                                          # curl 127.0.0.1:9464/metrics

The hot path only updates plain counters (:mod:`tickwire.net.meter`, the readers' frame
counts, the queue's depth and drops); this module turns them into Prometheus metrics when a
scraper asks, on the event loop (the endpoint is a small asyncio HTTP server, so a scrape
sees one consistent state and never races the feed). Names follow Prometheus conventions:
base units (seconds, bytes), ``_total`` for counters, labels of low cardinality (venue,
type, code, reason; ``stream`` only where the metric is per stream by nature).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from typing import Any, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily

LAG_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESYNC_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_KIND_TYPE = {"book": "BookUpdate", "trades": "Trade", "ticker": "Ticker", "candles": "Candle",
              "funding": "Funding", "mark": "MarkPrice", "index": "IndexPrice", "oi": "OpenInterest",
              "liquidations": "Liquidation"}


class _Histogram:
    """Cumulative buckets fed with the samples drained at each scrape (monotonic, as Prometheus wants)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def buckets(self) -> list[tuple[str, int]]:
        out, acc = [], 0
        for b, n in zip(self.bounds, self.counts):
            acc += n
            out.append((repr(b), acc))
        out.append(("+Inf", acc + self.counts[-1]))
        return out


class FeedCollector:
    """A custom collector: reads a feed (and optionally recorders) at scrape time."""

    def __init__(self, feed: Any, recorders: Iterable[Any] = ()) -> None:
        self.feed = feed
        self.meter = feed.enable_metrics()
        self.recorders = list(recorders)
        self.exch = {}     # venue -> _Histogram
        self.delivery = _Histogram(LAG_BUCKETS_S)
        self.resync = {}   # venue -> _Histogram
        self.kinds: dict[str, tuple[str, str]] = {}  # stream spec -> (venue, event type)

    def _drain(self) -> None:
        m = self.meter
        while m.exch_lag:
            venue, ns = m.exch_lag.popleft()
            self.exch.setdefault(venue, _Histogram(LAG_BUCKETS_S)).add(max(0.0, ns / 1e9))
        while m.delivery_lag:
            self.delivery.add(max(0.0, m.delivery_lag.popleft() / 1e9))
        while m.resync_s:
            venue, s = m.resync_s.popleft()
            self.resync.setdefault(venue, _Histogram(RESYNC_BUCKETS_S)).add(s)

    def _kind(self, spec: str) -> tuple[str, str]:
        k = self.kinds.get(spec)
        if k is None:
            sub = next((s for s in self.feed.subscriptions if s.spec == spec), None)
            venue = spec.split(":", 1)[0].split(".", 1)[0]
            k = self.kinds[spec] = (venue, _KIND_TYPE.get(sub.kind, sub.kind) if sub is not None else "other")
        return k

    def collect(self) -> Iterable[Any]:
        from tickwire import __version__

        self._drain()
        feed, m = self.feed, self.meter
        now = time.time_ns()
        yield InfoMetricFamily("tickwire_build", "tickwire version", value={"version": __version__})
        stats = feed.stats()
        frames = CounterMetricFamily("tickwire_frames_received", "WebSocket data frames received", labels=["venue"])
        nbytes = CounterMetricFamily("tickwire_received_bytes", "Payload bytes received", labels=["venue"])
        per_venue: dict[str, list[int]] = {}
        for c in stats:
            acc = per_venue.setdefault(c["venue"], [0, 0])
            acc[0] += c["frames"]
            acc[1] += c["bytes"]
        for v, (f, b) in sorted(per_venue.items()):
            frames.add_metric([v], f)
            nbytes.add_metric([v], b)
        yield frames
        yield nbytes
        events = CounterMetricFamily("tickwire_events", "Events delivered by the feed", labels=["venue", "type"])
        by_type: dict[tuple[str, str], int] = {}
        for spec, c in m.counts.items():
            if spec:
                key = self._kind(spec)
                by_type[key] = by_type.get(key, 0) + c.events
        for (typ, venue), n in m.status_counts.items():
            by_type[(venue, typ)] = by_type.get((venue, typ), 0) + n
        for (venue, typ), n in sorted(by_type.items()):
            events.add_metric([venue, typ], n)
        yield events
        conns = GaugeMetricFamily("tickwire_connections", "Connections by state", labels=["venue", "state"])
        states: dict[tuple[str, str], int] = {}
        for c in stats:
            st = "failed" if c["fatal"] else ("connected" if c["connected"] else "connecting")
            states[(c["venue"], st)] = states.get((c["venue"], st), 0) + 1
        for (v, st), n in sorted(states.items()):
            conns.add_metric([v, st], n)
        yield conns
        rec = CounterMetricFamily("tickwire_reconnects", "Connection attempts after a socket ended or failed",
                                  labels=["venue", "reason"])
        reasons: dict[tuple[str, str], int] = {}
        for c in stats:
            for r, n in c["reconnect_reasons"].items():
                reasons[(c["venue"], r)] = reasons.get((c["venue"], r), 0) + n
        for (v, r), n in sorted(reasons.items()):
            rec.add_metric([v, r], n)
        yield rec
        for name, typ, help_ in (("tickwire_gaps", "Gap", "Integrity breaks (a book lost continuity)"),
                                 ("tickwire_resyncs", "Resynced", "Streams resynced after a gap")):
            fam = CounterMetricFamily(name, help_, labels=["venue"])
            for (t, venue), n in sorted(m.status_counts.items()):
                if t == typ:
                    fam.add_metric([venue], n)
            yield fam
        fam = HistogramMetricFamily("tickwire_resync_duration_seconds", "From a Gap to the stream's Resynced",
                                    labels=["venue"])
        for v, h in sorted(self.resync.items()):
            fam.add_metric([v], h.buckets(), h.sum)
        yield fam
        stuck = GaugeMetricFamily("tickwire_streams_broken", "Streams with a Gap not resynced yet", labels=["venue"])
        for v in sorted({c["venue"] for c in stats}):
            stuck.add_metric([v], sum(len(c["stuck"]) for c in stats if c["venue"] == v))
        yield stuck
        errs = CounterMetricFamily("tickwire_venue_errors", "VenueError events by the venue's code",
                                   labels=["venue", "code"])
        for (v, code), n in sorted(m.errors.items()):
            errs.add_metric([v, code], n)
        yield errs
        fam = HistogramMetricFamily("tickwire_exchange_lag_seconds",
                                    "Exchange time to local receipt, sampled (1 event in 16)", labels=["venue"])
        for v, h in sorted(self.exch.items()):
            fam.add_metric([v], h.buckets(), h.sum)
        yield fam
        fam = HistogramMetricFamily("tickwire_delivery_lag_seconds",
                                    "Local receipt to the consumer taking the event, sampled (1 in 16)")
        fam.add_metric([], self.delivery.buckets(), self.delivery.sum)
        yield fam
        rtt = GaugeMetricFamily("tickwire_ping_rtt_seconds", "Venue heartbeat round trip per connection",
                                labels=["venue", "conn"])
        for c in stats:
            if c["rtt_ms"] is not None:
                rtt.add_metric([c["venue"], c["conn"]], c["rtt_ms"] / 1e3)
        yield rtt
        yield from self._lines(feed)
        age = GaugeMetricFamily("tickwire_stream_last_event_age_seconds",
                                "Seconds since a stream's last event (staleness alerts)", labels=["venue", "stream"])
        for sub in feed.subscriptions:
            c = m.counts.get(sub.spec)
            if c is not None:
                age.add_metric([sub.venue, sub.spec], max(0.0, (now - c.last_ns) / 1e9))
        yield age
        yield GaugeMetricFamily("tickwire_queue_depth_events", "Events waiting for the consumer",
                                value=feed.pending())
        yield CounterMetricFamily("tickwire_overflow_dropped_events", "Market-data events dropped for a slow consumer",
                                  value=feed.dropped())
        if self.recorders:
            rows = CounterMetricFamily("tickwire_recorder_rows", "Rows written per table", labels=["table"])
            wbytes = CounterMetricFamily("tickwire_recorder_written_bytes", "Bytes written per table",
                                         labels=["table"])
            tot_r: dict[str, int] = {}
            tot_b: dict[str, int] = {}
            for r in self.recorders:
                s = r.summary()
                for k, v in s["rows"].items():
                    tot_r[k] = tot_r.get(k, 0) + v
                for k, v in s["bytes"].items():
                    tot_b[k] = tot_b.get(k, 0) + v
            for k, v in sorted(tot_r.items()):
                rows.add_metric([k], v)
            for k, v in sorted(tot_b.items()):
                wbytes.add_metric([k], v)
            yield rows
            yield wbytes


    def _lines(self, feed: Any) -> Iterable[Any]:
        """Per line (host) of venues with several (tickwire.net.lines): heartbeat round trip and
        data lag (p50/p90 over the line policy's window), up, connections, switches; hot standbys."""
        rows = feed.line_stats() if hasattr(feed, "line_stats") else []
        if not rows:
            return
        rtt = GaugeMetricFamily("tickwire_line_rtt_seconds", "Venue heartbeat round trip per host (sliding window)",
                                labels=["venue", "host", "quantile"])
        lag = GaugeMetricFamily("tickwire_line_lag_seconds", "Exchange time to receipt per host (sliding window)",
                                labels=["venue", "host", "quantile"])
        up = GaugeMetricFamily("tickwire_line_up", "1 while the host answers (probes, connects)",
                               labels=["venue", "host"])
        use = GaugeMetricFamily("tickwire_line_connections", "Connections streaming from the host",
                                labels=["venue", "host", "role"])
        for r in rows:
            v, h = r["venue"], r["host"]
            for q, k in (("0.5", "p50"), ("0.9", "p90")):
                if r[f"rtt_{k}_ms"] is not None:
                    rtt.add_metric([v, h, q], r[f"rtt_{k}_ms"] / 1e3)
                if r[f"lag_{k}_ms"] is not None:
                    lag.add_metric([v, h, q], r[f"lag_{k}_ms"] / 1e3)
            up.add_metric([v, h], 1.0 if r["up"] else 0.0)
        roles: dict[tuple[str, str, str], int] = {}
        for c in feed.stats():
            if c["host"] is not None and c["connected"]:
                key = (c["venue"], c["host"], c["role"])
                roles[key] = roles.get(key, 0) + 1
        for (v, h, role), n in sorted(roles.items()):
            use.add_metric([v, h, role], n)
        yield rtt
        yield lag
        yield up
        yield use
        sw = CounterMetricFamily("tickwire_line_switches", "Connections moved to another host, by why",
                                 labels=["venue", "reason"])
        for (v, reason), n in sorted(feed.line_switch_counts().items()):
            sw.add_metric([v, reason], n)
        yield sw
        red = feed.redundancy_stats() if hasattr(feed, "redundancy_stats") else None
        if red is not None:
            yield CounterMetricFamily("tickwire_standby_duplicates", "Copies dropped by the hot standby join",
                                      value=red["duplicates"])


class CollectorMetrics:
    """The bus side of ``tickwire collect`` (a :class:`tickwire.bus.collector.Collector`), read at
    scrape time: is the bus reachable, what waits for it, what it confirmed, retried, dropped."""

    def __init__(self, collector: Any) -> None:
        self.c = collector

    def collect(self) -> Iterable[Any]:
        c = self.c
        pub, bus = c.publisher, c.bus
        if pub is None:
            return
        st = pub.stats
        yield GaugeMetricFamily("tickwire_bus_connected", "1 while the bus is reachable",
                                value=1 if bus is not None and bus.connected else 0)
        state = GaugeMetricFamily("tickwire_bus_publisher_state", "The publisher's state (1 for the current one)",
                                  labels=["state"])
        for name in ("starting", "up", "down", "dropping"):
            state.add_metric([name], 1 if pub.state == name else 0)
        yield state
        yield GaugeMetricFamily("tickwire_bus_pending_messages", "Messages waiting for the bus or its confirmation",
                                value=pub.pending())
        yield GaugeMetricFamily("tickwire_bus_pending_bytes", "Bytes of the messages waiting", value=pub.bytes)
        for name, help_, v in (
                ("tickwire_bus_confirmed_messages", "Messages the bus confirmed stored", st.published),
                ("tickwire_bus_duplicate_messages", "... of which it already had (a twin's, or a retry)",
                 st.duplicates),
                ("tickwire_bus_publish_retries", "Messages sent again (refused or unconfirmed in time)", st.retries),
                ("tickwire_bus_dropped_messages", "Messages dropped: the buffer for the bus was full", st.dropped),
                ("tickwire_bus_dropped_bytes", "Bytes of the dropped messages", st.dropped_bytes),
                ("tickwire_collector_events", "Events the collector put into bus messages", c.stats.events),
                ("tickwire_collector_md_messages", "md.* messages the collector made", c.stats.messages),
                ("tickwire_collector_snapshot_messages", "snap.* book snapshots for late joiners", c.stats.snapshots)):
            yield CounterMetricFamily(name, help_, value=v)


class BusRecorderMetrics:
    """``tickwire record --bus`` (a :class:`tickwire.bus.record.BusRecorder`), read at scrape time:
    is the bus reachable, rows written, commits and how long ago the last one was (a stalled
    recorder), the committed bus position."""

    def __init__(self, rec: Any) -> None:
        self.r = rec

    def collect(self) -> Iterable[Any]:
        from tickwire import __version__

        r = self.r
        yield InfoMetricFamily("tickwire_build", "tickwire version", value={"version": __version__})
        yield GaugeMetricFamily("tickwire_bus_connected", "1 while the bus is reachable",
                                value=1 if r.bus is not None and r.bus.connected else 0)
        rows = CounterMetricFamily("tickwire_recorder_rows", "Rows written per table", labels=["table"])
        for k, v in sorted(r.rows().items()):
            rows.add_metric([k], v)
        yield rows
        for name, help_, v in (
                ("tickwire_bus_recorder_messages", "Bus messages read", r.messages),
                ("tickwire_bus_recorder_duplicate_events", "Events dropped as copies (redundant collectors)",
                 r.duplicates),
                ("tickwire_bus_recorder_redelivered_messages", "Messages the bus sent again that were already "
                                                               "recorded", r.skipped),
                ("tickwire_bus_recorder_commits", "Durable commits (checkpoint, then acknowledgement)", r.commits)):
            yield CounterMetricFamily(name, help_, value=v)
        yield GaugeMetricFamily("tickwire_bus_recorder_committed_md_seq", "Last md stream position committed",
                                value=r.cp.md_seq)
        if r.last_commit_wall is not None:
            yield GaugeMetricFamily("tickwire_bus_recorder_last_commit_age_seconds",
                                    "Seconds since the last commit that had something to commit",
                                    value=max(0.0, time.time() - r.last_commit_wall))


class MetricsServer:
    """``GET /metrics`` on ``host:port``, served on the feed's event loop (``feed=None``: only the
    collectors added with :meth:`add_collector`)."""

    def __init__(self, feed: Any, port: int, host: str = "127.0.0.1", recorders: Iterable[Any] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = FeedCollector(feed, recorders) if feed is not None else None
        if self.collector is not None:
            self.registry.register(self.collector)
        self.host, self.port = host, port
        self._server: asyncio.AbstractServer | None = None

    def add_recorder(self, rec: Any) -> None:
        assert self.collector is not None
        self.collector.recorders.append(rec)

    def add_collector(self, collector: Any) -> None:
        """Serve more metrics (a ``prometheus_client`` collector: ``collect()`` yields families),
        e.g. :class:`CollectorMetrics` of a bus collector."""
        self.registry.register(collector)

    async def start(self) -> "MetricsServer":
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = line.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] in (b"/metrics", b"/"):
                body = generate_latest(self.registry)
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            else:
                body = b"not found: try /metrics\n"
                head = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            writer.write(head + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve_metrics(feed: Any, port: int, host: str = "127.0.0.1", recorders: Iterable[Any] = ()) -> MetricsServer:
    """Start ``/metrics`` for ``feed`` (port 0: a free one; see ``.port``)."""
    return await MetricsServer(feed, port, host, recorders).start()
