"""A route as declared once: method, path, handler, and what the API promises about it.

An `Operation` says what a client may send (query and header parameters, a body of a payload
type) and every answer by status (a payload type, a named or inline schema, a media type,
`Retry-After`). `exporter.web.routes` declares each route with its operation;
`exporter.web.app` serves them and `exporter.web.openapi` renders the OpenAPI document from the
same declarations, so a route and its description cannot drift apart.

    >>> missing = answer("unknown or expired session", Error)
    >>> read = Operation("Read a session", "sessions", {200: answer("the session"), 404: missing})
    >>> sorted(read.responses)
    [200, 404]
    >>> sorted(Operation("Clear", "operations", {200: answer("cleared")}, admin=True).responses)
    [200, 401, 403]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.monitoring.payloads import Error
from exporter.web.admin_token import admin_only

Schema = dict[str, Any]
JSON = "application/json"
# A route's synchronous first try: its response, or None to run the handler.
AnswerNow = Callable[[web.Request], web.StreamResponse | None]


@dataclass(frozen=True, slots=True)
class Named:
    """A schema the payload types cannot give (the event stream's framing, Figma's JSON passed
    through), published under `name` among the document's components."""

    name: str
    schema: Schema


@dataclass(frozen=True, slots=True)
class Either:
    """One of several payload types (`oneOf`): an answer whose shape a query parameter picks."""

    types: tuple[type[msgspec.Struct], ...]


# What a body is: a payload type (its schema is derived), one of several payload types, a named
# schema, or an inline schema.
Body = type[msgspec.Struct] | Either | Named | Schema


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer of an operation: its description, its bodies by media type, its headers."""

    description: str
    content: Mapping[str, Body] = field(default_factory=dict)
    retry_after: bool = False


def answer(
    description: str, body: Body | None = None, media_type: str = JSON, *, retry_after: bool = False
) -> Answer:
    """An answer with at most one body (`Answer` itself takes several media types)."""
    content = {} if body is None else {media_type: body}
    return Answer(description, content, retry_after)


def error(description: str, *, retry_after: bool = False) -> Answer:
    """An error answer: `{"error": {"code", "message"}}` (see `exporter.web.handling`)."""
    return answer(description, Error, retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter (path parameters come from the path's template)."""

    name: str
    description: str
    schema: Schema
    required: bool = False
    where: Literal["query", "header"] = "query"


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    params: tuple[Param, ...] = ()
    body: type[msgspec.Struct] | None = None
    # Bearer admin token when one is configured (`--admin-token`), else open: the route is served
    # behind `exporter.web.admin_token.admin_only` and answers its 401 and 403 too.
    admin: bool = False

    @property
    def responses(self) -> Mapping[int, Answer]:
        """Every answer by status: the declared ones, then the admin token's refusals."""
        return {**self.answers, **ADMIN_REFUSALS} if self.admin else self.answers


@dataclass(frozen=True, slots=True)
class Route:
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    handler: Handler
    operation: Operation
    # aiohttp adds HEAD beside GET unless told not to; the API documents GET only either way.
    allow_head: bool = True
    # Answered whatever the request's `Host` (`exporter.web.allowed_hosts`): only for what
    # reveals no secret and changes nothing, which scrapers and probes reach by any name.
    any_host: bool = False
    # A synchronous first try before `handler` (`exporter.web.handling.instrumented`).
    answer_now: AnswerNow | None = None

    def __post_init__(self) -> None:
        if self.answer_now is not None and self.operation.admin:
            raise ValueError(f"{self.path}: a first try would answer before the admin check")

    def served_handler(self) -> Handler:
        """The handler as served: behind the admin token when the operation says so."""
        return admin_only(self.handler) if self.operation.admin else self.handler

    def definition(self, handler: Handler | None = None) -> web.RouteDef:
        """The route as aiohttp's router takes it, serving `handler` (the served handler by
        default: `exporter.web.handling` passes it wrapped)."""
        served = self.served_handler() if handler is None else handler
        if self.method == "GET":
            return web.get(self.path, served, allow_head=self.allow_head)
        return web.route(self.method, self.path, served)


# Answers several routes give, in the same words.
BAD_REQUEST = error("invalid input")
TOO_LARGE = error("request body over --max-body-bytes")
ADMIN_REFUSALS = {
    401: error("admin token configured but not given"),
    403: error("wrong admin token"),
}
