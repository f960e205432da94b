"""The event log: a bounded ring of typed events with increasing ids.

Producers (stores, managers, the service) call `record`; consumers (the JSON API, SSE) read
`since(last_id)` or subscribe to be woken. Messages and text details pass through
`exporter.core.redaction.redact` on the way in (an error text may quote a URL with its password).
Persistence to a Redis stream is layered on top by the service through `add_listener`, so this
module does no I/O.

    >>> from prometheus_client import CollectorRegistry
    >>> log = EventLog(2, Metrics(CollectorRegistry()))
    >>> log.record("failover", "Redis unreachable; serving from memory").id
    1
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from exporter.core.metrics import Metrics
from exporter.core.redaction import redact
from exporter.core.vocabulary import EVENT_TYPES


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    message: str
    timestamp: float
    details: dict[str, Any] = field(default_factory=dict)


EventListener = Callable[[Event], None]


class EventLog:
    def __init__(self, capacity: int, metrics: Metrics) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._listeners: list[EventListener] = []
        self._counters = {t: metrics.events.labels(t) for t in EVENT_TYPES}

    def record(self, type: str, message: str, **details: Any) -> Event:
        """Append an event; `type` must be one of metrics.EVENT_TYPES (labels stay bounded)."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = Event(next(self._ids), type, redact(message), time.time(), _redacted(details))
        self._events.append(event)
        self._counters[type].inc()
        for listener in self._listeners:
            listener(event)
        return event

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def since(self, last_id: int = 0) -> list[Event]:
        """Events newer than `last_id` still held by the ring, oldest first."""
        return [event for event in self._events if event.id > last_id]

    def recent(self, limit: int = 20) -> list[Event]:
        return list(self._events)[-limit:]

    @property
    def last_id(self) -> int:
        """Id of the newest event held, 0 when empty."""
        return self._events[-1].id if self._events else 0

    def restore(self, history: Iterable[Event]) -> int:
        """Put events from before this process (a persisted stream) ahead of the ring's contents.

        Ids are renumbered so they keep increasing in ring order, hence: call at start-up, before
        any reader has seen an id. Listeners and counters are not told: these events were counted
        when they happened. Returns how many were restored.
        """
        merged = [*history, *self._events]
        restored = len(merged) - len(self._events)
        self._ids = itertools.count(1)
        self._events.clear()
        for event in merged:
            self._events.append(dataclasses.replace(event, id=next(self._ids)))
        return restored

    def ingest(self, event: Event) -> Event:
        """Append an event another replica recorded (read from the shared stream): listeners are
        told, counters are not (it was counted by the replica where it happened)."""
        local = dataclasses.replace(
            event,
            id=next(self._ids),
            message=redact(event.message),
            details=_redacted(event.details),
        )
        self._events.append(local)
        for listener in self._listeners:
            listener(local)
        return local

    def __len__(self) -> int:
        return len(self._events)


def _redacted(details: dict[str, Any]) -> dict[str, Any]:
    return {
        key: redact(value) if isinstance(value, str) else value for key, value in details.items()
    }
