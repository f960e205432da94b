"""docs/openapi.json is the document the app serves; the derived schemas match the payload types,
which encode as the dictionaries did."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import msgspec
import orjson
from aiohttp import web
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from exporter.core.event_log import Event, EventLog
from exporter.core.instrumentation import CLIENT_ERRORS, Instrumentation
from exporter.core.metrics import CACHE_TIERS, Metrics
from exporter.core.settings import parse_settings
from exporter.core.window import summarize
from exporter.monitoring import live_updates as broadcast
from exporter.monitoring import payloads
from exporter.monitoring.health import (
    ComponentHealth,
    ComponentInputs,
    HealthReport,
    HealthThresholds,
    assess,
    cache_efficiency,
)
from exporter.monitoring.live_updates import event_body
from exporter.monitoring.reports import SESSION_VERBS, component_health, snapshot_body
from exporter.monitoring.runtime import open_runtime
from exporter.monitoring.statistics import (
    CacheCounts,
    Reading,
    cache_report,
    performance,
    rates,
    window_error_ratio,
)
from exporter.store.contract import StoreStatus
from exporter.web import bodies, openapi
from exporter.web.operation import Answer, Operation, Param, Route, answer, error
from exporter.web.routes import ROUTES

REGENERATE = "python -c 'from exporter.web.openapi import write_committed; write_committed()'"


def test_committed_document_has_not_drifted() -> None:
    committed = openapi.COMMITTED.read_text(encoding="utf-8")
    assert committed == openapi.rendered(), f"docs/openapi.json is stale; run {REGENERATE}"


def test_components_come_from_the_payload_types_the_routes_name() -> None:
    document = openapi.document()
    schemas = document["components"]["schemas"]
    named = {
        body
        for route in ROUTES
        for body in (route.operation.body, *_answer_bodies(route))
        if isinstance(body, type)
    }
    assert {bodies.Session, bodies.ScreenshotRequest, payloads.Error} <= named
    derived = payloads.schema_components(named)
    assert derived.keys() <= schemas.keys()
    for name, schema in derived.items():
        assert schemas[name] == schema, name
        Draft202012Validator.check_schema(schema)
    # Every reference in the document resolves inside it.
    refs = {ref.rsplit("/", 1)[1] for ref in _refs(document)}
    assert all(ref.startswith("#/components/schemas/") for ref in _refs(document))
    assert refs <= set(schemas), refs - set(schemas)
    assert json.dumps(schemas)  # serialisable as served


def _answer_bodies(route: Route) -> list[object]:
    answers = route.operation.responses.values()
    return [body for answer in answers for body in answer.content.values()]


async def _handler(request: web.Request) -> web.Response:
    return web.Response()


SHOTS = "/api/figma/files/{file_key}/shots"
SHOOT = Operation(
    "Shoot",
    "figma",
    {
        200: Answer("shot", {"application/json": bodies.Screenshot, "image/*": {}}),
        503: error("busy", retry_after=True),
    },
    params=(Param("ids", "node ids", {"type": "string"}, required=True),),
    body=bodies.ScreenshotRequest,
    admin=True,
)
FORGET = Operation("Forget", "figma", {204: answer("forgotten")})


def _shots_document() -> dict[str, Any]:
    return openapi.document(
        [Route("POST", SHOTS, _handler, SHOOT), Route("DELETE", SHOTS, _handler, FORGET)]
    )


def test_methods_on_one_path_share_its_path_parameters() -> None:
    document = _shots_document()
    item = document["paths"][SHOTS]
    assert item["parameters"] == [
        {
            "name": "file_key",
            "in": "path",
            "required": True,
            "description": "Figma file key",
            "schema": {"type": "string"},
        }
    ]
    assert item["delete"]["responses"] == {"204": {"description": "forgotten"}}
    assert "requestBody" not in item["delete"] and "security" not in item["delete"]
    schemas = document["components"]["schemas"]
    assert {"Screenshot", "ScreenshotRequest", "Error", "ErrorDetail"} == set(schemas)


def test_an_operation_is_rendered_with_everything_it_declares() -> None:
    """Query parameters, the body's type, each answer with its media types and Retry-After, and
    the admin token with its two refusals."""
    post = _shots_document()["paths"][SHOTS]["post"]
    assert (post["summary"], post["tags"], post["security"]) == (
        "Shoot",
        ["figma"],
        [{"adminToken": []}, {}],
    )
    assert post["parameters"][0]["in"] == "query" and post["parameters"][0]["required"] is True
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ScreenshotRequest"
    }
    assert list(post["responses"]) == ["200", "503", "401", "403"]
    assert set(post["responses"]["200"]["content"]) == {"application/json", "image/*"}
    assert post["responses"]["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert post["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_typed_bodies_encode_as_orjson_encodes_their_values() -> None:
    """msgspec on a Struct writes the bytes orjson writes for the same values as dictionaries
    (what the routes answered before the bodies were typed), keys in the same order."""
    metrics = Metrics(CollectorRegistry())
    async with open_runtime(parse_settings({}), metrics) as runtime:
        session = await runtime.sessions.manager.create({"user": "ada"})
        await runtime.sessions.manager.get(session.id)
        bodies = [
            runtime.reports.performance(),
            runtime.reports.persistence(),
            runtime.reports.cache_stats(),
            runtime.reports.realtime(),
            runtime.service.health(),
            await runtime.service.clear_cache("memory"),
            await runtime.service.clear_cache("all"),
        ]
    for body in bodies:
        assert payloads.encode(body) == orjson.dumps(msgspec.to_builtins(body)), type(body)
    assert list(msgspec.to_builtins(bodies[-1])["cleared"]) == ["figma_responses", "memory_entries"]
    assert list(msgspec.to_builtins(bodies[-2])["cleared"]) == ["memory_entries"]


async def test_session_bytes_fit_the_session_type() -> None:
    """The session answers stay orjson's cached bytes (the hot GET path); they decode into the
    Struct the document's `Session` schema comes from."""
    metrics = Metrics(CollectorRegistry())
    async with open_runtime(parse_settings({}), metrics) as runtime:
        session = await runtime.sessions.manager.create({"user": "ada", "n": [1, 2.5]})
    body = msgspec.json.decode(session.json_bytes(), type=bodies.Session)
    assert body.id == session.id and body.data == {"user": "ada", "n": [1, 2.5]}
    assert payloads.encode(body) == session.json_bytes()


def test_small_typed_answers_encode_as_their_dictionaries_did() -> None:
    access = {"reads": 1, "writes": 1, "cache": {"hit_ratio": None}, "max_ms": 0.5}
    shot: dict[str, Any] = {
        "node_id": "1:2",
        "source": "api",
        "content_type": "image/png",
        "size_bytes": 2048,
        "sha256": "ab" * 32,
        "cached": False,
        "duration_ms": 1.25,
    }
    pairs = [
        (
            bodies.SessionAccess(id="s", access=access, figma=None),
            {
                "id": "s",
                "access": access,
                "figma": None,
                "scope": "replica",  # added with ?scope=fleet (issue 32)
            },
        ),
        (bodies.Screenshot(**shot), shot),
        (payloads.Status(status="ok"), {"status": "ok"}),
    ]
    for typed, plain in pairs:
        assert payloads.encode(typed) == orjson.dumps(plain), type(typed)


# ---- the parts once built as dictionaries: the same bytes as those dictionaries -----------------
# Each `_dict_*` is the producer's code before its part was typed, kept here as the reference.


def _dict_stats(durations: list[float]) -> dict[str, Any]:
    stats: dict[str, Any] = dataclasses.asdict(summarize(durations))  # the old as_dict()
    stats.pop("count")
    return stats


def _dict_performance(inst: Instrumentation) -> dict[str, Any]:
    operations = {}
    for op in inst.operations:
        window = inst.windows[op]
        operations[op] = {
            "count": inst.counts[op],
            "errors": inst.error_counts[op],
            "window_count": len(window.durations),
            "window_errors": window.error_count,
            **_dict_stats(window.durations),
        }
    all_durations = [d for window in inst.windows.values() for d in window.durations]
    return {
        "count": sum(inst.counts.values()),
        "errors": sum(inst.error_counts.values()),
        "window": {**_dict_stats(all_durations), "error_ratio": window_error_ratio(inst)},
        "operations": operations,
        "slow_operations": {
            "threshold_ms": round(inst.slow_threshold_s * 1000, 3),
            "count": inst.slow_count,
            "recent": [
                {
                    "operation": slow.operation,
                    "duration_ms": round(slow.duration_ms, 3),
                    "timestamp": slow.timestamp,
                    "context": slow.context,
                }
                for slow in reversed(inst.slow_recent)
            ],
        },
        "recent_errors": [
            {
                "operation": error.operation,
                "error": error.error,
                "client_error": error.error in CLIENT_ERRORS,
                "timestamp": error.timestamp,
                "detail": error.detail,
            }
            for error in reversed(inst.errors_recent)
        ],
    }


def _dict_cache_report(counts: CacheCounts, thresholds: HealthThresholds) -> dict[str, Any]:
    tiers = {}
    for tier in CACHE_TIERS:
        hits, misses = counts.tier(tier)
        whole = hits + misses
        tiers[tier] = {
            "hits": hits,
            "misses": misses,
            "requests": whole,
            "hit_rate": round(hits / whole, 4) if whole else None,
        }
    ratio = counts.hit_ratio
    return {
        "tiers": tiers,
        "requests": counts.lookups,
        "hit_rate": None if ratio is None else round(ratio, 4),
        "efficiency": cache_efficiency(ratio, thresholds),
    }


def _dict_component(health: ComponentHealth) -> dict[str, Any]:
    return {
        "score": health.score,
        "status": health.status,
        "issues": [
            {
                "code": issue.code,
                "severity": issue.severity,
                "message": issue.message,
                "value": issue.value,
                "threshold": issue.threshold,
                "penalty": issue.penalty,
                "component": issue.component,
            }
            for issue in health.issues
        ],
    }


def _busy_instrumentation() -> Instrumentation:
    inst = Instrumentation(
        Metrics(CollectorRegistry()), "session", window_size=50, slow_threshold_ms=100
    )
    for ms in range(1, 40):
        inst.record("get", ms / 1000)
    inst.record("create", 0.2501234, context="big payload")  # slow, rounded to 3 places
    inst.record("update", 0.003, error="timeout")
    inst.record("delete", 0.002, error="not_found")  # a client error
    for hit in (True, True, False):
        inst.record_cache("memory", hit)
    inst.record_cache("redis", True)
    return inst


def test_performance_encodes_as_its_dictionary_did() -> None:
    for inst in (_busy_instrumentation(), Instrumentation(Metrics(CollectorRegistry()), "figma")):
        assert payloads.encode(performance(inst)) == orjson.dumps(_dict_performance(inst))


def test_cache_reports_encode_as_their_dictionaries_did() -> None:
    thresholds = HealthThresholds()
    readings = [
        CacheCounts.of(_busy_instrumentation()),
        CacheCounts(),
        CacheCounts({("redis", "hit"): 1, ("redis", "miss"): 2}),
    ]
    for counts in readings:
        typed = payloads.encode(cache_report(counts, thresholds))
        assert typed == orjson.dumps(_dict_cache_report(counts, thresholds))


def test_component_health_encodes_as_its_dictionary_did() -> None:
    # Integer thresholds and penalties stay integers; computed values stay floats.
    strict = HealthThresholds(latency_high_ms=10, latency_high_penalty=40)
    report = assess(
        {
            "session": ComponentInputs(services={"redis": "down"}, p95_latency_ms=20),
            "figma": ComponentInputs(error_ratio=0.02, cache_hit_ratio=0.4),
        },
        strict,
    )
    assert report.overall.issues
    for health in report.all.values():
        assert payloads.encode(component_health(health)) == orjson.dumps(_dict_component(health))


def _dict_rates(now: Reading, before: Reading | None) -> dict[str, Any]:
    elapsed = now.at - before.at if before is not None else 0.0
    if before is None or elapsed <= 0:
        before, elapsed = now, 1.0

    def per_second(delta: int) -> float:
        return round(max(0, delta) / elapsed, 3)

    cache = now.cache - before.cache
    ratio = cache.hit_ratio
    return {
        "operations_per_second": per_second(sum(now.counts.values()) - sum(before.counts.values())),
        "errors_per_second": per_second(sum(now.errors.values()) - sum(before.errors.values())),
        "slow_per_second": per_second(now.slow - before.slow),
        "per_operation": {
            op: per_second(now.counts[op] - before.counts.get(op, 0)) for op in now.counts
        },
        "cache_lookups_per_second": per_second(cache.lookups),
        "cache_hit_rate": None if ratio is None else round(ratio, 4),
    }


def _dict_snapshot(
    timestamp: float,
    interval: float,
    manager_rates: dict[str, dict[str, Any]],
    active: int,
    store: StoreStatus,
    sse_clients: int,
    report: HealthReport,
) -> dict[str, Any]:
    session_rates = manager_rates["session"]["per_operation"]
    return {
        "timestamp": timestamp,
        "interval_seconds": interval,
        "managers": dict(manager_rates),
        "sessions": {
            "active": active,
            **{
                f"{verb}_per_second": session_rates.get(op, 0.0)
                for verb, op in SESSION_VERBS.items()
            },
        },
        "store": {
            "redis_connected": store.redis_connected,
            "fallback_active": store.fallback_active,
            "replay_pending": store.replay_pending,
            "memory_entries": store.memory_entries,
        },
        "sse_clients": sse_clients,
        "health": {"score": report.overall.score, "status": report.overall.status},
    }


def _dict_event(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "message": event.message,
        "timestamp": event.timestamp,
        "details": event.details,
    }


def test_manager_rates_encode_as_their_dictionaries_did() -> None:
    inst = _busy_instrumentation()
    before = Reading.of(inst, at=100.0)
    for _ in range(7):
        inst.record("get", 0.001)
    inst.record("create", 0.3, error="internal")
    inst.record_cache("memory", False)
    now = Reading.of(inst, at=103.0)
    for pair in ((now, before), (now, None), (before, now)):  # a later first reading: no time
        assert payloads.encode(rates(*pair)) == orjson.dumps(_dict_rates(*pair))


async def test_realtime_and_events_encode_as_their_dictionaries_did() -> None:
    metrics = Metrics(CollectorRegistry())
    async with open_runtime(parse_settings({}), metrics) as runtime:
        await runtime.sessions.manager.create({"user": "ada"})
        store = runtime.sessions.store.status()
        settings = runtime.settings
    inst = _busy_instrumentation()
    reading = Reading.of(inst, at=5.0)
    figma = Reading.of(Instrumentation(Metrics(CollectorRegistry()), "figma"), at=5.0)
    typed = {"session": rates(reading, None), "figma": rates(figma, None)}
    plain = {"session": _dict_rates(reading, None), "figma": _dict_rates(figma, None)}
    report = assess({"session": ComponentInputs(error_ratio=0.2), "figma": ComponentInputs()})
    body = snapshot_body(settings, typed, 3, store, 2, report)
    expected = _dict_snapshot(
        body.timestamp, settings.snapshot_interval, plain, 3, store, 2, report
    )
    assert payloads.encode(body) == orjson.dumps(expected)
    # An unknown value in an event's details is written as its str by both encoders.
    log = EventLog(10, metrics)
    log.record("failover", "Redis unreachable", count=2, ratio=0.25, codes=["a"], where=Path("/x"))
    log.record("session_created", "1 session created since start", count=1)
    events = log.recent(10)
    for event in events:
        assert (
            broadcast.encode(event_body(event))
            == orjson.dumps(_dict_event(event), default=str).decode()
        )
    # The realtime answer: the snapshot with the stream count and recent events replaced.
    plain_events = [_dict_event(event) for event in events[1:]]
    realtime = msgspec.structs.replace(
        body, sse_clients=5, recent_events=[event_body(event) for event in events[1:]]
    )
    assert payloads.encode(realtime) == orjson.dumps(
        {**expected, "sse_clients": 5, "recent_events": plain_events}
    )
