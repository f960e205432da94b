"""Every route the app serves, each declared once: method, path, handler and its `Operation`.

`exporter.web.app` serves `ROUTES` (in this order), each behind the checks its declaration asks
for (the admin token, the `Host` check unless `any_host`); `exporter.web.openapi` renders the
OpenAPI document from them, and the landing page lists that document's operations. So adding or
changing a route is one entry here (and its handler). Path parameters come from the path
templates, described by `PATH_PARAMETERS`; the bodies' schemas come from their payload types
(`exporter.monitoring.payloads`).

The session-metrics reports under /api/session-metrics/ keep the paths and shapes of the
JavaScript system this exporter rebuilds (the README's "Where it comes from").
"""

from __future__ import annotations

from exporter.monitoring.fleet_view import Fleet
from exporter.monitoring.payloads import (
    CacheCleared,
    CacheStats,
    HealthCheck,
    Performance,
    Persistence,
    Realtime,
    Status,
)
from exporter.monitoring.service import CLEAR_SCOPES
from exporter.upstreams.figma_manager import MAX_DEPTH, MAX_NODE_IDS
from exporter.web import (
    dashboard,
    figma_routes,
    landing,
    ops_routes,
    session_metrics_routes,
    sse,
)
from exporter.web import session_routes as sessions
from exporter.web.bodies import (
    Screenshot,
    ScreenshotRequest,
    Session,
    SessionAccess,
    SessionCreate,
    SessionUpdate,
)
from exporter.web.operation import (
    BAD_REQUEST,
    JSON,
    TOO_LARGE,
    Answer,
    Either,
    Operation,
    Param,
    Route,
    answer,
    error,
)

SESSIONS, FIGMA, SESSION_METRICS, OPERATIONS = "sessions", "figma", "session-metrics", "operations"
PATH_PARAMETERS = {
    "id": "session id",
    "file_key": "Figma file key",
    "asset": "a file of the dashboard (dashboard.js, dashboard.css)",
}

NOT_FOUND = error("unknown or expired session")
STORE_DOWN = error(
    "Redis unreachable and the memory tier does not hold the session, a miss while replicas may"
    " still replay their outage journals, no Redis connection free in time (store_busy), or the"
    " outage journal full or its disk refusing writes (store_busy)",
    retry_after=True,
)
STORE_FULL = error(
    "memory-only mode at --memory-max-entries/--memory-max-bytes: sessions are never evicted"
)
UPSTREAM = {
    502: error("the upstream answered with an error"),
    503: error("upstream disabled, unreachable or rate limited", retry_after=True),
    504: error("the upstream timed out"),
}
STATUS = answer("status", Status)
SESSION = Param("session", "attribute the request to this session", {"type": "string"})
SCOPE = Param(
    "scope",
    "replica: this replica's report; fleet: every replica's latest summary and the fleet's"
    " totals (from Redis; `status` says when it is degraded or disabled)",
    {"type": "string", "enum": ["replica", "fleet"], "default": "replica"},
)
FIGMA_DOCUMENT = answer(
    "the Figma JSON (served from the cache when fresh)", figma_routes.FIGMA_DOCUMENT
)


ROUTES: tuple[Route, ...] = (
    # ---- operations: metrics and probes ----
    # These three are `any_host`: Prometheus scrapes by any name it was given (a compose service,
    # a DNS name), probes come by pod IP or name, and none of them reveals a secret or changes
    # anything. Every other route, reads included, is refused to a `Host` the exporter does not
    # know: sessions, Figma files fetched with our token, the persistence report's Redis address,
    # the event stream.
    Route(
        "GET",
        "/metrics",
        ops_routes.exposition,
        Operation(
            "Prometheus metrics (OpenMetrics when asked)",
            OPERATIONS,
            {200: answer("exposition", {"type": "string"}, "text/plain")},
        ),
        any_host=True,
    ),
    Route(
        "GET",
        "/-/healthy",
        ops_routes.healthy,
        Operation("Liveness", OPERATIONS, {200: STATUS}),
        any_host=True,
    ),
    Route(
        "GET",
        "/-/ready",
        ops_routes.ready,
        Operation(
            "Readiness",
            OPERATIONS,
            {200: STATUS, 503: answer("starting or stopping", Status)},
        ),
        any_host=True,
    ),
    # ---- sessions ----
    Route(
        "POST",
        "/api/sessions",
        sessions.create_session,
        Operation(
            "Create a session",
            SESSIONS,
            {
                201: answer("created", Session),
                400: BAD_REQUEST,
                413: TOO_LARGE,
                503: STORE_DOWN,
                507: STORE_FULL,
            },
            body=SessionCreate,
        ),
    ),
    Route(
        "GET",
        "/api/sessions/{id}",
        sessions.get_session,
        Operation(
            "Read a session",
            SESSIONS,
            {200: answer("the session", Session), 404: NOT_FOUND, 503: STORE_DOWN},
        ),
        allow_head=False,
        answer_now=sessions.held_session,
    ),
    Route(
        "PUT",
        "/api/sessions/{id}",
        sessions.update_session,
        Operation(
            "Replace a session's data",
            SESSIONS,
            {
                200: answer("updated", Session),
                400: BAD_REQUEST,
                404: NOT_FOUND,
                413: TOO_LARGE,
                503: STORE_DOWN,
                507: STORE_FULL,
            },
            body=SessionUpdate,
        ),
    ),
    Route(
        "DELETE",
        "/api/sessions/{id}",
        sessions.delete_session,
        Operation(
            "Delete a session",
            SESSIONS,
            {204: answer("deleted"), 404: NOT_FOUND, 503: STORE_DOWN},
        ),
    ),
    Route(
        "GET",
        "/api/sessions/{id}/metrics",
        sessions.session_access,
        Operation(
            "A session's access counts, cache hits and response times (not counted as a read)",
            SESSIONS,
            {
                200: answer("per-session statistics", SessionAccess),
                400: BAD_REQUEST,
                404: NOT_FOUND,
                503: STORE_DOWN,
            },
            params=(
                Param(
                    "scope",
                    "replica: this replica's counts; fleet: summed over every replica (kept in"
                    " Redis for the session's lifetime; what others counted in the last snapshot"
                    " interval is not in yet)",
                    {"type": "string", "enum": ["replica", "fleet"], "default": "replica"},
                ),
            ),
        ),
        allow_head=False,
    ),
    # ---- Figma ----
    Route(
        "GET",
        "/api/figma/files/{file_key}",
        figma_routes.get_file,
        Operation(
            "A Figma file through the cache",
            FIGMA,
            {200: FIGMA_DOCUMENT, 400: BAD_REQUEST, 404: error("unknown file"), **UPSTREAM},
            params=(
                Param(
                    "depth",
                    "how deep into the document tree to go",
                    {"type": "integer", "minimum": 1, "maximum": MAX_DEPTH},
                ),
                Param("ids", "only these comma-separated node ids", {"type": "string"}),
                SESSION,
            ),
        ),
    ),
    Route(
        "GET",
        "/api/figma/files/{file_key}/nodes",
        figma_routes.get_nodes,
        Operation(
            "Figma nodes through the cache",
            FIGMA,
            {
                200: FIGMA_DOCUMENT,
                400: BAD_REQUEST,
                404: error("unknown file or node"),
                **UPSTREAM,
            },
            params=(
                Param(
                    "ids",
                    f"comma-separated node ids, e.g. 1:2,1:3 (at most {MAX_NODE_IDS})",
                    {"type": "string"},
                    required=True,
                ),
                SESSION,
            ),
        ),
    ),
    Route(
        "POST",
        "/api/figma/screenshots",
        figma_routes.post_screenshot,
        Operation(
            "Capture a node's screenshot through the Figma API or the MCP server",
            FIGMA,
            {
                200: Answer(
                    "the capture's summary, or with ?download=1 the image bytes",
                    {JSON: Screenshot, "image/*": {"type": "string", "format": "binary"}},
                ),
                400: BAD_REQUEST,
                404: error("unknown file or node"),
                413: TOO_LARGE,
                **UPSTREAM,
            },
            params=(
                Param(
                    "download",
                    "return the image bytes instead of the summary",
                    {"type": "string", "enum": ["1", "0", "true", "false", "yes", "no"]},
                ),
                SESSION,
            ),
            body=ScreenshotRequest,
        ),
    ),
    # ---- session metrics ----
    Route(
        "GET",
        f"{session_metrics_routes.PREFIX}/performance",
        session_metrics_routes.performance,
        Operation(
            "Per manager and operation: counts, errors, window percentiles, slow operations",
            SESSION_METRICS,
            {
                200: answer(
                    "performance, or with ?scope=fleet the fleet", Either((Performance, Fleet))
                ),
                400: BAD_REQUEST,
            },
            params=(SCOPE,),
        ),
        allow_head=False,
    ),
    Route(
        "GET",
        f"{session_metrics_routes.PREFIX}/realtime",
        session_metrics_routes.realtime,
        Operation(
            "The latest real-time snapshot",
            SESSION_METRICS,
            {
                200: answer("snapshot, or with ?scope=fleet the fleet", Either((Realtime, Fleet))),
                400: BAD_REQUEST,
            },
            params=(SCOPE,),
        ),
        allow_head=False,
    ),
    Route(
        "GET",
        f"{session_metrics_routes.PREFIX}/persistence",
        session_metrics_routes.persistence,
        Operation(
            "Redis, replay journal and memory tier status; per-manager health",
            SESSION_METRICS,
            {200: answer("persistence", Persistence)},
        ),
        allow_head=False,
    ),
    Route(
        "GET",
        f"{session_metrics_routes.PREFIX}/health-check",
        session_metrics_routes.health_check,
        Operation(
            "Health score, status, components and issues",
            SESSION_METRICS,
            {200: answer("health", HealthCheck), 400: BAD_REQUEST},
            params=(
                Param(
                    "refresh",
                    "run the probes and the check now",
                    {"type": "string", "enum": ["true", "false", "1", "0"]},
                ),
            ),
        ),
        allow_head=False,
    ),
    Route(
        "GET",
        f"{session_metrics_routes.PREFIX}/cache-stats",
        session_metrics_routes.cache_stats,
        Operation(
            "Hits, misses, hit rates and efficiency per tier and manager",
            SESSION_METRICS,
            {
                200: answer(
                    "cache statistics, or with ?scope=fleet the fleet", Either((CacheStats, Fleet))
                ),
                400: BAD_REQUEST,
            },
            params=(SCOPE,),
        ),
        allow_head=False,
    ),
    Route(
        "POST",
        f"{session_metrics_routes.PREFIX}/cache/clear",
        session_metrics_routes.clear_cache,
        Operation(
            "Clear the memory tier (scope=all: and the Figma response cache); refresh metrics",
            SESSION_METRICS,
            {
                200: answer("what was cleared", CacheCleared),
                400: BAD_REQUEST,
            },
            params=(
                Param(
                    "scope",
                    "what to clear",
                    {"type": "string", "enum": list(CLEAR_SCOPES), "default": "memory"},
                ),
            ),
            admin=True,
        ),
    ),
    Route(
        "GET",
        f"{session_metrics_routes.PREFIX}/stream",
        sse.stream,
        Operation(
            "Server-Sent Events: metrics, health, event; heartbeats",
            SESSION_METRICS,
            {
                200: answer(
                    "an event stream; at the client limit a stream that only sets"
                    " `retry:` and ends, so EventSource reconnects later",
                    sse.SERVER_SENT_EVENT,
                    "text/event-stream",
                ),
                400: error("invalid Last-Event-ID"),
            },
            params=(
                Param(
                    "Last-Event-ID",
                    "resume after this event id",
                    {"type": "integer"},
                    where="header",
                ),
                Param("last_event_id", "same as the Last-Event-ID header", {"type": "integer"}),
            ),
        ),
        allow_head=False,
    ),
    # ---- this document and the landing page ----
    Route(
        "GET",
        ops_routes.OPENAPI_PATH,
        ops_routes.openapi_document,
        Operation("This document", OPERATIONS, {200: answer("OpenAPI 3.1", {"type": "object"})}),
        allow_head=False,
    ),
    Route(
        "GET",
        "/",
        dashboard.dashboard,
        Operation(
            "The live dashboard: health, persistence, cards, tabs, controls, fleet, events",
            OPERATIONS,
            {200: answer("HTML page", {"type": "string"}, "text/html")},
        ),
        allow_head=False,
    ),
    Route(
        "GET",
        "/static/{asset}",
        dashboard.asset,
        Operation(
            "The dashboard's script and style sheet",
            OPERATIONS,
            {
                200: Answer(
                    "the file",
                    {"text/javascript": {"type": "string"}, "text/css": {"type": "string"}},
                ),
                304: answer("not modified (If-None-Match)"),
                404: error("no such file"),
            },
        ),
        allow_head=False,
    ),
    Route(
        "GET",
        "/endpoints",
        landing.landing,
        Operation(
            "Every endpoint, as a plain page (no JavaScript): version, health, links",
            OPERATIONS,
            {200: answer("HTML page", {"type": "string"}, "text/html")},
        ),
        allow_head=False,
    ),
)
