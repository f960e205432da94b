"""GET /api/openapi.json: the HTTP surface as an OpenAPI 3.1 document.

The component schemas of the typed request and response bodies are derived from their types
(`exporter.monitoring.payloads`); the rest (paths, parameters, descriptions, the event stream's
framing and Figma's passed-through JSON) is written by hand next to the contract in the README's
HTTP API table. A test
checks that every route the app serves is described here (and nothing else), and validates real
responses against these schemas (OpenAPI 3.1 schemas are JSON Schema 2020-12); schemathesis runs
against it too. The landing page builds its links from the same document. It is committed as
docs/openapi.json; regenerate that with
`python -c 'from exporter.web.openapi import write_committed; write_committed()'` (a test fails
on drift).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.core.build import __version__
from exporter.monitoring import payloads
from exporter.upstreams.figma_manager import MAX_DEPTH, MAX_NODE_IDS
from exporter.web.responses import json_response

PATH = "/api/openapi.json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def reply(
    description: str, schema: Schema | None = None, content_type: str = "application/json"
) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {content_type: {"schema": schema}}
    return body


ERROR = reply("error", ref("Error"))
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def error_reply(description: str, *, retry: bool = False) -> dict[str, Any]:
    body = reply(description, ref("Error"))
    if retry:
        body["headers"] = RETRY_AFTER
    return body


def query(name: str, description: str, schema: Schema, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def operation(summary: str, tag: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": [tag], "responses": responses, **extra}


# ---- schemas ------------------------------------------------------------------------------------

# Each Server-Sent Event (OpenAPI 3.1 has a text/event-stream schema describe one event).
SSE_EVENT = obj(
    {
        "event": {"type": "string", "enum": ["metrics", "health", "event"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "metrics: a Realtime without recent_events; health: a HealthCheck;"
            " event: an Event",
        },
        "id": {"type": "string", "description": "the event id (event messages only)"},
        "retry": {"type": "integer", "description": "reconnect delay in ms"},
    },
    required=[],
)

# What the payload types cannot give: the event stream's framing, and JSON passed through from
# Figma.
SCHEMAS: dict[str, Schema] = {
    "FigmaDocument": {"type": "object", "description": "the Figma REST API's JSON, passed through"},
    "ServerSentEvent": SSE_EVENT,
}

# ---- paths --------------------------------------------------------------------------------------

SESSION_ID = path_param("id", "session id")
FILE_KEY = path_param("file_key", "Figma file key")
SESSION_QUERY = query("session", "attribute the request to this session", {"type": "string"})
NOT_FOUND = error_reply("unknown or expired session")
STORE_DOWN = error_reply(
    "Redis unreachable and the memory tier does not hold the session, a miss while replicas may"
    " still replay their outage journals, no Redis connection free in time (store_busy), or the"
    " outage journal full or its disk refusing writes (store_busy)",
    retry=True,
)
STORE_FULL = error_reply(
    "memory-only mode at --memory-max-entries/--memory-max-bytes: sessions are never evicted"
)
BAD_REQUEST = error_reply("invalid input")
TOO_LARGE = error_reply("request body over --max-body-bytes")
UPSTREAM = {
    "502": error_reply("the upstream answered with an error"),
    "503": error_reply("upstream disabled, unreachable or rate limited", retry=True),
    "504": error_reply("the upstream timed out"),
}
SEED = "session-metrics"
OPS = "operations"


def _session_paths() -> dict[str, Any]:
    create = {"required": True, "content": json_content(ref("SessionCreate"))}
    update = {"required": True, "content": json_content(ref("SessionUpdate"))}
    return {
        "/api/sessions": {
            "post": operation(
                "Create a session",
                "sessions",
                {
                    "201": reply("created", ref("Session")),
                    "400": BAD_REQUEST,
                    "413": TOO_LARGE,
                    "503": STORE_DOWN,
                    "507": STORE_FULL,
                },
                requestBody=create,
            ),
        },
        "/api/sessions/{id}": {
            "parameters": [SESSION_ID],
            "get": operation(
                "Read a session",
                "sessions",
                {
                    "200": reply("the session", ref("Session")),
                    "404": NOT_FOUND,
                    "503": STORE_DOWN,
                },
            ),
            "put": operation(
                "Replace a session's data",
                "sessions",
                {
                    "200": reply("updated", ref("Session")),
                    "400": BAD_REQUEST,
                    "404": NOT_FOUND,
                    "413": TOO_LARGE,
                    "503": STORE_DOWN,
                    "507": STORE_FULL,
                },
                requestBody=update,
            ),
            "delete": operation(
                "Delete a session",
                "sessions",
                {
                    "204": reply("deleted"),
                    "404": NOT_FOUND,
                    "503": STORE_DOWN,
                },
            ),
        },
        "/api/sessions/{id}/metrics": {
            "parameters": [SESSION_ID],
            "get": operation(
                "A session's access counts, cache hits and response times (not counted as a read)",
                "sessions",
                {
                    "200": reply("per-session statistics", ref("SessionAccess")),
                    "404": NOT_FOUND,
                    "503": STORE_DOWN,
                },
            ),
        },
    }


def _figma_paths() -> dict[str, Any]:
    document = reply("the Figma JSON (served from the cache when fresh)", ref("FigmaDocument"))
    return {
        "/api/figma/files/{file_key}": {
            "parameters": [FILE_KEY],
            "get": operation(
                "A Figma file through the cache",
                "figma",
                {
                    "200": document,
                    "400": BAD_REQUEST,
                    "404": error_reply("unknown file"),
                    **UPSTREAM,
                },
                parameters=[
                    query(
                        "depth",
                        "how deep into the document tree to go",
                        {"type": "integer", "minimum": 1, "maximum": MAX_DEPTH},
                    ),
                    query("ids", "only these comma-separated node ids", {"type": "string"}),
                    SESSION_QUERY,
                ],
            ),
        },
        "/api/figma/files/{file_key}/nodes": {
            "parameters": [FILE_KEY],
            "get": operation(
                "Figma nodes through the cache",
                "figma",
                {
                    "200": document,
                    "400": BAD_REQUEST,
                    "404": error_reply("unknown file or node"),
                    **UPSTREAM,
                },
                parameters=[
                    query(
                        "ids",
                        f"comma-separated node ids, e.g. 1:2,1:3 (at most {MAX_NODE_IDS})",
                        {"type": "string"},
                        required=True,
                    ),
                    SESSION_QUERY,
                ],
            ),
        },
        "/api/figma/screenshots": {
            "post": operation(
                "Capture a node's screenshot through the Figma API or the MCP server",
                "figma",
                {
                    "200": {
                        "description": "the capture's summary, or with ?download=1 the image bytes",
                        "content": {
                            "application/json": {"schema": ref("Screenshot")},
                            "image/*": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "400": BAD_REQUEST,
                    "404": error_reply("unknown file or node"),
                    "413": TOO_LARGE,
                    **UPSTREAM,
                },
                parameters=[
                    query(
                        "download",
                        "return the image bytes instead of the summary",
                        {"type": "string", "enum": ["1", "0", "true", "false", "yes", "no"]},
                    ),
                    SESSION_QUERY,
                ],
                requestBody={"required": True, "content": json_content(ref("ScreenshotRequest"))},
            ),
        },
    }


def _seed_paths() -> dict[str, Any]:
    base = "/api/session-metrics"
    unauthorized = error_reply("admin token configured but not given")
    return {
        f"{base}/performance": {
            "get": operation(
                "Per manager and operation: counts, errors, window percentiles, slow operations",
                SEED,
                {"200": reply("performance", ref("Performance"))},
            )
        },
        f"{base}/realtime": {
            "get": operation(
                "The latest real-time snapshot", SEED, {"200": reply("snapshot", ref("Realtime"))}
            )
        },
        f"{base}/persistence": {
            "get": operation(
                "Redis, replay journal and memory tier status; per-manager health",
                SEED,
                {"200": reply("persistence", ref("Persistence"))},
            )
        },
        f"{base}/health-check": {
            "get": operation(
                "Health score, status, components and issues",
                SEED,
                {"200": reply("health", ref("HealthCheck")), "400": BAD_REQUEST},
                parameters=[
                    query(
                        "refresh",
                        "run the probes and the check now",
                        {"type": "string", "enum": ["true", "false", "1", "0"]},
                    )
                ],
            )
        },
        f"{base}/cache-stats": {
            "get": operation(
                "Hits, misses, hit rates and efficiency per tier and manager",
                SEED,
                {"200": reply("cache statistics", ref("CacheStats"))},
            )
        },
        f"{base}/stream": {
            "get": operation(
                "Server-Sent Events: metrics, health, event; heartbeats",
                SEED,
                {
                    "200": reply(
                        "an event stream; at the client limit a stream that only sets"
                        " `retry:` and ends, so EventSource reconnects later",
                        ref("ServerSentEvent"),
                        "text/event-stream",
                    ),
                    "400": error_reply("invalid Last-Event-ID"),
                },
                parameters=[
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "integer"},
                        "description": "resume after this event id",
                    },
                    query("last_event_id", "same as the Last-Event-ID header", {"type": "integer"}),
                ],
            )
        },
        f"{base}/cache/clear": {
            "post": operation(
                "Clear the memory tier (scope=all: and the Figma response cache); refresh metrics",
                SEED,
                {
                    "200": reply("what was cleared", ref("CacheCleared")),
                    "400": BAD_REQUEST,
                    "401": unauthorized,
                    "403": error_reply("wrong admin token"),
                },
                parameters=[
                    query(
                        "scope",
                        "what to clear",
                        {"type": "string", "enum": ["memory", "all"], "default": "memory"},
                    )
                ],
                security=[{"adminToken": []}, {}],
            )
        },
    }


def _ops_paths() -> dict[str, Any]:
    status = reply("status", ref("Status"))
    return {
        "/": {
            "get": operation(
                "Landing page: version, health, links",
                OPS,
                {"200": reply("HTML page", {"type": "string"}, "text/html")},
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics (OpenMetrics when asked)",
                OPS,
                {"200": reply("exposition", {"type": "string"}, "text/plain")},
            )
        },
        "/-/healthy": {"get": operation("Liveness", OPS, {"200": status})},
        "/-/ready": {
            "get": operation(
                "Readiness",
                OPS,
                {"200": status, "503": reply("starting or stopping", ref("Status"))},
            )
        },
        PATH: {
            "get": operation(
                "This document", OPS, {"200": reply("OpenAPI 3.1", {"type": "object"})}
            )
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "session-metrics-exporter",
            "version": __version__,
            "description": "Instrumented session managers (memory + Redis, Figma API + MCP) "
            "with a JSON API, "
            'Server-Sent Events and Prometheus metrics. Errors are {"error": {"code", "message"}}.'
            " Any route but /metrics, /-/healthy and /-/ready answers 403 `host_not_allowed` to a"
            " Host the exporter does not answer to (--web-allowed-host); with basic auth, 401"
            " `unauthorized` (503 `auth_busy` while too many logins are being checked); a request"
            " body slower than --web-body-timeout gets 408 `request_timeout`.",
        },
        "paths": {**_ops_paths(), **_session_paths(), **_figma_paths(), **_seed_paths()},
        "components": {
            "schemas": {**SCHEMAS, **payloads.schema_components()},
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "--admin-token, when configured",
                }
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[DOCUMENT])


DOCUMENT = web.AppKey("openapi", dict)


COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def rendered() -> str:
    """The document as committed: indented, keys in document order, a final newline."""
    return json.dumps(document(), indent=2) + "\n"


def write_committed() -> None:
    COMMITTED.write_text(rendered(), encoding="utf-8")
