"""GET /api/session-metrics/stream: intervals, events, Last-Event-ID, limits, leaks, stalls."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.support.session_metrics import App, SseReader, running_app, wait_for

STREAM = "/api/session-metrics/stream"


async def open_stream(app: App, headers: dict[str, str] | None = None) -> SseReader:
    response = await app.client.get(STREAM, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return SseReader(response)


async def test_health_and_metrics_at_once_then_metrics_every_interval() -> None:
    async with running_app(snapshot_interval=0.3) as app:
        reader = await open_stream(app)
        first = [await reader.next(), await reader.next()]
        assert [m.event for m in first] == ["health", "metrics"]
        assert first[0].data["status"] == "healthy" and first[1].id is None
        started = time.monotonic()
        following = await reader.until(lambda m: m.event == "metrics", timeout=5)
        waited = time.monotonic() - started
        assert app.sample("sse_clients") == 1
        reader.response.close()
    # within one interval of the connect-time snapshot (generous margin for a shared CI machine)
    assert waited < 0.3 + 1.0
    assert following.data["timestamp"] > first[1].data["timestamp"]
    assert following.data["sse_clients"] == 1


async def test_each_recorded_event_arrives_with_its_id_and_heartbeats_flow() -> None:
    async with running_app(snapshot_interval=0.1) as app:
        reader = await open_stream(app)
        await app.json("/api/session-metrics/cache/clear", method="POST")
        cleared = await reader.until(lambda m: m.event == "event")
        assert cleared.data["type"] == "cache_cleared"
        assert cleared.id == str(cleared.data["id"]) == str(app.runtime.events.last_id)
        await reader.until(lambda m: reader.heartbeats > 0, timeout=5)  # heartbeat every 0.3 s here
        reader.response.close()


async def test_last_event_id_replays_what_the_ring_holds_then_continues() -> None:
    async with running_app() as app:
        events = app.runtime.events
        start = events.last_id
        for n in range(3):
            events.record("cache_cleared", f"clear {n}")
        reader = await open_stream(app, {"Last-Event-ID": str(start + 1)})
        replayed = [await reader.until(lambda m: m.event == "event") for _ in range(2)]
        assert [m.data["message"] for m in replayed] == ["clear 1", "clear 2"]
        assert [m.id for m in replayed] == [str(start + 2), str(start + 3)]
        events.record("failover", "live one")
        live = await reader.until(lambda m: m.event == "event")
        assert (live.data["type"], live.id) == ("failover", str(start + 4))
        reader.response.close()

        fresh = await open_stream(app)  # without Last-Event-ID: nothing old is replayed
        events.record("failback", "after connect")
        first_event = await fresh.until(lambda m: m.event == "event")
        assert first_event.data["message"] == "after connect"
        fresh.response.close()


async def test_client_limit_is_a_short_stream_that_sets_retry() -> None:
    """A 200 that ends at once: a browser's EventSource retries on it, never on a 503."""
    async with running_app(sse_max_clients=2) as app:
        readers = [await open_stream(app) for _ in range(2)]
        response = await app.client.get(STREAM)
        body = await response.text()
        assert response.status == 200 and response.headers["Retry-After"] == "5"
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert "retry: 5000\n" in body and "slots are taken" in body and "data:" not in body
        assert app.sample("sse_clients") == 2 and app.sample("sse_max_clients") == 2
        readers[0].response.close()
        await wait_for(lambda: app.sample("sse_clients") == 1, 5)
        again = await open_stream(app)  # a freed slot is usable again
        again.response.close()
        readers[1].response.close()


async def test_200_clients_connect_and_disconnect_without_leaking_tasks() -> None:
    async with running_app() as app:
        await asyncio.sleep(0.3)  # let start-up tasks settle
        baseline = len(asyncio.all_tasks())
        url = app.client.make_url(STREAM)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            responses = await asyncio.gather(*(session.get(url) for _ in range(200)))
            assert all(r.status == 200 for r in responses)
            firsts = await asyncio.gather(*(SseReader(r).next() for r in responses))
            assert {m.event for m in firsts} == {"health"}
            assert app.sample("sse_clients") == 200
            assert len(app.runtime.service.hub) == 200
            for response in responses:
                response.close()
        await wait_for(lambda: app.sample("sse_clients") == 0, 10)
        await wait_for(lambda: len(asyncio.all_tasks()) <= baseline, 10)
        assert len(app.runtime.service.hub) == 0


async def test_a_stalled_client_does_not_hold_up_others_or_the_loop() -> None:
    async with running_app(event_log_size=1000) as app:
        url = app.client.make_url(STREAM)
        # A client that never reads: the server's writes to it back up in its own handler only.
        stalled_session = aiohttp.ClientSession(read_bufsize=2**10)
        stalled = await stalled_session.get(url)
        reader = await open_stream(app)
        payload = "x" * 10_000
        for n in range(1000):  # ~10 MB the stalled client never takes
            app.runtime.events.record("slow_operation", f"bulk {n}", blob=payload)
            if n % 100 == 0:
                await asyncio.sleep(0)
        app.runtime.events.record("failover", "the one that matters")
        started = time.monotonic()
        got = await reader.until(
            lambda m: m.event == "event" and m.data["type"] == "failover", timeout=20
        )
        assert got.data["message"] == "the one that matters"
        hub = app.runtime.service.hub
        cursors = sorted(sub.cursor for sub in hub._subscribers)
        assert cursors[0] < app.runtime.events.last_id == cursors[-1]  # the stalled one is behind
        # the loop stays responsive while one handler is stuck in a write
        assert (await app.client.get("/-/healthy")).status == 200
        assert time.monotonic() - started < 15
        assert all(len(sub.pending) <= 2 for sub in hub._subscribers)  # O(1) state per client
        reader.response.close()
        stalled.close()
        await stalled_session.close()
        await wait_for(lambda: app.sample("sse_clients") == 0, 10)


async def test_shutdown_ends_open_streams_promptly() -> None:
    async with aiohttp.ClientSession() as outside:  # stays connected while the server stops
        async with running_app() as app:
            response = await outside.get(app.client.make_url(STREAM))
            reader = SseReader(response)
            await reader.next()
            started = time.monotonic()
        stopped_in = time.monotonic() - started
        while True:  # the server ended the stream: the client sees its end
            try:
                await reader.next(timeout=2)
            except EOFError:
                break
    assert stopped_in < 5  # graceful shutdown would otherwise wait up to 60 s for the handler
