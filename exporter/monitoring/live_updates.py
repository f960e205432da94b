"""Fan-out of live updates to stream subscribers (the SSE clients), with O(1) state per subscriber.

A subscriber does not get a queue. It holds the newest `metrics` and `health` payload (a newer one
replaces an unsent older one: only the latest snapshot matters) and a cursor into the shared
event ring, from which it reads the events it has not sent yet. Publishing is therefore a few
assignments per subscriber and never waits; a slow client only falls behind in its own cursor
(and, if the ring overwrites what it had not read, misses those events, as after a reconnect
with an old `Last-Event-ID`).

    >>> from prometheus_client import CollectorRegistry
    >>> from exporter.core.metrics import Metrics
    >>> hub = Broadcaster(EventLog(10, Metrics(CollectorRegistry())), max_clients=1)
    >>> sub = hub.subscribe()
    >>> hub.publish("metrics", {"ops": 1})
    >>> [(m.event, m.data) for m in sub.take()]
    [('metrics', '{"ops":1}')]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from exporter.core.event_log import Event, EventLog
from exporter.monitoring import payloads

MAX_EVENTS_PER_TAKE = 100
# The latest-only messages, in the order a subscriber gets them.
SNAPSHOT_KINDS = ("health", "metrics", "fleet")


class TooManySubscribers(Exception):
    """The configured limit of concurrent subscribers is reached."""


@dataclass(frozen=True, slots=True)
class Message:
    event: str
    data: str
    id: str | None = None


# Structs (exporter.monitoring.payloads) by msgspec, everything else by orjson; unknown types as str
# by both.
_struct_encoder = msgspec.json.Encoder(enc_hook=str)


def event_body(event: Event) -> payloads.Event:
    return payloads.Event(event.id, event.type, event.message, event.timestamp, event.details)


def encode(payload: Any) -> str:
    if isinstance(payload, msgspec.Struct):
        return _struct_encoder.encode(payload).decode()
    return orjson.dumps(payload, default=str).decode()


class Subscriber:
    """One client's pending state; `wait()` returns when there is something to send or on close."""

    __slots__ = ("_wake", "closed", "cursor", "pending")

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.pending: dict[str, str] = {}
        self.closed = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    def take(self, events: EventLog | None = None) -> list[Message]:
        """What to send now: unsent events (oldest first, bounded), then health, metrics, fleet."""
        messages: list[Message] = []
        if events is not None:
            fresh = [event for event in events.since(self.cursor)][:MAX_EVENTS_PER_TAKE]
            messages.extend(
                Message("event", encode(event_body(event)), str(event.id)) for event in fresh
            )
            if fresh:
                self.cursor = fresh[-1].id
                if len(fresh) == MAX_EVENTS_PER_TAKE:
                    self.wake()  # more to read: come back after sending these
        for kind in SNAPSHOT_KINDS:
            data = self.pending.pop(kind, None)
            if data is not None:
                messages.append(Message(kind, data))
        return messages


class Broadcaster:
    """Subscribers of one app; the event log wakes them, the service publishes snapshots."""

    def __init__(
        self,
        events: EventLog,
        max_clients: int,
        on_count: Callable[[int], None] | None = None,
    ) -> None:
        self.events = events
        self.max_clients = max_clients
        self._subscribers: set[Subscriber] = set()
        self._on_count = on_count
        self._closed = False
        events.add_listener(self._on_event)

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, last_event_id: int | None = None) -> Subscriber:
        """A new subscriber that replays events after `last_event_id` (none: only new ones)."""
        if self._closed:
            raise TooManySubscribers("shutting down")
        if len(self._subscribers) >= self.max_clients:
            raise TooManySubscribers(f"all {self.max_clients} stream slots are taken; retry later")
        newest = self.events.last_id
        # An id from before a restart may be ahead of this ring: resume from now, never re-send.
        cursor = newest if last_event_id is None or last_event_id > newest else last_event_id
        subscriber = Subscriber(cursor)
        self._subscribers.add(subscriber)
        self._count()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.closed = True
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            self._count()

    def publish(self, kind: str, payload: Any) -> None:
        """Hand a snapshot (`metrics`, `health`, `fleet`) to every subscriber, encoded once."""
        data = encode(payload)
        for subscriber in self._subscribers:
            subscriber.pending[kind] = data
            subscriber.wake()

    def close(self) -> None:
        """Shutting down: every subscriber ends its stream."""
        self._closed = True
        for subscriber in list(self._subscribers):
            subscriber.closed = True
            subscriber.wake()
        self.events.remove_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        for subscriber in self._subscribers:
            subscriber.wake()

    def _count(self) -> None:
        if self._on_count is not None:
            self._on_count(len(self._subscribers))
