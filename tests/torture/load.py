"""The recorded load: a bounded number of HTTP clients, each sending one request at a time to a
random routable replica, creating, updating, deleting and reading sessions, and recording every
request in the history.

The rules that make the checker's verdict well-defined:

- every written value is unique in the run (one counter), so a read names the write it saw;
- a session has one writer: the client that created it. It stops writing a session after a
  write that was not acknowledged (the write is indeterminate; the next one could not be
  ordered after it), and after deleting it;
- creates carry `ttl_seconds`, updates do not (the expiry stays), so each session's lifetime is
  known from its create;
- reads go to any session the run has created (including deleted ones), by any client, so that
  replicas read what others wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.torture.fleet import Fleet
from tests.torture.history import Kind, Op
from tests.torture.recorder import Recorder

RECENT = 400  # reads pick among the sessions created last, where the writes are


@dataclass(frozen=True, slots=True)
class LoadShape:
    clients: int = 6
    pause: float = 0.01  # seconds a client waits between its requests: bounds the CPU used
    ttl: float = 120.0  # every create's ttl_seconds
    sessions_per_client: int = 8  # sessions a client keeps writing at once
    timeout: float = 5.0  # seconds before a request counts as unanswered


@dataclass
class Answer:
    status: int | None
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class Load:
    def __init__(
        self,
        fleet: Fleet,
        recorder: Recorder,
        shape: LoadShape,
        seed: int,
        http: aiohttp.ClientSession,
    ) -> None:
        self.fleet = fleet
        self.recorder = recorder
        self.shape = shape
        self.seed = seed
        self.http = http
        self.values = itertools.count(1)
        self.created: list[str] = []
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Every client until `stop()`; in-flight requests finish and are recorded."""
        await asyncio.gather(*(self.client(n) for n in range(self.shape.clients)))

    def stop(self) -> None:
        self.stopping.set()

    async def client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        owned: list[str] = []
        while not self.stopping.is_set():
            await self.step(number, rng, owned)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.shape.pause)

    async def step(self, number: int, rng: random.Random, owned: list[str]) -> None:
        roll = rng.random()
        if not owned or (len(owned) < self.shape.sessions_per_client and roll < 0.2):
            await self.create(number, rng, owned)
        elif roll < 0.55:
            await self.update(number, rng, owned)
        elif roll < 0.62:
            await self.delete(number, rng, owned)
        elif roll < 0.72:
            await self.read(number, rng, rng.choice(owned))
        elif self.created:
            await self.read(number, rng, rng.choice(self.created[-RECENT:]))

    async def create(self, number: int, rng: random.Random, owned: list[str]) -> None:
        value = next(self.values)
        body = {"data": {"v": value}, "ttl_seconds": self.shape.ttl}
        op, answer = await self.request(number, rng, Kind.CREATE, None, value, body)
        session = answer.body.get("id") if op.acknowledged else None
        self.recorder.op(dataclasses.replace(op, session=session, ttl=self.shape.ttl))
        if session is not None:
            owned.append(session)
            self.created.append(session)

    async def update(self, number: int, rng: random.Random, owned: list[str]) -> None:
        session = rng.choice(owned)
        value = next(self.values)
        op, _ = await self.request(number, rng, Kind.UPDATE, session, value, {"data": {"v": value}})
        self.recorder.op(op)
        if not op.acknowledged:
            owned.remove(session)  # indeterminate: never written again

    async def delete(self, number: int, rng: random.Random, owned: list[str]) -> None:
        session = rng.choice(owned)
        op, _ = await self.request(number, rng, Kind.DELETE, session, None, None)
        self.recorder.op(op)
        owned.remove(session)

    async def read(self, number: int, rng: random.Random, session: str) -> None:
        op, answer = await self.request(number, rng, Kind.READ, session, None, None)
        value = answer.body.get("data", {}).get("v") if op.status == 200 else None
        self.recorder.op(dataclasses.replace(op, value=value))

    async def request(
        self,
        number: int,
        rng: random.Random,
        kind: Kind,
        session: str | None,
        value: int | None,
        body: dict[str, Any] | None,
    ) -> tuple[Op, Answer]:
        replica = await self.pick_replica(rng)
        invoked = self.recorder.now()
        answer = await send(self.http, self.fleet.replicas[replica].base_url, kind, session, body)
        op = Op(
            number,
            kind,
            session,
            value,
            invoked,
            self.recorder.now(),
            replica,
            answer.status,
            answer.error,
        )
        return op, answer

    async def pick_replica(self, rng: random.Random) -> str:
        while not self.fleet.routable:  # every replica down: wait as a load balancer would
            await asyncio.sleep(0.05)
        return rng.choice(sorted(self.fleet.routable))


METHODS = {Kind.CREATE: "POST", Kind.UPDATE: "PUT", Kind.DELETE: "DELETE", Kind.READ: "GET"}


async def send(
    http: aiohttp.ClientSession,
    base_url: str,
    kind: Kind,
    session: str | None,
    body: dict[str, Any] | None,
) -> Answer:
    """One request; any failure to get an answer is an `Answer` without status."""
    path = "/api/sessions" if session is None else f"/api/sessions/{session}"
    try:
        async with http.request(METHODS[kind], base_url + path, json=body) as response:
            payload = await response.json(content_type=None) if response.status != 204 else {}
            return Answer(response.status, payload or {}, _error(response.status, payload))
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return Answer(None, error=type(exc).__name__)


def _error(status: int, payload: dict[str, Any]) -> str:
    """The API's error code; for a 503 its message too (why the fleet doubted, in a report)."""
    if status < 400:
        return ""
    error = payload.get("error", {})
    code = str(error.get("code", ""))
    return f"{code} ({error.get('message', '')})" if status == 503 else code
