"""A route as declared once: method, path, handler, and what the API promises about it.

An `Operation` says what a client may send (query and header parameters, a body of a payload
type) and every answer by status (a payload type, a named or inline schema, a media type,
`Retry-After`). `exporter.web.routes` declares each route with its operation;
`exporter.web.app` serves them and `exporter.web.openapi` renders the OpenAPI document from the
same declarations, so a route and its description cannot drift apart.

    >>> missing = answer("unknown or expired session", Error)
    >>> Operation("Read a session", "sessions", {200: answer("the session"), 404: missing}).admin
    False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.payloads import Error

Schema = dict[str, Any]
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Named:
    """A schema the payload types cannot give (the event stream's framing, Figma's JSON passed
    through), published under `name` among the document's components."""

    name: str
    schema: Schema


# What a body is: a payload type (its schema is derived), a named schema, or an inline schema.
Body = type[msgspec.Struct] | Named | Schema


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
    # Bearer admin token when one is configured (`--admin-token`), else open.
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    handler: Handler
    operation: Operation
    # aiohttp adds HEAD beside GET unless told not to; the API documents GET only either way.
    allow_head: bool = True

    def definition(self) -> web.RouteDef:
        """The route as aiohttp's router takes it."""
        if self.method == "GET":
            return web.get(self.path, self.handler, allow_head=self.allow_head)
        return web.route(self.method, self.path, self.handler)


# Answers several routes give, in the same words.
BAD_REQUEST = error("invalid input")
TOO_LARGE = error("request body over --max-body-bytes")
