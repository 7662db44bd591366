"""A synchronous API for scripts and notebooks: no asyncio in your code.

    for event in tickwire.iterate("okx:books:BTC-USDT@snapshot10_1s", sim=True, duration=10):
        print(event.mid())

    tickwire.run(["bybit.linear:publicTrade:BTCUSDT"], on_event=print)   # until Ctrl-C

The feed runs on its own event loop in a background thread (uvloop where available), exactly as
``async with tickwire.stream(...)`` would; events cross to your thread through a bounded handoff.

The guarantees are the async feed's:

* **Nothing is dropped between iterations.** The loop thread takes an event from the feed only
  when the handoff has room (``handoff``, 10,000 events); while you are slower than the venue,
  events wait in the feed itself, whose policy applies unchanged (socket reads paused for at most
  ``max_pause_s`` at a time so heartbeats keep flowing, then buffered, then — beyond
  ``max_buffer`` — market data dropped and reported in one ``Overflow`` event). The loop never
  blocks on your thread.
* **Clean shutdown.** Leaving the ``for`` loop (``break``, an exception, Ctrl-C), ``close()``,
  the ``with`` block's end, or ``duration`` closes the feed on its loop (connections closed, the
  simulator stopped) and joins the thread. Ctrl-C raises ``KeyboardInterrupt`` in your thread as
  usual, after the feed is closed; :func:`run` returns instead.
* Errors the feed raises (``FeedError``: a refused login, every stream refused…) are raised in
  your thread by the iteration.

Works in Jupyter (the notebook's own loop is left alone).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

from tickwire.model import Event

_END = object()


class _Bridge:
    """The feed's thread and loop, and the handoff. Only :class:`SyncFeed` holds it, and the
    thread holds only this (never the SyncFeed), so a SyncFeed nobody references is collected
    (and closes the feed) even while the thread runs."""

    def __init__(self, specs: Iterable[str], sim: bool | dict = False, duration: float | None = None,
                 handoff: int = 10_000, start_timeout_s: float = 30.0, **options: Any) -> None:
        self._specs = list(specs)
        self._sim = sim
        self._options = options
        self._cap = max(1, int(handoff))
        self._deadline = time.monotonic() + duration if duration is not None else None
        self._q: deque = deque()
        self._cond = threading.Condition()
        self._waiting = False               # the consumer sleeps on _cond
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space: asyncio.Event | None = None  # set by the consumer when the handoff has room
        self._task: asyncio.Task | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._ended = False
        self.full_waits = 0                 # times the loop waited for the consumer (the handoff was full)
        self.feed: Any = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="tickwire-feed", daemon=True)
        self._thread.start()
        if not self._started.wait(start_timeout_s):
            self.close()
            raise TimeoutError(f"the feed did not start within {start_timeout_s} s")
        if self._error is not None and self.feed is None:
            err, self._error = self._error, None
            self.close()
            raise err

    # -- the loop thread --------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - Windows
            loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._task = loop.create_task(self._pump())
            loop.run_until_complete(self._task)
        except BaseException:  # cancelled by close(), or the feed's error (kept in _error)
            pass
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._started.set()
                self._put(_END)

    async def _pump(self) -> None:
        from tickwire import stream

        self._space = asyncio.Event()
        q, cap = self._q, self._cap
        try:
            async with stream(*self._specs, sim=self._sim, **self._options) as feed:
                self.feed = feed
                self._started.set()
                async for ev in feed:
                    while len(q) >= cap:
                        self._space.clear()
                        if len(q) >= cap:
                            self.full_waits += 1
                            await self._space.wait()
                    self._put(ev)
        except asyncio.CancelledError:
            pass
        except BaseException as e:
            self._error = e
        finally:
            self._started.set()

    def _put(self, item: Any) -> None:
        self._q.append(item)
        if self._waiting:
            with self._cond:
                self._cond.notify()

    # -- the consumer's thread ------------------------------------------------------------------
    def next(self) -> Event:
        q = self._q
        deadline = self._deadline
        while True:
            if deadline is not None and not self._ended and time.monotonic() >= deadline:
                self.close()       # duration reached: stop here (what was handed over is dropped)
                q.clear()
                self._ended = True
                raise StopIteration
            if q:
                item = q.popleft()
                if len(q) == self._cap - 1 and self._space is not None:
                    self._wake_producer()
                if item is _END:
                    self._ended = True
                    self._join()
                    if self._error is not None:
                        err, self._error = self._error, None
                        raise err
                    raise StopIteration
                return item
            if self._ended:
                raise StopIteration
            timeout = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
            try:
                with self._cond:
                    self._waiting = True
                    if not q:
                        self._cond.wait(timeout)
                    self._waiting = False
            except KeyboardInterrupt:
                self.close()
                raise

    def _wake_producer(self) -> None:
        loop = self._loop
        if loop is not None and self._space is not None:
            try:
                loop.call_soon_threadsafe(self._space.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the feed on its loop and join the thread (idempotent). Events already handed
        over stay readable; the iteration then ends."""
        if self._closed:
            return
        self._closed = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._join(timeout_s)

    def _join(self, timeout_s: float = 10.0) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    # -- the running feed -----------------------------------------------------------------------
    def call(self, fn: Callable[[Any], Any], timeout_s: float = 10.0) -> Any:
        """``fn(feed)`` on the feed's loop thread (a coroutine function's result is awaited)."""
        if self._loop is None or self.feed is None or self._closed:
            raise RuntimeError("the feed is not running")

        async def go() -> Any:
            r = fn(self.feed)
            return await r if asyncio.iscoroutine(r) else r

        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout_s)



class SyncFeed:
    """What :func:`iterate` returns: an iterator of events, and a context manager.

    ``close()`` ends it (also done when it is garbage collected); ``subscribe``/``unsubscribe``
    change the running feed (computed ``SPEC@VIEW`` streams too); ``call(fn)`` runs ``fn(feed)``
    on the feed's loop thread and returns its result (e.g. ``call(lambda f: f.stats())``)."""

    def __init__(self, specs: Iterable[str], sim: bool | dict = False, duration: float | None = None,
                 handoff: int = 10_000, **options: Any) -> None:
        options.setdefault("computed", True)  # so that subscribe() takes SPEC@VIEW later
        self._bridge = _Bridge(specs, sim=sim, duration=duration, handoff=handoff, **options)

    def __iter__(self) -> "SyncFeed":
        return self

    def __next__(self) -> Event:
        return self._bridge.next()

    def close(self, timeout_s: float = 10.0) -> None:
        self._bridge.close(timeout_s)

    def __enter__(self) -> "SyncFeed":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        b = getattr(self, "_bridge", None)
        if b is not None:
            try:
                b.close(2.0)
            except Exception:
                pass

    @property
    def feed(self) -> Any:
        """The async feed (touch it only through :meth:`call`: it lives on another thread)."""
        return self._bridge.feed

    def call(self, fn: Callable[[Any], Any], timeout_s: float = 10.0) -> Any:
        return self._bridge.call(fn, timeout_s)

    def subscribe(self, *specs: str) -> Any:
        return self._bridge.call(lambda f: f.subscribe(*specs))

    def unsubscribe(self, *specs: str) -> Any:
        return self._bridge.call(lambda f: f.unsubscribe(*specs))


def iterate(*specs: str, sim: bool | dict = False, duration: float | None = None, handoff: int = 10_000,
            **options: Any) -> SyncFeed:
    """``for event in tickwire.iterate(*specs, **options)``: the events of :func:`tickwire.stream`
    (computed ``SPEC@VIEW`` streams included) in a plain ``for`` loop. ``duration`` (s) ends the
    iteration after that long; other keyword arguments are :func:`tickwire.stream`'s."""
    return SyncFeed(specs, sim=sim, duration=duration, handoff=handoff, **options)


def run(specs: Iterable[str] | str, on_event: Callable[[Event], Any], sim: bool | dict = False,
        duration: float | None = None, **options: Any) -> int:
    """Call ``on_event(event)`` for every event until ``duration`` (s), Ctrl-C, or the end of the
    feed; returns the number of events. Ctrl-C closes the feed cleanly and returns. An exception
    raised by ``on_event`` closes the feed and propagates."""
    n = 0
    specs = [specs] if isinstance(specs, str) else list(specs)
    with iterate(*specs, sim=sim, duration=duration, **options) as it:
        try:
            for ev in it:
                on_event(ev)
                n += 1
        except KeyboardInterrupt:
            it.close()
    return n
