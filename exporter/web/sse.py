"""GET /api/session-metrics/stream: Server-Sent Events (aiohttp-sse).

On connect the client gets the current `health` and `metrics` (and `fleet` with Redis), then
`metrics` (and `fleet`) every snapshot, `health` every check and on change, one `event` (with
`id:`) per recorded event, and `: ping` heartbeats. `Last-Event-ID` (or `?last_event_id=`)
replays what the event ring still holds.
Each client is one handler task plus aiohttp-sse's ping task; both end when the client goes away,
when a write stalls past SEND_TIMEOUT, or when the app shuts down.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from exporter.monitoring.live_updates import Subscriber, TooManySubscribers, encode
from exporter.monitoring.service import SessionMetricsService
from exporter.web.keys import LIFECYCLE, SETTINGS, get_runtime
from exporter.web.operation import Named
from exporter.web.responses import ApiError

HEARTBEAT_MAX = 15.0
# How often an idle handler checks that its client is still connected.
LIVENESS_POLL = 1.0
# A client that accepts nothing for this long is cut off (aiohttp-sse aborts the transport).
SEND_TIMEOUT = 30.0
RETRY_MS = 2000
# A client turned away at --sse-max-clients tries again after this long.
FULL_RETRY_MS = 5000
_DISCONNECTED = (ConnectionError, RuntimeError, TimeoutError)

# One message of the stream, as OpenAPI 3.1 describes a text/event-stream item.
SERVER_SENT_EVENT = Named(
    "ServerSentEvent",
    {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": ["metrics", "health", "event", "fleet"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": "metrics: a Realtime without recent_events; health: a HealthCheck;"
                " event: an Event; fleet (with Redis): a Fleet, every snapshot",
            },
            "id": {"type": "string", "description": "the event id (event messages only)"},
            "retry": {"type": "integer", "description": "reconnect delay in ms"},
        },
        "required": [],
    },
)


def heartbeat_interval(snapshot_interval: float) -> float:
    """At least every 15 s; more often when snapshots are frequent (tests), never under 50 ms."""
    return max(0.05, min(HEARTBEAT_MAX, snapshot_interval * 3))


def last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID", request.query.get("last_event_id"))
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(
            400, "invalid_last_event_id", "Last-Event-ID must be a non-negative integer event id"
        )
    return value


async def stream(request: web.Request) -> web.StreamResponse:
    runtime = get_runtime(request)
    service = runtime.service
    resume_from = last_event_id(request)
    try:
        subscriber = service.hub.subscribe(resume_from)
    except TooManySubscribers as exc:
        return turned_away(str(exc))
    try:
        heartbeat = heartbeat_interval(request.app[SETTINGS].snapshot_interval)
        response = EventSourceResponse(ping_interval=heartbeat, send_timeout=SEND_TIMEOUT)
        await response.prepare(request)
        if runtime.fleet is not None:
            subscriber.pending["fleet"] = encode(runtime.fleet.view)
        async with response:
            await _pump(request, response, subscriber, service, heartbeat)
        return response
    finally:
        service.hub.unsubscribe(subscriber)


def turned_away(reason: str) -> web.Response:
    """At the client limit: a 200 stream that sets `retry:` and ends at once.

    A browser's EventSource gives up for good on any non-200 answer (and ignores Retry-After),
    but reconnects by itself, after `retry` ms, when a 200 event stream ends: so the client
    comes back when a slot may have freed instead of never.
    """
    body = f": {reason}\nretry: {FULL_RETRY_MS}\n\n"
    response = web.Response(
        text=body,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "Retry-After": str(FULL_RETRY_MS // 1000)},
    )
    response.force_close()
    return response


async def _pump(
    request: web.Request,
    response: EventSourceResponse,
    subscriber: Subscriber,
    service: SessionMetricsService,
    heartbeat: float,
) -> None:
    """Send what is pending, sleep until woken (or the liveness poll), until the client is gone."""
    subscriber.pending["health"] = encode(service.health())
    subscriber.pending["metrics"] = encode(service.latest)
    first = True
    try:
        while _connected(request, response) and not subscriber.closed:
            for message in subscriber.take(service.events):
                await response.send(
                    message.data,
                    id=message.id,
                    event=message.event,
                    retry=RETRY_MS if first else None,
                )
                first = False
            await subscriber.wait(min(LIVENESS_POLL, heartbeat))
    except _DISCONNECTED:
        pass  # the client went away or stalled: nothing to tell it


def _connected(request: web.Request, response: EventSourceResponse) -> bool:
    return (
        request.transport is not None
        and not request.transport.is_closing()
        and response.is_connected()
    )


async def close_streams(app: web.Application) -> None:
    """On shutdown, end every stream so graceful shutdown does not wait for clients to leave."""
    runtime = app[LIFECYCLE].runtime
    if runtime is not None:
        runtime.hub.close()
        await asyncio.sleep(0)
