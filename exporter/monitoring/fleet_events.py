"""The event log's durable copy: a capped Redis stream shared by every replica.

The in-process ring (`EventLog`) stays the source for the API and SSE; this module appends each
event to `<prefix>events` (XADD MAXLEN ~ N) in a background task and reads the newest N back at
start-up, so events survive a restart; while running it tails the stream (one XREAD a second) and
adds what other replicas record to the ring, so every replica's API and SSE show the fleet's
events. Redis trouble never reaches a caller: events wait in a bounded buffer, the failure is
logged once and counted, and they are written when Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import deque
from typing import Any

import orjson

from exporter.core.event_log import Event, EventLog
from exporter.core.metrics import Metrics
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.core.vocabulary import EVENT_TYPES
from exporter.store.redis_client import RedisClient

log = logging.getLogger(__name__)

BATCH = 100


def replica_id() -> str:
    """Which app wrote an event: host, pid and a per-app suffix (tests run several apps in one
    process), nothing secret."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def encode_event(event: Event, replica: str) -> dict[Any, Any]:
    return {
        "type": event.type.encode(),
        "message": event.message.encode(),
        "timestamp": repr(event.timestamp).encode(),
        "details": orjson.dumps(event.details, default=str),
        "replica": replica.encode(),
    }


def decode_event(stream_id: bytes | str, fields: dict[Any, Any]) -> Event | None:
    """An Event from a stream entry, or None for an entry this version cannot read."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    if text.get("type") not in EVENT_TYPES:
        return None
    try:
        details = orjson.loads(text.get("details") or "{}")
        timestamp = float(text["timestamp"])
    except (KeyError, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(details, dict):
        details = {}
    details = {**details, "replica": text.get("replica", ""), "stream_id": _text(stream_id)}
    return Event(0, text["type"], text.get("message", ""), timestamp, details)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class EventStream:
    """Appends events to a capped stream from a background task; `start()` reads history back."""

    def __init__(
        self,
        redis: RedisClient,
        key: str,
        events: EventLog,
        metrics: Metrics,
        *,
        maxlen: int = 1000,
        timeout: float = 1.0,
        retry_interval: float = 1.0,
        tail_interval: float = 1.0,
    ) -> None:
        self.redis = redis
        self.key = key
        self.events = events
        self.maxlen = maxlen
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.tail_interval = tail_interval
        self.replica = replica_id()
        self._last_stream_id: bytes | str = "0-0"
        self.written = 0
        self._failures = metrics.event_stream_failures
        self._pending: deque[Event] = deque(maxlen=maxlen)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tail: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> int:
        """Restore history into the log, then start writing; returns how many were restored."""
        restored = 0
        try:
            restored = self.events.restore(await self._read_history())
        except Exception as exc:  # history is a nicety: start without it
            self._fail("read", exc)
        self.events.add_listener(self._append)
        self._task = asyncio.create_task(self._run(), name="event-stream-writer")
        self._tail = asyncio.create_task(self._follow(), name="event-stream-tail")
        return restored

    async def stop(self) -> None:
        """Stop listening, try one last flush within the timeout, and end the writer."""
        self.events.remove_listener(self._append)
        await cancel_and_wait(self._task, self._tail)
        self._task = self._tail = None
        with contextlib.suppress(Exception):
            await self._flush()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _append(self, event: Event) -> None:
        if "stream_id" in event.details:  # came from the stream (another replica): already there
            return
        self._pending.append(event)  # bounded: the oldest unwritten event goes first
        self._wake.set()

    async def _read_history(self) -> list[Event]:
        async with asyncio.timeout(self.timeout):
            entries: Any = await self.redis.xrevrange(self.key, count=self.maxlen)
        if entries:
            self._last_stream_id = entries[0][0]  # the newest: tailing starts after it
        decoded = (decode_event(stream_id, fields) for stream_id, fields in reversed(entries or []))
        return [event for event in decoded if event is not None]

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()  # redis-py may have swallowed the cancel of close()
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                raise_if_cancelled()
                try:
                    await self._flush()
                except Exception as exc:  # Redis down or slow: keep the events, retry later
                    self._fail("write", exc)
                    await asyncio.sleep(self.retry_interval)
                    continue
                self._recovered()

    async def _follow(self) -> None:
        """Add other replicas' new events to the ring, one XREAD per interval."""
        while True:
            raise_if_cancelled()  # as in _run: else close() waits for this loop for ever
            await asyncio.sleep(self.tail_interval)
            try:
                await self._read_new()
            except Exception as exc:  # Redis down or slow: try again next interval
                self._fail("read", exc)

    async def _read_new(self) -> None:
        async with asyncio.timeout(self.timeout):
            reply: Any = await self.redis.xread({self.key: self._last_stream_id}, count=BATCH)
        streams = reply.items() if isinstance(reply, dict) else reply or []  # RESP3 or RESP2 shape
        for _, entries in streams:
            for stream_id, fields in entries:
                self._last_stream_id = stream_id
                if _text(fields.get(b"replica", b"")) == self.replica:
                    continue  # our own, already in the ring
                event = decode_event(stream_id, fields)
                if event is not None:
                    self.events.ingest(event)

    async def _flush(self) -> None:
        batch = [self._pending[i] for i in range(min(BATCH, len(self._pending)))]
        if not batch:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.xadd(
                    self.key,
                    encode_event(event, self.replica),
                    maxlen=self.maxlen,
                    approximate=True,
                )
            async with asyncio.timeout(self.timeout):
                await pipe.execute()
        for _ in batch:  # new events may have pushed old ones out meanwhile; drop what was written
            if self._pending and self._pending[0] in batch:
                self._pending.popleft()
        self.written += len(batch)

    def _fail(self, what: str, exc: BaseException) -> None:
        self._failures.inc()
        if not self._failing:
            log.warning(
                "event stream %s failed (%s); events stay in memory until Redis answers",
                what,
                type(exc).__name__,
            )
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.info("event stream writes resumed")
        self._failing = False
