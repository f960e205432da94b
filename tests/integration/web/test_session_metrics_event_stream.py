"""Events in a capped Redis stream: kept across restarts, shared; Redis trouble stays quiet."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tests.support.redis_server import RedisServer
from tests.support.session_metrics import running_app, wait_for

KEY = "sme:events"


def stream_length(redis_server: RedisServer) -> int:
    client = redis_server.client()
    try:
        return int(client.xlen(KEY))
    finally:
        client.close()


async def test_events_survive_a_restart_and_are_read_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with running_app(redis_url=redis_url) as first:
        for scope in ("memory", "all"):
            await first.json(f"/api/session-metrics/cache/clear?scope={scope}", method="POST")
        await wait_for(lambda: stream_length(redis_server) >= 2, 5)

    async with running_app(redis_url=redis_url) as second:
        recent = (await second.json("/api/session-metrics/realtime"))["recent_events"]
        restored = [e for e in recent if e["type"] == "cache_cleared"]
        assert [e["details"]["scope"] for e in restored] == ["memory", "all"]
        assert all(e["details"]["replica"] and e["details"]["stream_id"] for e in restored)
        ids = [e["id"] for e in recent]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # restored events were counted when they happened, not again here
        assert second.sample("events_total", {"type": "cache_cleared"}) == 0
        persistence = await second.json("/api/session-metrics/persistence")
        assert persistence["event_stream"]["enabled"] is True


async def test_stream_is_capped(redis_server: RedisServer, redis_url: str) -> None:
    async with running_app(redis_url=redis_url, event_log_size=20) as app:
        for n in range(500):
            app.runtime.events.record("slow_operation", f"op {n}")
        stream = app.runtime.event_stream
        assert stream is not None
        await wait_for(lambda: stream.pending == 0, 5)
        # MAXLEN ~ trims whole nodes (100 entries): the stream stays near its bound, not at 500.
        assert stream_length(redis_server) <= 20 + 100


async def test_redis_down_keeps_events_in_memory_counts_the_failure_and_writes_them_later(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with running_app(redis_url=redis_url) as app:
        stream = app.runtime.event_stream
        assert stream is not None
        await wait_for(lambda: stream.pending == 0, 5)
        try:
            redis_server.kill()
            for n in range(5):
                app.runtime.events.record("cache_cleared", f"during outage {n}")
            await wait_for(lambda: app.sample("event_stream_failures_total") >= 1, 5)
            assert stream.pending >= 5
            realtime = await app.json("/api/session-metrics/realtime")  # the API does not care
            messages = [event["message"] for event in realtime["recent_events"]]
            assert "during outage 4" in messages
        finally:
            redis_server.start()
        await wait_for(lambda: stream.pending == 0, 10)
        messages = _messages(redis_server)
        assert [f"during outage {n}" for n in range(5)] == [
            m for m in messages if m.startswith("during")
        ]


def _messages(redis_server: RedisServer) -> list[str]:
    client = redis_server.client()
    try:
        return [_message(fields) for _, fields in client.xrange(KEY) or []]
    finally:
        client.close()


def _message(fields: Mapping[bytes | str, bytes | str] | None) -> str:
    """An entry's `message` field (bytes: the client does not decode)."""
    assert fields is not None
    message = fields[b"message"]
    return message.decode() if isinstance(message, bytes) else message


async def test_replicas_see_each_others_events_live(redis_url: str) -> None:
    async with running_app(redis_url=redis_url) as a, running_app(redis_url=redis_url) as b:
        await a.json("/api/session-metrics/cache/clear?scope=memory", method="POST")

        async def seen_on_b() -> list[dict[str, Any]]:
            recent = (await b.json("/api/session-metrics/realtime"))["recent_events"]
            return [e for e in recent if e["type"] == "cache_cleared"]

        for _ in range(100):  # tailing reads once a second
            shared = await seen_on_b()
            if shared:
                break
            await asyncio.sleep(0.05)
        assert len(shared) == 1 and shared[0]["details"]["scope"] == "memory"
        assert shared[0]["details"]["replica"] != ""
        # counted once, where it happened; and not written back to the stream by B
        assert a.sample("events_total", {"type": "cache_cleared"}) == 1
        assert b.sample("events_total", {"type": "cache_cleared"}) == 0
        await asyncio.sleep(1.5)  # A tails too: its own event must not come back as a second copy
        own = (await a.json("/api/session-metrics/realtime"))["recent_events"]
        assert [e["type"] for e in own].count("cache_cleared") == 1
        assert len(await seen_on_b()) == 1
