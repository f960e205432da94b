"""Index writes on one server (a script) and on a Cluster (a pipeline) leave Redis and the
replica's count in the same state, refusal of an update over a deleted session included."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from exporter.sessions.redis_store import PUT_UNLESS_DELETED
from exporter.sessions.session_index import SessionIndex
from exporter.sessions.store import KIND_TOMBSTONE, StoredValue, encode_value


async def writes(client: aioredis.Redis, prefix: str, colocated: bool) -> list[object]:
    index = SessionIndex(client, prefix=prefix, colocated=colocated)
    shard = index.shard_keys[0]
    expires = time.time() + 60
    value = encode_value(StoredValue(b'{"data":{}}', 1, expires))
    outcomes: list[object] = []
    outcomes.append(await index.put(prefix + "s:{a}", value, expires, "s:{a}"))  # a create
    outcomes.append(await index.put(prefix + "s:{a}", value, expires + 30, "s:{a}"))  # extended
    update = await index.put(
        prefix + "s:{a}", value, expires + 40, "s:{a}", unless_deleted=PUT_UNLESS_DELETED
    )
    outcomes.append(update)
    tombstone = encode_value(StoredValue(b"", 2, expires), KIND_TOMBSTONE)
    await client.set(prefix + "s:{a}", tombstone, px=60_000)  # another replica deleted it
    refused = await index.put(
        prefix + "s:{a}", value, expires + 50, "s:{a}", unless_deleted=PUT_UNLESS_DELETED
    )
    outcomes.append(refused)
    outcomes.append(await client.get(prefix + "s:{a}") == tombstone)
    outcomes.append(await client.zscore(shard, "a"))  # None: not live after the refusal
    outcomes.append(await index.put(prefix + "s:{b}", value, expires, "s:{b}"))
    outcomes.append(round(await client.zscore(shard, "b") or 0) // 1000 == int(expires))
    outcomes.append(index._delta)  # this replica's own count changes since the last refresh
    return outcomes


async def test_the_script_and_the_pipeline_write_the_same(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        script, pipeline = await writes(client, "one:", True), await writes(client, "two:", False)
    finally:
        await client.aclose()
    assert script == pipeline == [True, True, True, False, True, None, True, True, 2]
