"""Driving the real dashboard in headless Chromium, without the DevTools protocol.

`DashboardProbe.install(app)` adds, on the exporter's own origin (so the page's strict CSP allows
them), the dashboard at /test/dashboard with one extra classic script in front of the page's own
module script: /test/probe.js (tests/support/dashboard_probe.js). The probe

- reports every uncaught error, unhandled rejection, `console.error` call and CSP violation;
- posts what the page shows every 100 ms (the `data-metric` texts, the `data-indicator`
  states, the event feed, the notice, the fleet table, whether the dialog is open);
- long-polls /test/command and runs what the test asks (click, fill, submit, a key press),
  acknowledging each by id.

    probe = DashboardProbe(); probe.install(app)
    with HeadlessChromium(f"{base}/test/dashboard", tmp_path):
        await probe.until(lambda s: s["indicators"]["stream"] == "live")
        await probe.do("click", "#refresh")
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from exporter.web import dashboard
from tests.support.session_metrics import wait_for

PROBE_JS = (Path(__file__).parent / "dashboard_probe.js").read_text()


class DashboardProbe:
    """The probe's routes on an app, and what the page reported."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.states = 0
        self.problems: list[str] = []
        self._commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._done: dict[int, str] = {}
        self._ids = itertools.count(1)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/test/dashboard", self._page)
        app.router.add_get("/test/probe.js", self._script)
        app.router.add_post("/test/report", self._report)
        app.router.add_get("/test/command", self._command)

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        """The first reported state for which `predicate` holds (fails after `timeout`)."""
        seen = -1

        def holds() -> bool:
            nonlocal seen
            if self.states == seen or not self.state:
                return False
            seen = self.states
            try:
                return predicate(self.state)
            except (KeyError, TypeError, IndexError):
                return False

        try:
            await wait_for(holds, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"the page never showed it; last state: {self.state}") from None
        return self.state

    async def do(self, op: str, selector: str, value: str | None = None) -> None:
        """Run one action in the page and wait for it to be done."""
        command_id = next(self._ids)
        await self._commands.put({"id": command_id, "op": op, "selector": selector, "value": value})
        await wait_for(lambda: command_id in self._done, timeout=30)
        assert self._done[command_id] == "ok", self._done[command_id]

    async def _page(self, request: web.Request) -> web.Response:
        real = await dashboard.dashboard(request)
        assert real.text is not None
        page = real.text.replace(
            '<link rel="stylesheet"',
            '<script src="/test/probe.js"></script>\n<link rel="stylesheet"',
        )
        return web.Response(
            text=page,
            content_type="text/html",
            charset="utf-8",
            headers=dashboard.SECURITY_HEADERS,  # the page's own policy: the probe obeys it too
        )

    async def _script(self, request: web.Request) -> web.Response:
        return web.Response(text=PROBE_JS, content_type="text/javascript")

    async def _report(self, request: web.Request) -> web.Response:
        report = orjson.loads(await request.read())
        if report["kind"] == "state":
            self.state = report["state"]
            self.states += 1
        elif report["kind"] == "problem":
            self.problems.append(report["message"])
        elif report["kind"] == "done":
            self._done[report["id"]] = report["result"]
        return web.Response(status=204)

    async def _command(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(1.0):
                command = await self._commands.get()
        except TimeoutError:
            return web.Response(status=204)
        return web.json_response(command)
