"""Schemathesis against the committed OpenAPI document (docs/openapi.json): every operation,
positive and negative cases (coverage phase, then a bounded number of generated examples), checked
for no 5xx, documented status codes, documented content types and response schema conformance.

The app runs behind its own runner (as `serve` runs it) on a thread with its own event loop,
because schemathesis calls over HTTP synchronously; the Figma REST double and the real MCP server
stand in for the upstreams, so no operation is excluded: the event stream is read up to a few
events (`max-stream-events`), which are checked against the document's event schema.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from prometheus_client import CollectorRegistry
from schemathesis import checks as st_checks
from schemathesis.specs.openapi import checks as openapi_checks

from exporter.core.settings import parse_settings
from exporter.web import create_app
from exporter.web.openapi import COMMITTED
from exporter.web.server import make_runner, site
from tests.support.figma_double import DEFAULT_TOKEN, FigmaDouble
from tests.support.mcp_server import McpServerProcess
from tests.support.session_metrics import FAST

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiCase

ADMIN_TOKEN = "schemathesis-admin-token"
CONFIG = schemathesis.Config.from_dict(
    {
        # Deterministic: the same cases every run (a failure reproduces; no example database).
        "generation": {"max-examples": 40, "deterministic": True, "mode": "all"},
        "max-stream-events": 3,
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_path(COMMITTED, config=CONFIG)
# The one operation an admin token changes, run again against an app that has one.
admin_schema = schema.include(path="/api/session-metrics/cache/clear")
CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


class Served:
    """The app with the Figma double on a thread of its own; stop() ends both."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._stop())
        self.loop.close()

    async def _start(self) -> None:
        self.double = await FigmaDouble().start()
        settings = {
            **FAST,
            "figma_api_url": self.double.url,
            "figma_token": DEFAULT_TOKEN,
            **self.settings,
        }
        self.runner = make_runner(create_app(parse_settings(settings), CollectorRegistry()))
        await self.runner.setup()
        await site(self.runner, "127.0.0.1", 0).start()
        self.port = int(self.runner.addresses[0][1])

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.double.close()

    def __enter__(self) -> Served:
        self.thread.start()
        assert self.started.wait(30), "the app did not start within 30 s"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture(scope="module")
def base_url(mcp_server: McpServerProcess) -> Iterator[str]:
    """The default: no admin token, no web config (no auth at all)."""
    mcp_server.start()
    with Served(mcp_url=mcp_server.url) as served:
        yield served.url


@pytest.fixture(scope="module")
def admin_url() -> Iterator[str]:
    with Served(admin_token=ADMIN_TOKEN) as served:
        yield served.url


@schema.parametrize()
def test_api_conforms(case: OpenApiCase, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=CHECKS)


@admin_schema.parametrize()
def test_admin_operation_conforms_with_a_token_configured(
    case: OpenApiCase, admin_url: str
) -> None:
    """Without the token (or with the bearer schemathesis makes up): 401/403, as documented."""
    case.call_and_validate(base_url=admin_url, checks=CHECKS)


@admin_schema.parametrize()
def test_admin_operation_conforms_with_the_token(case: OpenApiCase, admin_url: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    case.call_and_validate(base_url=admin_url, headers=headers, checks=CHECKS)
