"""The HTTP surface as an OpenAPI 3.1 document, rendered from the route table.

Every path, method, parameter, body and answer comes from the routes' declarations
(`exporter.web.routes`, `exporter.web.operation`); the component schemas from the payload types
those declarations name (`exporter.monitoring.payloads`, through `msgspec.json.schema_components`).
So the document describes exactly what the app serves. The app serves it at GET /api/openapi.json,
the landing page lists its operations, and it is committed as docs/openapi.json: regenerate that
with `python -c 'from exporter.web.openapi import write_committed; write_committed()'` (a test fails
on drift; schemathesis checks the app against it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from exporter.core.build import __version__
from exporter.monitoring import payloads
from exporter.web.operation import Answer, Body, Either, Named, Operation, Param, Route, Schema
from exporter.web.routes import PATH_PARAMETERS, ROUTES

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
TITLE = "session-metrics-exporter"
SUMMARY = (
    "Instrumented session managers (memory + Redis, Figma API + MCP) with a JSON API,"
    ' Server-Sent Events and Prometheus metrics. Errors are {"error": {"code", "message"}}.'
)
SECURITY_SCHEMES = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "--admin-token, when configured",
    }
}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


def document(routes: Sequence[Route] = ROUTES) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": __version__, "description": description(routes)},
        "paths": paths(routes),
        "components": {"schemas": schemas(routes), "securitySchemes": SECURITY_SCHEMES},
    }


def description(routes: Sequence[Route]) -> str:
    """What every route may answer besides its own answers (the guards of
    `exporter.web.handling`), naming the routes the `Host` check spares."""
    spared = [route.path for route in routes if route.any_host]
    return (
        f"{SUMMARY} Any route but {_listed(spared)} answers 403 `host_not_allowed` to a"
        " Host the exporter does not answer to (--web-allowed-host); with basic auth, 401"
        " `unauthorized` (503 `auth_busy` while too many logins are being checked); a request"
        " body slower than --web-body-timeout gets 408 `request_timeout`."
    )


def _listed(names: Sequence[str]) -> str:
    """'a, b and c'."""
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def paths(routes: Iterable[Route]) -> dict[str, Any]:
    """Path -> its path parameters and one operation per method, in the routes' order."""
    items: dict[str, dict[str, Any]] = {}
    for route in routes:
        item = items.setdefault(route.path, _path_item(route.path))
        item[route.method.lower()] = operation(route.operation)
    return items


def _path_item(path: str) -> dict[str, Any]:
    names = _PATH_PARAMETER.findall(path)
    if not names:
        return {}
    return {"parameters": [_path_parameter(name) for name in names]}


def _path_parameter(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": PATH_PARAMETERS[name],
        "schema": {"type": "string"},
    }


def operation(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {str(status): response(answer) for status, answer in op.responses.items()},
    }
    if op.params:
        spec["parameters"] = [parameter(param) for param in op.params]
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": {"application/json": _media(op.body)}}
    if op.admin:  # the bearer token, or nothing when none is configured
        spec["security"] = [{"adminToken": []}, {}]
    return spec


def parameter(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required,
        "description": param.description,
        "schema": param.schema,
    }


def response(answer: Answer) -> dict[str, Any]:
    spec: dict[str, Any] = {"description": answer.description}
    if answer.content:
        spec["content"] = {media: _media(body) for media, body in answer.content.items()}
    if answer.retry_after:
        spec["headers"] = RETRY_AFTER
    return spec


def _media(body: Body) -> dict[str, Schema]:
    return {"schema": _schema(body)}


def _schema(body: Body) -> Schema:
    """A named body by reference to its component; an inline schema as it is."""
    if isinstance(body, Named):
        return _ref(body.name)
    if isinstance(body, Either):
        return {"oneOf": [_ref(kind.__name__) for kind in body.types]}
    if isinstance(body, dict):
        return body
    return _ref(body.__name__)


def _ref(name: str) -> Schema:
    return {"$ref": payloads.REF_TEMPLATE.format(name=name)}


def schemas(routes: Iterable[Route]) -> dict[str, Schema]:
    """The component schemas: the named ones as declared, then those of every payload type the
    routes name (and the types they contain)."""
    bodies = [body for route in routes for body in _bodies(route.operation)]
    named = {body.name: body.schema for body in bodies if isinstance(body, Named)}
    types = [body for body in bodies if isinstance(body, type)]
    types += [kind for body in bodies if isinstance(body, Either) for kind in body.types]
    return {**named, **payloads.schema_components(dict.fromkeys(types))}


def _bodies(op: Operation) -> list[Body]:
    answered = [body for answer in op.responses.values() for body in answer.content.values()]
    return answered if op.body is None else [op.body, *answered]


def rendered() -> str:
    """The document as committed: indented, keys in document order, a final newline."""
    return json.dumps(document(), indent=2) + "\n"


def write_committed() -> None:
    COMMITTED.write_text(rendered(), encoding="utf-8")
