"""A tracking lane (`tracking.Lane`) on a real redis-server: one connection shared by many
callers, replies matched in order. A caller that stops waiting (its timeout, or a cancel) must
leave the lane in step: its replies, when they come, go to nobody, never to the next caller.
`BLPOP` on an empty list holds the connection for its own timeout, as a slow Redis would."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from exporter.store.tracking import Lane

LOOPS = {"asyncio": asyncio.run, "uvloop": uvloop.run}
SLOW = ("BLPOP", "lane:empty", "0.3")  # answers nil after 0.3 s


async def open_lane(redis_url: str) -> tuple[Lane, Redis]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    listener = Redis(port=port)  # any client id will do as the REDIRECT target
    lane = Lane(Connection(host="127.0.0.1", port=port, protocol=2))
    await lane.open(await listener.client_id(), timeout=5)
    return lane, listener


async def a_caller_that_times_out_leaves_the_lane_in_step(redis_url: str) -> None:
    lane, listener = await open_lane(redis_url)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await lane.call([SLOW], timeout=0.05)
    assert time.monotonic() - started < 0.25  # not held until the reply came
    value = "ünïcode\r\n".encode() + bytes(range(256))
    replies = await lane.call([("SET", "lane:k", value, "PX", 60_000), ("GET", "lane:k")], 5)
    assert replies == [b"OK", value]  # not BLPOP's late nil
    await lane.close()
    await listener.aclose()


async def a_cancelled_caller_leaves_the_lane_in_step(redis_url: str) -> None:
    lane, listener = await open_lane(redis_url)
    waiting = asyncio.create_task(lane.call([SLOW], timeout=5))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await lane.call([("ECHO", "mine"), ("INCRBY", "lane:n", 7)], 5) == [b"mine", 7]
    await lane.close()
    await listener.aclose()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_caller_that_times_out_leaves_the_lane_in_step(redis_url: str, loop: str) -> None:
    LOOPS[loop](a_caller_that_times_out_leaves_the_lane_in_step(redis_url))


@pytest.mark.parametrize("loop", LOOPS)
def test_a_cancelled_caller_leaves_the_lane_in_step(redis_url: str, loop: str) -> None:
    LOOPS[loop](a_cancelled_caller_leaves_the_lane_in_step(redis_url))
