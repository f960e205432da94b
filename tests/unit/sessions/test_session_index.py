"""Session index pure parts: which keys it covers, shard spread, what a replayed journal entry
reconciles to, and the gate that keeps index writes out of a refresh's round trip."""

from __future__ import annotations

import asyncio
from collections import Counter

from exporter.store.contract import KIND_TOMBSTONE, ReplayItem, StoredValue, encode_value
from exporter.store.session_index import SessionIndex, _Gate, _reconciled_expiry


def test_covers_session_keys_only_and_extracts_the_id() -> None:
    index = SessionIndex(None, prefix="sme:")
    assert index.covers("s:{abc_-1}") and index.member("s:{abc_-1}") == "abc_-1"
    for key in ("s:{abc}:figma", "s:abc", "figma:file:x", "s:{a}{b}", "x:{abc}"):
        assert not index.covers(key), key
    assert index.shard_keys == ["sme:session-index:{sessions-0}"]


def test_shards_carry_their_own_hash_tags_and_spread_ids() -> None:
    index = SessionIndex(None, prefix="p:", shards=16)
    assert index.shard_keys[3] == "p:session-index:{sessions-3}"
    spread = Counter(index.shard(f"id-{n}") for n in range(1600))
    assert len(spread) == 16 and min(spread.values()) > 50
    assert index.shard("same") == index.shard("same")


def test_reconciled_expiry_follows_what_redis_holds() -> None:
    ours = StoredValue(b"{}", 5, 1000.0)
    put = ReplayItem("s:{a}", 5, 1000.0, ours)
    deleted = ReplayItem("s:{a}", 6, 1000.0, None)
    newer = encode_value(StoredValue(b"{}", 9, 2000.0))
    tombstone = encode_value(StoredValue(b"", 9, 2000.0), KIND_TOMBSTONE)
    assert _reconciled_expiry(put, newer) == 2_000_000  # another replica's newer write
    assert _reconciled_expiry(put, tombstone) is None  # deleted meanwhile
    assert _reconciled_expiry(put, None) == 1_000_000  # expired: indexed so a sweep counts it
    assert _reconciled_expiry(deleted, None) is None


async def test_gate_keeps_writes_out_of_an_exclusive_section() -> None:
    gate, log = _Gate(), []
    release = asyncio.Event()

    async def write(name: str) -> None:
        async with gate.write():
            log.append(f"{name} in")
            await release.wait()
            log.append(f"{name} out")

    async def refresh() -> None:
        async with gate.exclusive():
            log.append("refresh")

    first = asyncio.create_task(write("w1"))
    await asyncio.sleep(0)
    refreshing = asyncio.create_task(refresh())
    await asyncio.sleep(0)
    second = asyncio.create_task(write("w2"))  # arrives while the refresh waits: goes after it
    await asyncio.sleep(0)
    assert log == ["w1 in"]
    release.set()
    await asyncio.gather(first, refreshing, second)
    assert log == ["w1 in", "w1 out", "refresh", "w2 in", "w2 out"]
