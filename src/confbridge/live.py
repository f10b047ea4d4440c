"""Live events inside the control plane: publish by topic, subscribe with a bounded queue.

The web pages stream an occurrence's site statuses from here (server-sent events). Publishers
are request handlers, some running in the thread pool, so `publish` may be called from any
thread; subscribers are coroutines on the server's event loop.

`InProcessBus` serves one process. Several control-plane replicas need a shared backend (Redis
pub/sub): such a bus implements the same `LiveBus` protocol, publishing to Redis and fanning the
messages it receives out to its local subscribers the way `InProcessBus` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from confbridge_kernel.contracts import FloorState, SfuEvent

log = logging.getLogger(__name__)

# Messages kept per subscriber; a slower subscriber loses the oldest ones first.
DEFAULT_QUEUE_SIZE = 256


def occurrence_topic(occurrence_id: int) -> str:
    """The topic that carries an occurrence's SFU events and floor changes."""
    return f"occurrence:{occurrence_id}"


class Subscription:
    """One subscriber's queue on one topic; `get()` waits for the next message.

    `dropped` counts the messages lost because the subscriber fell behind; a subscriber that
    sees it grow should re-read the state it keeps from the database.
    """

    def __init__(self, topic: str, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.topic = topic
        self.dropped = 0
        self.closed = False
        self._loop = loop
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=size)

    async def get(self) -> dict[str, Any] | None:
        """The next message, or None once the bus has closed."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def get_nowait(self) -> dict[str, Any] | None:
        """The next message if one is waiting (None when none is, or the bus has closed)."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def offer(self, message: dict[str, Any] | None) -> None:
        """Queue `message` from any thread (None ends the subscription)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(message)
            return
        # A closed loop raises RuntimeError: nobody is listening there any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._put, message)

    def _put(self, message: dict[str, Any] | None) -> None:
        if message is None:
            self.closed = True
        while self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)


class LiveBus(Protocol):
    """What the web pages and publishers need of a live bus."""

    def publish(self, topic: str, payload: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> Any:
        """An async context manager yielding a `Subscription`."""
        ...

    def close(self) -> None: ...


class InProcessBus:
    """A `LiveBus` for one process: messages go to the subscribers of this process only."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._topics: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Hand `payload` to every current subscriber of `topic`; never blocks."""
        with self._lock:
            subscribers = list(self._topics.get(topic, ()))
        for subscription in subscribers:
            subscription.offer(payload)

    def subscriber_count(self, topic: str) -> int:
        with self._lock:
            return len(self._topics.get(topic, ()))

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        """Receive what is published on `topic` from now on, until the block ends."""
        subscription = Subscription(topic, asyncio.get_running_loop(), self.queue_size)
        with self._lock:
            self._topics.setdefault(topic, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                subscribers = self._topics.get(topic)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._topics[topic]

    def close(self) -> None:
        """End every current subscription (their `get()` returns None), e.g. at shutdown."""
        with self._lock:
            subscribers = [s for group in self._topics.values() for s in group]
        for subscription in subscribers:
            subscription.offer(None)


def get_live_bus(request: Request) -> LiveBus:
    return request.app.state.live  # type: ignore[no-any-return]


LiveBusDep = Annotated[LiveBus, Depends(get_live_bus)]


def publish_events(bus: LiveBus, events: Iterable[SfuEvent]) -> None:
    """Publish SFU events on their occurrences' topics, as JSON-ready dicts (type, site_id...).

    A batch that was partly stored before may be published again: subscribers skip event ids
    they have already seen.
    """
    for event in events:
        # Through JSON text, as when stored: NaN or infinite stats become null.
        bus.publish(occurrence_topic(event.occurrence_id), json.loads(event.model_dump_json()))


def publish_floor(bus: LiveBus, occurrence_id: int, state: FloorState) -> None:
    """Publish a room's floor as a floor command left it."""
    bus.publish(
        occurrence_topic(occurrence_id), {"type": "floor", "floor": state.model_dump(mode="json")}
    )
