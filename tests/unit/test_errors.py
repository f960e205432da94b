"""The one table from exception to metric label and HTTP status."""

from __future__ import annotations

from exporter.core.errors import (
    ERROR_KINDS,
    JournalFull,
    SessionNotFound,
    UpstreamError,
    UpstreamTimeout,
    WritesRefused,
    error_kind,
)
from exporter.core.instrumentation import error_type
from exporter.web.handling import exception_response


def test_no_row_is_shadowed_by_an_earlier_base() -> None:
    for index, (cls, _) in enumerate(ERROR_KINDS):
        earlier = [base for base, _ in ERROR_KINDS[:index] if issubclass(cls, base)]
        assert not earlier, f"{cls.__name__} never matches: {earlier} come first"


def test_metric_label_and_http_status_come_from_the_same_row() -> None:
    for exc in (SessionNotFound("s"), JournalFull("full"), UpstreamTimeout("figma", "slow")):
        kind = error_kind(exc)
        assert error_type(exc) == kind.label
        assert exception_response(exc).status == kind.status


def test_rate_limited_upstream_is_unavailable_and_refused_reads_say_unavailable() -> None:
    assert exception_response(UpstreamError("figma", "slow down", status="429")).status == 503
    assert exception_response(UpstreamError("figma", "broken", status="5xx")).status == 502
    response = exception_response(WritesRefused("noauth"))
    assert response.status == 503 and '"code":"unavailable"' in (response.text or "")


def test_unknown_exceptions_are_internal() -> None:
    assert error_type(KeyError("x")) == "internal"
    assert error_type(ValueError("x")) == "invalid"
    assert exception_response(KeyError("x")).status == 500
