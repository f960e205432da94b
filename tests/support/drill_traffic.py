"""Realistic traffic for the incident drills: session users and Figma users at a steady rate,
sent round-robin to every replica as a load balancer without health checks would (a dead replica
gets its share and refuses it), with every outcome kept so a drill can say how hurt users were.

Sessions: 60 % reads of live sessions, 14 % creates, 14 % updates, 7 % deletes of the oldest,
5 % reads of unknown ids (404: clients do that). Figma: files and nodes of two hot files (cached
for the replicas' --figma-cache-ttl), files nobody asked for before (10 %), screenshots through
the Figma API and the MCP server. A storm adds a client-error flood: reads of unknown sessions
(404) and invalid writes (400).

    traffic = Traffic(["http://127.0.0.1:9001", "http://127.0.0.1:9002"])
    await traffic.start()
    t0 = time.time(); ...; traffic.tally("session", t0, time.time()).failed_ratio
    await traffic.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

HOT_FILES = ("drillHotFileA", "drillHotFileB")
MCP_FILE = "FILE1"  # the file open in the MCP double (the desktop server answers from it)
TIMEOUT = aiohttp.ClientTimeout(total=20)


@dataclass(frozen=True, slots=True)
class Outcome:
    at: float  # wall clock, when the request was sent
    kind: str  # session, figma or storm
    status: int  # HTTP status; 0 when refused at connect or cut
    seconds: float


@dataclass(slots=True)
class Tally:
    requests: int = 0
    server_errors: int = 0  # 5xx
    refused: int = 0  # no answer: refused at connect, reset, timed out
    client_errors: int = 0  # 4xx
    slow: int = 0  # over the given latency

    @property
    def failed(self) -> int:
        return self.server_errors + self.refused

    @property
    def failed_ratio(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def __str__(self) -> str:
        return (
            f"{self.failed}/{self.requests} failed ({self.failed_ratio:.0%}: "
            f"{self.server_errors} 5xx, {self.refused} refused), {self.slow} slow"
        )


@dataclass
class Traffic:
    replicas: Sequence[str]
    session_rate: float = 60.0  # requests per second
    figma_rate: float = 6.0
    storm_rate: float = 0.0  # set while a client-error storm lasts
    seed: int = 29
    outcomes: list[Outcome] = field(default_factory=list)
    in_flight_limit: int = 300
    shed: int = 0  # requests not sent because the limit was reached (the generator's own limit)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._targets = itertools.cycle(self.replicas)
        self._sessions: deque[str] = deque()
        self._counter = itertools.count()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._streams: list[asyncio.Task[None]] = []
        self.events = 0  # SSE events read by the dashboards' clients

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.in_flight_limit, force_close=False)
        self._http = aiohttp.ClientSession(timeout=TIMEOUT, connector=connector)
        self._runner = asyncio.create_task(self._run(), name="drill-traffic")
        self._streams = [
            asyncio.create_task(self._stream(replica), name=f"drill-sse {replica}")
            for replica in self.replicas
        ]

    async def stop(self) -> None:
        for task in (self._runner, *self._streams):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def tally(self, kind: str, start: float, end: float, slow_over: float = 0.0) -> Tally:
        """Outcomes of the `kind` requests sent between `start` and `end` (wall clock)."""
        tally = Tally()
        for outcome in self.outcomes:
            if outcome.kind != kind or not start <= outcome.at <= end:
                continue
            tally.requests += 1
            if outcome.status == 0:
                tally.refused += 1
            elif outcome.status >= 500:
                tally.server_errors += 1
            elif outcome.status >= 400:
                tally.client_errors += 1
            if slow_over and outcome.seconds > slow_over:
                tally.slow += 1
        return tally

    # -- scheduling --------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = {"session": loop.time(), "figma": loop.time(), "storm": loop.time()}
        while True:
            now = loop.time()
            for kind, rate in (
                ("session", self.session_rate),
                ("figma", self.figma_rate),
                ("storm", self.storm_rate),
            ):
                if rate <= 0:
                    due[kind] = now
                    continue
                while due[kind] <= now:
                    self._launch(kind)
                    due[kind] += 1 / rate
            await asyncio.sleep(0.005)

    def _launch(self, kind: str) -> None:
        if len(self._in_flight) >= self.in_flight_limit:
            self.shed += 1
            return
        request = {"session": self._session_request, "figma": self._figma_request}.get(
            kind, self._storm_request
        )()
        task = asyncio.create_task(self._send(kind, *request))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(
        self,
        kind: str,
        method: str,
        path: str,
        body: Any,
        then: Callable[[int, Any], None] | None,
    ) -> None:
        assert self._http is not None
        url = next(self._targets) + path
        sent, started = time.time(), time.perf_counter()
        status, payload = 0, None
        try:
            async with self._http.request(method, url, json=body) as response:
                status = response.status
                payload = await response.json(content_type=None) if status == 201 else None
                await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            status = 0
        self.outcomes.append(Outcome(sent, kind, status, time.perf_counter() - started))
        if then is not None:
            then(status, payload)

    async def _stream(self, replica: str) -> None:
        """A live dashboard: the SSE stream of one replica, reconnecting as a browser would."""
        assert self._http is not None
        while True:
            try:
                async with self._http.get(
                    f"{replica}/api/session-metrics/stream", timeout=aiohttp.ClientTimeout()
                ) as response:
                    async for line in response.content:
                        self.events += line.startswith(b"event:")
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.5)

    # -- what users do -----------------------------------------------------------------------

    def _session_request(self) -> tuple[str, str, Any, Any]:
        roll = self._random.random()
        n = next(self._counter)
        if roll < 0.14 or len(self._sessions) < 20:
            return (
                "POST",
                "/api/sessions",
                {"data": {"user": n, "cart": [n % 7, n % 11]}},
                (self._created),
            )
        if roll < 0.28:
            sid = self._random.choice(self._sessions)
            return "PUT", f"/api/sessions/{sid}", {"data": {"user": n, "seen": True}}, None
        if roll < 0.35 and len(self._sessions) > 200:
            return "DELETE", f"/api/sessions/{self._sessions.popleft()}", None, None
        if roll < 0.40:
            return "GET", f"/api/sessions/unknown-{n}", None, None
        return "GET", f"/api/sessions/{self._random.choice(self._sessions)}", None, None

    def _created(self, status: int, payload: Any) -> None:
        if status == 201 and isinstance(payload, dict):
            self._sessions.append(str(payload["id"]))

    def _figma_request(self) -> tuple[str, str, Any, Any]:
        roll = self._random.random()
        hot = self._random.choice(HOT_FILES)
        if roll < 0.10:
            return "GET", f"/api/figma/files/drillCold{next(self._counter)}", None, None
        if roll < 0.55:
            return "GET", f"/api/figma/files/{hot}", None, None
        if roll < 0.75:
            return "GET", f"/api/figma/files/{hot}/nodes?ids=1:2,1:3", None, None
        if roll < 0.85:
            shot = {"file_key": hot, "node_id": "1:2", "source": "api", "format": "png"}
            return "POST", "/api/figma/screenshots", shot, None
        shot = {"file_key": MCP_FILE, "node_id": "1:2", "source": "mcp", "format": "png"}
        return "POST", "/api/figma/screenshots", shot, None

    def _storm_request(self) -> tuple[str, str, Any, Any]:
        n = next(self._counter)
        if n % 2:
            return "GET", f"/api/sessions/no-such-session-{n}", None, None
        return "POST", "/api/sessions", {"data": "not an object"}, None
