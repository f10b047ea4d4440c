"""A live bus shared by control-plane replicas through Redis pub/sub.

Every replica publishes to Redis and listens to every topic there; what it hears it hands to
its own subscribers through an `InProcessBus`. A message published on one replica therefore
reaches the pages connected to any replica, its own included (once, through Redis).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import redis

from confbridge.live import DEFAULT_QUEUE_SIZE, InProcessBus, Subscription

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = 1.0
LISTEN_TIMEOUT_S = 1.0


class RedisBus:
    """A `LiveBus` over Redis: `publish` from any thread, subscribers as `InProcessBus`."""

    def __init__(
        self, url: str, *, prefix: str = "confbridge", queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = f"{prefix}:live:"
        self._local = InProcessBus(queue_size)
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="live-redis", daemon=True)
        self._thread.start()

    def wait_listening(self, timeout_s: float) -> bool:
        """True once the bus is subscribed in Redis (messages published before are not seen)."""
        return self._listening.wait(timeout_s)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Send to every replica; a Redis outage loses live updates, never the request."""
        try:
            self._client.publish(self._prefix + topic, json.dumps(payload, ensure_ascii=False))
        except redis.RedisError as exc:
            log.warning("live event on %s not published (Redis: %s)", topic, exc)

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[Subscription]:
        return self._local.subscribe(topic)

    def subscriber_count(self, topic: str) -> int:
        return self._local.subscriber_count(topic)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=LISTEN_TIMEOUT_S * 3)
        self._local.close()
        self._client.close()

    def _listen(self) -> None:
        # one thread per replica: redis-py's blocking pub/sub, reconnecting after an outage
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(self._prefix + "*")
                self._listening.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                    if message is not None:
                        self._deliver(message)
            except redis.RedisError as exc:
                self._listening.clear()
                log.warning("live bus lost Redis (%s); reconnecting", exc)
                time.sleep(RECONNECT_DELAY_S)
            finally:
                pubsub.close()

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        try:
            payload = json.loads(message["data"])
        except (ValueError, TypeError):
            log.warning("ignored a malformed live message on %s", channel)
            return
        self._local.publish(channel.removeprefix(self._prefix), payload)
