"""Index writes and replays on one server (a script) and on a Cluster (pipelines) leave Redis and
the replica's count in the same state, refusal of an update over a deleted session included."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from exporter.store.contract import KIND_TOMBSTONE, ReplayItem, StoredValue, encode_value
from exporter.store.redis_store import PUT_UNLESS_DELETED, RedisStore
from exporter.store.session_index import SessionIndex


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


async def replayed(client: aioredis.Redis, prefix: str, colocated: bool) -> list[object]:
    """A journal replayed over what other replicas left in Redis, then what Redis and the index
    hold. One script per write where one server holds both, a replay and two reconcile pipelines
    otherwise."""
    index = SessionIndex(client, prefix=prefix, colocated=colocated)
    store = RedisStore(client, prefix=prefix, index=index)
    now = time.time()

    def put(sid: str, version: int, expires_at: float) -> ReplayItem:
        value = StoredValue(b'{"data":{}}', version, expires_at)
        return ReplayItem(f"s:{{{sid}}}", version, expires_at, value)

    newer = encode_value(StoredValue(b'{"data":{"v":2}}', 9, now + 120))
    await client.set(prefix + "s:{older}", newer, px=120_000)  # another replica wrote it since
    await index.put(prefix + "s:{gone}", newer, now + 120, "s:{gone}")  # indexed, then deleted
    tombstone = encode_value(StoredValue(b"", 9, now + 60), KIND_TOMBSTONE)
    await client.set(prefix + "s:{deleted}", tombstone, px=60_000)
    await index.refresh()
    items = [
        put("new", 5, now + 60),
        put("older", 5, now + 60),
        ReplayItem("s:{gone}", 10, now + 60, None),
        put("deleted", 5, now + 60),
        put("lapsed", 5, now - 10),  # expired while journalled: indexed for a sweep to count
        ReplayItem("figma:file", 5, now + 60, StoredValue(b"{}", 5, now + 60)),
        *(put(f"bulk-{n}", 5, now + 30) for n in range(70)),  # more than one script's worth
    ]
    results = await store.replay(items)
    outcomes: list[object] = [results[:6], sum(results[6:])]
    shard = index.shard_keys[0]
    for sid in ("new", "older", "gone", "deleted", "lapsed"):
        score = await client.zscore(shard, sid)
        outcomes.append(None if score is None else round(score / 1000 - now))
        raw = await client.get(prefix + f"s:{{{sid}}}")
        assert raw is None or isinstance(raw, bytes), raw
        outcomes.append(None if raw is None else raw.split(b":", 2)[2][:1])
    outcomes.append(await client.exists(prefix + "figma:file"))
    outcomes.append(await client.zcount(shard, now * 1000 + 29_000, now * 1000 + 31_000))
    outcomes.append(index._delta)
    return outcomes


async def test_a_replay_reconciles_the_index_alike_by_script_and_by_pipelines(
    redis_url: str,
) -> None:
    client = aioredis.from_url(redis_url)
    try:
        script = await replayed(client, "one:", True)
        pipelines = await replayed(client, "two:", False)
    finally:
        await client.aclose()
    written = [True, False, True, False, True, True]
    expected = [written, 70, 60, b"s", 120, b"s", None, b"d", None, b"d", -10, None, 1, 70, 71]
    assert script == pipelines == expected
