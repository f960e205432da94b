"""The Figma response cache on a real (memory-only) tiered store: hashed keys, framing, clearing."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import build_store
from exporter.upstreams.response_cache import (
    CachedImage,
    ResponseCache,
    decode_image,
    decode_json,
    encode_image,
)


def make_cache() -> tuple[ResponseCache, Instrumentation, Metrics]:
    metrics = Metrics(CollectorRegistry())
    store = build_store(parse_settings({}), metrics, None, None)
    instrumentation = Instrumentation(metrics, "figma")
    return (
        ResponseCache(store, ttl=60, record=instrumentation.record_cache),
        instrumentation,
        metrics,
    )


def test_keys_are_hashed_and_bounded() -> None:
    cache, _, _ = make_cache()
    key = cache.key("file", "SECRETLOOKINGFILEKEY123", "2", "1:2")
    assert key.startswith("figma:0:file:")
    assert "SECRETLOOKINGFILEKEY123" not in key and "1:2" not in key
    assert len(key) == len(cache.key("file", "x" * 128, "100", ",".join(["1:2"] * 100)))
    assert key != cache.key(
        "file", "SECRETLOOKINGFILEKEY12", "32", "1:2"
    )  # parts cannot run together


def test_image_framing_round_trips() -> None:
    image = CachedImage.of("image/png", b"\x89PNG" + bytes(range(256)))
    decoded = decode_image(encode_image(image))
    assert decoded == image
    assert len(decoded.sha256) == 64


async def test_get_after_put_is_a_memory_hit_counted_by_tier() -> None:
    cache, instrumentation, metrics = make_cache()
    key = cache.key("file", "abc")
    assert await cache.get(key, decode_json) is None
    document = {"name": "Design"}
    await cache.put(key, orjson.dumps(document), document)
    assert await cache.get(key, decode_json) == document
    assert instrumentation.cache_counts["memory", "miss"] == 1
    assert instrumentation.cache_counts["memory", "hit"] == 1
    hits = metrics.registry.get_sample_value(
        "session_exporter_cache_requests_total",
        {"manager": "figma", "tier": "memory", "result": "hit"},
    )
    assert hits == 1


async def test_clear_forgets_every_response() -> None:
    cache, _, _ = make_cache()
    old_key = cache.key("file", "abc")
    await cache.put(old_key, b"{}", {})
    assert await cache.clear() == 1
    assert cache.key("file", "abc") != old_key
    assert await cache.get(old_key, decode_json) is None


async def test_undecodable_entries_are_misses() -> None:
    cache, _, _ = make_cache()
    key = cache.key("shot", "abc")
    assert cache.store is not None
    await cache.store.set(key, b"not an image", 60)
    assert await cache.get(key, decode_image) is None


async def test_no_store_means_no_cache() -> None:
    cache = ResponseCache(None, ttl=60)
    await cache.put("figma:x", b"{}", {})
    assert await cache.get("figma:x", decode_json) is None
    assert await cache.clear() == 0
