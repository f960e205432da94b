"""Store refusals render as the JSON errors clients retry on: 503 + Retry-After, or 507."""

from __future__ import annotations

import orjson

from exporter.core.errors import JournalFull, StoreFull
from exporter.web.handling import exception_response


def test_a_full_journal_is_a_503_store_busy_with_retry_after() -> None:
    response = exception_response(JournalFull("outage journal full", retry_after=2.0))
    assert response.status == 503 and response.headers["Retry-After"] == "2"
    assert orjson.loads(response.body)["error"]["code"] == "store_busy"  # type: ignore[arg-type]


def test_a_full_memory_store_is_a_507_store_full() -> None:
    response = exception_response(StoreFull("memory store full"))
    assert response.status == 507
    assert orjson.loads(response.body)["error"] == {  # type: ignore[arg-type]
        "code": "store_full",
        "message": "memory store full",
    }
