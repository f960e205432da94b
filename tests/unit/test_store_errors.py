"""Store refusals render as the JSON errors clients retry on: 503 + Retry-After, or 507."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from exporter.core.errors import JournalFull, StoreFull
from exporter.web.handling import exception_response


def error_of(response: web.Response) -> Any:
    assert isinstance(response.body, bytes), response.body
    return orjson.loads(response.body)["error"]


def test_a_full_journal_is_a_503_store_busy_with_retry_after() -> None:
    response = exception_response(JournalFull("outage journal full", retry_after=2.0))
    assert response.status == 503 and response.headers["Retry-After"] == "2"
    assert error_of(response)["code"] == "store_busy"


def test_a_full_memory_store_is_a_507_store_full() -> None:
    response = exception_response(StoreFull("memory store full"))
    assert response.status == 507
    assert error_of(response) == {
        "code": "store_full",
        "message": "memory store full",
    }
