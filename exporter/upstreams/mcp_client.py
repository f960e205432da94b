"""The MCP client: one long-lived, initialized session to the Figma Dev Mode MCP server.

The SDK's transport and session live in anyio task groups that must be entered and exited by the
same task, so one background task (the holder) owns them: it connects, initializes, publishes
the session, and waits until the session is lost or the client closes; then it reconnects with
backoff. Callers in other tasks send requests over the published session. A caller that finds
no session wakes the holder and waits (at most `timeout`) for the attempt's outcome, so a server
that comes back is used at once and a dead one fails fast with `UpstreamUnavailable` (503).
A call that fails because the connection went away, or because a restarted server no longer
knows the session (HTTP 404, or 400 / JSON-RPC -32000 "No valid session ID"), is retried once on a
fresh session (the tools used here are reads), all within one `timeout` per call.

Tools get only the arguments their input schema (from `list_tools`) declares, and values with a
declared `pattern` are checked first (`InvalidRequest`, a 400). Figma's desktop Dev Mode server
renders `get_screenshot` from the file open in the app and takes no `fileKey`; the remote server
takes one: `screenshot_takes_file()` tells which kind of server this is.

    client = McpClient("http://127.0.0.1:3845/mcp", metrics, timeout=10)
    await client.start()
    image = await client.get_screenshot("FILEKEY", "1:2")
    await client.close()
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
from mcp import ClientSession, Implementation
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    REQUEST_TIMEOUT,
    CallToolResult,
    ImageContent,
    TextContent,
)

from exporter.core.catalog import ServiceName
from exporter.core.errors import InvalidRequest, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from exporter.core.metrics import Metrics
from exporter.upstreams.figma_client import RenderedImage
from exporter.upstreams.upstream_metrics import UpstreamRecorder

log = logging.getLogger(__name__)

SERVICE: ServiceName = "mcp_server"
CLIENT_INFO = Implementation(name="session-metrics-exporter", version="1")
MESSAGE_LIMIT = 200
# JSON-RPC errors a server uses for "I do not know this session" (server-everything: HTTP 400 with
# -32000 "Bad Request: No valid session ID provided"; the Python SDK: 404 → -32600).
SESSION_ERROR_CODES = frozenset({CONNECTION_CLOSED, INVALID_REQUEST, INTERNAL_ERROR})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """The content of a successful tool call: texts, images (bytes, MIME type), structured data."""

    texts: list[str] = field(default_factory=list)
    images: list[RenderedImage] = field(default_factory=list)
    structured: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "images": [
                {"content_type": i.content_type, "size_bytes": len(i.data)} for i in self.images
            ],
            "structured": self.structured,
        }


class McpClient:
    """A reconnecting client for one MCP server over streamable HTTP."""

    def __init__(
        self,
        url: str,
        metrics: Metrics,
        *,
        timeout: float = 10.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        token: str | None = None,
    ) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._schemas: dict[str, dict[str, Any]] | None = None  # per session, from list_tools
        # Set when the server answered a request carrying our session id with 400 or 404: the
        # SDK reports a 400 whose body it cannot parse only as a generic error.
        self._session_refused = False
        self.timeout = timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.recorder = UpstreamRecorder(metrics, SERVICE)
        self.last_error: str | None = None
        self.connects = 0
        self._session: ClientSession | None = None
        self._outcome: asyncio.Future[ClientSession | None] | None = None
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def safe_url(self) -> str:
        """Scheme, host and port only: safe to log even if the URL carried credentials."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}:{parts.port}" if parts.port else f"{parts.scheme}://{host}"

    async def start(self) -> None:
        """Start the holder task; it connects in the background (start never waits)."""
        if self._task is None:
            self._outcome = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(), name="mcp-client-holder")

    async def close(self, timeout: float = 5.0) -> None:
        """Leave the session (terminating it on the server when reachable) and stop the holder."""
        self._closing = True
        self._wake.set()
        self._lost.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._settle(self._outcome, None)

    # -- operations -------------------------------------------------------------------------

    async def ping(self) -> None:
        """Connect if needed, then ping: the availability probe (not counted as a request)."""
        await self._call(None, lambda session: session.send_ping())

    async def list_tools(self) -> list[dict[str, Any]]:
        result = await self._call("list_tools", lambda session: session.list_tools())
        self._schemas = {tool.name: dict(tool.input_schema or {}) for tool in result.tools}
        return [{"name": tool.name, "description": tool.description or ""} for tool in result.tools]

    def screenshot_takes_file(self) -> bool | None:
        """Whether this session's `get_screenshot` can be told the file (the remote server) or
        renders the file open in the desktop app (False); None until its tools are listed."""
        if self._schemas is None or "get_screenshot" not in self._schemas:
            return None
        return "fileKey" in _properties(self._schemas["get_screenshot"])

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        """Call a tool with the arguments it declares; a result flagged as an error raises
        `UpstreamError` with its text, a value its schema refuses `InvalidRequest`."""
        endpoint = self.recorder.endpoint(name)

        async def call(session: ClientSession) -> ToolOutput:
            schema = await self._schema(session, name)
            declared = arguments if schema is None else declared_arguments(schema, arguments)
            result = await session.call_tool(name, declared, read_timeout_seconds=self.timeout)
            return _tool_output(name, result)

        return await self._call(endpoint, call)

    async def _schema(self, session: ClientSession, name: str) -> dict[str, Any] | None:
        """The tool's input schema, listed once per session; None for a tool not listed (the
        server then answers for itself)."""
        if self._schemas is None:
            result = await session.list_tools()
            self._schemas = {tool.name: dict(tool.input_schema or {}) for tool in result.tools}
        return self._schemas.get(name)

    async def get_screenshot(self, file_key: str, node_id: str) -> RenderedImage:
        """The node's screenshot through `get_screenshot` (ImageContent bytes). `file_key` is sent
        only to a server whose tool takes it (see `screenshot_takes_file`)."""
        output = await self.call_tool("get_screenshot", {"nodeId": node_id, "fileKey": file_key})
        if not output.images:
            raise UpstreamError(SERVICE, "MCP get_screenshot returned no image")
        return output.images[0]

    # -- calls over the held session --------------------------------------------------------

    async def _call(
        self, endpoint: str | None, request: Callable[[ClientSession], Awaitable[T]]
    ) -> T:
        """One call within one deadline (`timeout`), a reconnect and retry included."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._attempts(endpoint, request)
        except TimeoutError:  # the attempt under way was counted as a timeout when cancelled
            raise UpstreamTimeout(
                SERVICE, f"MCP {endpoint or 'ping'} timed out after {self.timeout:g}s"
            ) from None

    async def _attempts(
        self, endpoint: str | None, request: Callable[[ClientSession], Awaitable[T]]
    ) -> T:
        for attempt in range(2):
            started = time.perf_counter()
            status = "error"
            try:
                # Inside the try: a call that finds the server unreachable is counted as failed.
                session = await self._session_or_fail()
                result = await request(session)
                status = "2xx"
                return result
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:
                    status = "timeout"
                    raise UpstreamTimeout(
                        SERVICE, f"MCP {endpoint or 'ping'} timed out after {self.timeout:g}s"
                    ) from None
                if not (_connection_lost(exc) or self._session_refused):
                    raise UpstreamError(
                        SERVICE, f"MCP {endpoint or 'ping'} failed: {_short(exc.message)}"
                    ) from None
                self._drop(session, _short(exc.message))
                self._session_refused = False
                if attempt == 1:
                    raise UpstreamUnavailable(
                        SERVICE, f"MCP server connection lost ({_short(exc.message)})"
                    ) from None
            except UpstreamError as exc:
                status = exc.status
                raise
            except InvalidRequest:
                status = "invalid"  # refused before it was sent: not a request to count
                raise
            except asyncio.CancelledError:
                status = "timeout"  # the call's deadline (or the caller) ended it
                raise
            except (
                Exception
            ) as exc:  # transport and validation errors: the call failed, the service may not have
                raise UpstreamError(
                    SERVICE, f"MCP {endpoint or 'ping'} failed ({type(exc).__name__})"
                ) from None
            finally:
                if endpoint is not None and status != "invalid":
                    self.recorder.record(endpoint, status, time.perf_counter() - started)
        raise AssertionError("unreachable")

    async def _session_or_fail(self) -> ClientSession:
        if self._session is not None:
            return self._session
        # Two attempts: the one under way may have started before a restarted server listened
        # again; the next one (started at once) then finds it. A dead server fails both fast.
        for _ in range(2):
            if self._closing or self._outcome is None:
                raise UpstreamUnavailable(SERVICE, "MCP client is not running")
            outcome = self._outcome
            self._wake.set()
            try:
                session = await asyncio.wait_for(asyncio.shield(outcome), self.timeout)
            except TimeoutError:
                raise UpstreamTimeout(
                    SERVICE, f"MCP server did not answer initialize within {self.timeout:g}s"
                ) from None
            if session is not None:
                return session
        raise UpstreamUnavailable(
            SERVICE, f"MCP server unreachable ({self.last_error or 'not connected'})"
        )

    async def _watch_session(self, response: httpx2.Response) -> None:
        """HTTP 400/404 to a request that carried a session id: the server forgot the session
        (server-everything answers 400 "No valid session ID", the Python SDK 404)."""
        if response.status_code in (400, 404) and "mcp-session-id" in response.request.headers:
            self._session_refused = True

    def _drop(self, session: ClientSession, reason: str) -> None:
        """Forget a session that no longer works; the holder leaves it and reconnects."""
        if self._session is session:
            self._session = None
            self.last_error = reason
            self._lost.set()

    # -- the holder -------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.reconnect_min
        while not self._closing:
            connected = await self._hold_one()
            if self._closing:
                break
            delay = self.reconnect_min if connected else min(delay * 2, self.reconnect_max)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    async def _hold_one(self) -> bool:
        """One connection: connect, initialize, publish, wait for loss. True if it got connected."""
        self._lost = asyncio.Event()
        outcome = self._outcome
        connected = False
        started = time.perf_counter()
        timeout = httpx2.Timeout(self.timeout, read=300.0)  # the read side holds an SSE stream open
        try:
            async with (
                httpx2.AsyncClient(
                    timeout=timeout,
                    headers=self._headers,
                    event_hooks={"response": [self._watch_session]},
                ) as http,
                streamable_http_client(self.url, http_client=http) as (read, write),
                ClientSession(
                    read, write, read_timeout_seconds=self.timeout, client_info=CLIENT_INFO
                ) as session,
            ):
                await session.initialize()
                self.recorder.record("initialize", "2xx", time.perf_counter() - started)
                connected = True
                self._publish(outcome, session)
                await self._lost.wait()
        except Exception as exc:
            self._note_failure(exc, connected, started)
        finally:
            self._session = None
            self._settle(outcome, None)
        return connected

    def _publish(
        self, outcome: asyncio.Future[ClientSession | None] | None, session: ClientSession
    ) -> None:
        if self.last_error is not None or self.connects == 0:
            log.info("MCP server %s connected", self.safe_url)
        self._session = session
        self._schemas = None  # a new session may be another server: list its tools again
        self._session_refused = False
        self.connects += 1
        self.last_error = None
        self._settle(outcome, session)

    def _settle(
        self, outcome: asyncio.Future[ClientSession | None] | None, session: ClientSession | None
    ) -> None:
        """Resolve one attempt's outcome (once); waiters arriving later get the next attempt's."""
        if outcome is not None and not outcome.done():
            outcome.set_result(session)
        if self._outcome is outcome:
            self._outcome = None if self._closing else asyncio.get_running_loop().create_future()

    def _note_failure(self, exc: BaseException, connected: bool, started: float) -> None:
        reason = _describe(exc)
        if not connected:
            status = "timeout" if "timed out" in reason else "error"
            self.recorder.record("initialize", status, time.perf_counter() - started)
        if connected or self.last_error is None:
            log.warning("MCP server %s unavailable: %s", self.safe_url, reason)
        self.last_error = reason


def _connection_lost(exc: MCPError) -> bool:
    """Errors that mean "this session is gone", not "this request was wrong"."""
    if exc.code == CONNECTION_CLOSED:  # also server-everything's code for an unknown session
        return True
    return exc.code in SESSION_ERROR_CODES and "session" in exc.message.lower()


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    return properties if isinstance(properties, dict) else {}


def declared_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """`arguments` limited to what `schema` declares, string patterns checked.

    >>> declared_arguments({"properties": {"nodeId": {}}}, {"nodeId": "1:2", "fileKey": "K"})
    {'nodeId': '1:2'}
    """
    properties = _properties(schema)
    kept = {key: value for key, value in arguments.items() if key in properties}
    for key, value in kept.items():
        pattern = properties[key].get("pattern") if isinstance(properties[key], dict) else None
        if isinstance(pattern, str) and isinstance(value, str) and not _matches(pattern, value):
            raise InvalidRequest(
                f"{key} {value[:40]!r} is not accepted by the MCP server (pattern {pattern[:80]})"
            )
    return kept


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:  # a pattern Python cannot read: let the server judge
        return True


def _tool_output(name: str, result: CallToolResult) -> ToolOutput:
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if result.is_error:
        raise UpstreamError(
            SERVICE, f"MCP tool {name} reported an error: {_short(' '.join(texts))}"
        )
    images = []
    for block in result.content:
        if isinstance(block, ImageContent):
            try:
                data = base64.b64decode(block.data, validate=True)
            except (binascii.Error, ValueError):
                raise UpstreamError(
                    SERVICE, f"MCP tool {name} returned invalid image data"
                ) from None
            images.append(RenderedImage(data, block.mime_type))
    return ToolOutput(texts, images, result.structured_content)


def _describe(exc: BaseException) -> str:
    """A short reason without URLs or payloads: the innermost exception's type and MCP message."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        if exc.code == REQUEST_TIMEOUT:
            return "initialize timed out"
        return _short(exc.message)
    if isinstance(exc, httpx2.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return type(exc).__name__


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
