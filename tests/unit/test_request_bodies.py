"""Request bodies decoded by their msgspec types answer the 400s the hand-written checks did:
the same codes and messages, case by case (the cases were compared against the checks the types
replaced), and the same parsed values."""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest

from exporter.upstreams.figma_manager import FORMATS, check_node_id, check_screenshot
from exporter.web import bodies, figma_routes, session_routes
from exporter.web.api_error import ApiError
from exporter.web.responses import decode_body

SESSION_BODIES = [
    (
        b"{not json",
        ("malformed_json", "request body is not valid JSON"),
        ("malformed_json", "request body is not valid JSON"),
    ),
    (
        b"[1, 2]",
        ("invalid_body", "request body must be a JSON object"),
        ("invalid_body", "request body must be a JSON object"),
    ),
    (
        b'"text"',
        ("invalid_body", "request body must be a JSON object"),
        ("invalid_body", "request body must be a JSON object"),
    ),
    (
        b"",
        ("invalid_body", "request body must be a JSON object"),
        ("invalid_body", "request body must be a JSON object"),
    ),
    (
        b'{"data": [1]}',
        ("invalid_data", "field 'data' must be a JSON object"),
        ("invalid_data", "field 'data' must be a JSON object"),
    ),
    (
        b'{"data": "x"}',
        ("invalid_data", "field 'data' must be a JSON object"),
        ("invalid_data", "field 'data' must be a JSON object"),
    ),
    (
        b'{"data": null}',
        ("invalid_data", "field 'data' must be a JSON object"),
        ("invalid_data", "field 'data' must be a JSON object"),
    ),
    (
        b'{"data": {}, "ttl_seconds": 0}',
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
    ),
    (
        b'{"data": {}, "ttl_seconds": -5}',
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
    ),
    (
        b'{"data": {}, "ttl_seconds": "60"}',
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
    ),
    (
        b'{"data": {}, "ttl_seconds": true}',
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
    ),
    (
        b'{"data": {}, "ttl_seconds": 1e12}',
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
        ("invalid_ttl", "'ttl_seconds' must be a number greater than 0 and at most 31622400"),
    ),
    (b"{}", ({}, None), ("invalid_data", "field 'data' (a JSON object) is required")),
    (
        b'{"ttl_seconds": null}',
        ({}, None),
        ("invalid_data", "field 'data' (a JSON object) is required"),
    ),
    # orjson reads an integer over 64 bits as a float (the session encoder refuses big ints)
    (
        b'{"data": {"a": 123456789012345678901234567890}}',
        ({"a": 1.2345678901234568e29}, None),
        ({"a": 1.2345678901234568e29}, None),
    ),
    (
        b'{"data": {"a": 1e400}}',
        ("malformed_json", "request body is not valid JSON"),
        ("malformed_json", "request body is not valid JSON"),
    ),
    (
        b'{"data": {}, "ttl_seconds": 1e400}',
        ("malformed_json", "request body is not valid JSON"),
        ("malformed_json", "request body is not valid JSON"),
    ),
    (
        b'{"data": {"k": "\xff"}}',
        ("malformed_json", "request body is not valid JSON"),
        ("malformed_json", "request body is not valid JSON"),
    ),
    (b'{"data": {}, "extra": 1, "ttl_seconds": 30}', ({}, 30.0), ({}, 30.0)),
    (
        b'{"data": {"a": 1}, "data": 3}',
        ("invalid_data", "field 'data' must be a JSON object"),
        ("invalid_data", "field 'data' must be a JSON object"),
    ),
    (
        b"3",
        ("invalid_body", "request body must be a JSON object"),
        ("invalid_body", "request body must be a JSON object"),
    ),
    (
        b"null",
        ("invalid_body", "request body must be a JSON object"),
        ("invalid_body", "request body must be a JSON object"),
    ),
    (
        b'{"data":{}} x',
        ("malformed_json", "request body is not valid JSON"),
        ("malformed_json", "request body is not valid JSON"),
    ),
]
SCREENSHOT_BODIES = [
    ({"node_id": "1:2"}, ("invalid_request", "file_key is required (a string)")),
    ({"file_key": "FILE1"}, ("invalid_request", "node_id is required (a string such as 1:2)")),
    (
        {"file_key": "FILE1", "node_id": "x"},
        ("invalid_request", "invalid node id 'x'; expected the form 1:2"),
    ),
    (
        {"file_key": "a/b", "node_id": "1:2"},
        ("invalid_request", "file_key must be 1-128 letters or digits"),
    ),
    (
        {"file_key": "FILE1", "node_id": "1:2", "source": "desktop"},
        ("invalid_request", "source must be one of api, mcp"),
    ),
    (
        {"file_key": "FILE1", "node_id": "1:2", "format": "gif"},
        ("invalid_request", "format must be one of png, jpg, svg, pdf"),
    ),
    (
        {"file_key": "FILE1", "node_id": "1:2", "scale": 0},
        ("invalid_request", "scale must be a number from 0.01 to 4"),
    ),
    (
        {"file_key": "FILE1", "node_id": "1:2", "scale": 4.5},
        ("invalid_request", "scale must be a number from 0.01 to 4"),
    ),
    (
        {"file_key": "FILE1", "node_id": "1:2", "scale": "2"},
        ("invalid_request", "scale must be a number from 0.01 to 4"),
    ),
    (
        {"file_key": "FILE1", "node_id": "1:2", "source": "mcp", "format": "pdf"},
        ("invalid_request", "source mcp returns PNG only; use format png or source api"),
    ),
    ({"file_key": 7, "node_id": "1:2"}, ("invalid_request", "file_key is required (a string)")),
    (
        {"file_key": "F", "node_id": 3},
        ("invalid_request", "node_id is required (a string such as 1:2)"),
    ),
    ({"file_key": "F", "node_id": "1-2", "scale": 2, "session": "s1"}, None),
    (
        {"file_key": "F", "node_id": "1:2", "source": 3},
        ("invalid_request", "source and format must be strings"),
    ),
    (
        {"file_key": "F", "node_id": "1:2", "format": None},
        ("invalid_request", "source and format must be strings"),
    ),
    (
        {"file_key": "F", "node_id": "1:2", "scale": True},
        ("invalid_request", "scale must be a number from 0.01 to 4"),
    ),
    (
        {"file_key": "F", "node_id": "1:2", "session": ""},
        ("invalid_request", "session must be a session id"),
    ),
    (
        {"file_key": "F", "node_id": "1:2", "session": 5},
        ("invalid_request", "session must be a session id"),
    ),
    ({"file_key": "F", "node_id": "1:2", "session": None}, None),
    (
        {"file_key": "", "node_id": "1:2"},
        ("invalid_request", "file_key must be 1-128 letters or digits"),
    ),
    ({"file_key": "F", "node_id": "1:2", "scale": 0.01}, None),
    ({"file_key": "F", "node_id": "1:2", "source": "mcp"}, None),
]
DEEP = [
    b'{"data": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
]


def outcome(call: Any) -> Any:
    try:
        return call()
    except ApiError as error:
        assert error.status == 400
        return (error.code, error.message)


def session(raw: bytes, kind: type[bodies.SessionCreate | bodies.SessionUpdate]) -> Any:
    body = decode_body(raw, kind, session_routes._field_error)
    return (session_routes._data(body.data), body.ttl_seconds)


@pytest.mark.parametrize(("raw", "created", "updated"), SESSION_BODIES)
def test_session_bodies(raw: bytes, created: Any, updated: Any) -> None:
    assert outcome(lambda: session(raw, bodies.SessionCreate)) == created
    assert outcome(lambda: session(raw, bodies.SessionUpdate)) == updated


@pytest.mark.parametrize("raw", DEEP)
def test_nesting_too_deep_is_malformed(raw: bytes) -> None:
    malformed = ("malformed_json", "request body is not valid JSON")
    assert outcome(lambda: session(raw, bodies.SessionCreate)) == malformed


def screenshot(body: dict[str, Any]) -> None:
    request = decode_body(orjson.dumps(body), bodies.ScreenshotRequest, figma_routes._shot_error)
    figma_routes._checked(check_node_id, request.node_id)
    figma_routes._checked(check_screenshot, request.source, request.format, request.scale)


@pytest.mark.parametrize(("body", "error"), SCREENSHOT_BODIES)
def test_screenshot_bodies(body: dict[str, Any], error: Any) -> None:
    assert outcome(lambda: screenshot(body)) == error


def test_screenshot_formats_are_the_managers() -> None:
    hints = typing.get_type_hints(bodies.ScreenshotRequest, include_extras=True)
    assert set(typing.get_args(hints["format"])) == set(FORMATS)
